package flasksession_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Through the real stack: the example app's ROLE_OVERRIDES plays the
// app's user database, so alice's cookie says "user" while the database
// says admin, and bob's says "admin" while the database says user. The
// edge asks a second worker's /api/whoami, and its answer, not the
// cookie, decides /admin. Then the whoami worker stops, and a session the
// edge has not seen yet gets 503 instead of any role.
func TestWhoamiRoleDecidesAdminNamespaceAndFailsClosed(t *testing.T) {
	testenv.RequireNode(t)
	const secret = "whoami-integration-secret"
	db := map[string]string{"ROLE_OVERRIDES": "alice:admin,bob:user"}
	app := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "app", SecretKey: secret, Env: db})
	whoami := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "whoami", SecretKey: secret, Env: db})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key %[2]s
		whoami %[3]s/api/whoami
		whoami_ttl 10m
	}
	socketio_proxy {
		to %[4]s
		namespace /admin role admin
	}
	reverse_proxy %[4]s
}
`, addr, secret, whoami.URL(), app.Addr)), addr)
	edgeURL := "http://" + addr

	alice := testenv.Login(t, app.URL(), "alice", "user")
	bob := testenv.Login(t, app.URL(), "bob", "admin")
	for _, transports := range [][]string{{"polling"}, {"websocket"}} {
		probe := func(cookie string) testenv.ProbeResult {
			return testenv.RunProbe(t, testenv.ProbeOptions{URL: edgeURL, Namespace: "/admin", Transports: transports,
				TimeoutMs: 15000, ExtraHeaders: map[string]string{"Cookie": cookie}})
		}
		res := probe(alice)
		assert.Empty(t, res.Failures, "%s: alice, admin in the database, user in the cookie", transports[0])
		assert.Equal(t, 1, res.Completed, transports[0])

		res = probe(bob)
		require.Len(t, res.ConnectErrors, 1, "%s: bob, user in the database, admin in the cookie", transports[0])
		assert.Equal(t, "The /admin namespace requires the role admin.", res.ConnectErrors[0].Message)
	}
	// The edge refused bob; the app's own check never saw him.
	assert.NotContains(t, app.Output(), "refused namespace=/admin")

	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path, cookie string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, edgeURL+path, nil)
		require.NoError(t, err)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	const handshake = "/socket.io/?EIO=4&transport=polling"

	carol := testenv.Login(t, app.URL(), "carol", "admin")
	whoami.Kill()

	status, body := get(handshake, carol)
	assert.Equal(t, http.StatusServiceUnavailable, status, "a session the edge cannot check: %s", body)
	assert.Contains(t, body, "cannot check this session")
	status, _ = get("/api/whoami", carol)
	assert.Equal(t, http.StatusServiceUnavailable, status, "every request of that session fails closed")

	// Without a session nothing needs the app's answer.
	status, body = get(handshake, "")
	assert.Equal(t, http.StatusOK, status, body)
	// Alice's answer is cached (whoami_ttl 10m): she is not cut off.
	status, body = get("/api/whoami", alice)
	assert.Equal(t, http.StatusOK, status, body)

	logs := edge.Output()
	assert.Contains(t, logs, "whoami lookup failed, answered 503 (fail closed): GET "+whoami.URL()+"/api/whoami: unreachable")
	for _, cookie := range []string{alice, bob, carol} {
		assert.NotContains(t, logs, strings.TrimPrefix(cookie, "session="), "a cookie in the edge's log")
	}
	assert.NotContains(t, logs, secret)
}
