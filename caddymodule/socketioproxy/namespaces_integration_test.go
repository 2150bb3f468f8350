package socketioproxy_test

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

// startRuledStack runs a worker behind an edge that verifies the Flask
// session and allows /admin to admins only. sessionOptions are further
// lines of the flask_session block, e.g. "max_age 3s".
func startRuledStack(t *testing.T, sessionOptions ...string) (edgeURL string, worker *testenv.FlaskWorker) {
	t.Helper()
	testenv.RequireNode(t)
	worker = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: "ns-test-secret"})
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key ns-test-secret
		%[3]s
	}
	socketio_proxy {
		to %[2]s
		namespace /admin role admin
	}
	reverse_proxy %[2]s
}
`, edge, worker.Addr, strings.Join(sessionOptions, "\n\t\t"))), edge)
	return "http://" + edge, worker
}

// Through the real stack, on each transport: a plain user and an
// anonymous client get the edge's CONNECT_ERROR on /admin (the worker
// never sees their CONNECT), a forged or foreign-key cookie counts as
// anonymous, and an admin connects.
func TestAdminNamespaceIsEnforcedOnTheWire(t *testing.T) {
	edgeURL, worker := startRuledStack(t)
	user := testenv.Login(t, worker.URL(), "uma", "user")
	admin := testenv.Login(t, worker.URL(), "ada", "admin")
	forged := admin[:len(admin)-2] + "xx"

	other := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "other", SecretKey: "another-key"})
	foreign := testenv.Login(t, other.URL(), "ada", "admin")

	for _, transports := range [][]string{{"polling"}, {"websocket"}} {
		for _, tc := range []struct {
			who, cookie, reason, message string
		}{
			{"anonymous", "", "unauthenticated", "Log in to use the /admin namespace."},
			{"user", user, "role", "The /admin namespace requires the role admin."},
			{"forged cookie", forged, "unauthenticated", "Log in to use the /admin namespace."},
			{"other key", foreign, "unauthenticated", "Log in to use the /admin namespace."},
			{"admin", admin, "", ""},
		} {
			name := fmt.Sprintf("%s/%s", transports[0], tc.who)
			opts := testenv.ProbeOptions{URL: edgeURL, Namespace: "/admin", Transports: transports, TimeoutMs: 15000}
			if tc.cookie != "" {
				opts.ExtraHeaders = map[string]string{"Cookie": tc.cookie}
			}
			res := testenv.RunProbe(t, opts)
			if tc.reason == "" {
				assert.Empty(t, res.Failures, name)
				assert.Equal(t, 1, res.Completed, name)
				continue
			}
			require.Len(t, res.ConnectErrors, 1, name)
			assert.Equal(t, tc.message, res.ConnectErrors[0].Message, name)
			data, _ := res.ConnectErrors[0].Data.(map[string]any)
			assert.Equal(t, tc.reason, data["reason"], name)
			assert.Equal(t, "/admin", data["namespace"], name)
		}
	}
	// The worker's own check never ran: the edge kept every denied
	// CONNECT from it.
	assert.NotContains(t, worker.Output(), "refused namespace=/admin")
	assert.Contains(t, worker.Output(), "connect namespace=/admin")

	// Users still reach the default namespace.
	res := testenv.RunProbe(t, testenv.ProbeOptions{URL: edgeURL, Echoes: 5, TimeoutMs: 15000,
		ExtraHeaders: map[string]string{"Cookie": user}})
	assert.Empty(t, res.Failures)
}

// On one Engine.IO session over raw polling, hand-written non-canonical
// CONNECTs to /admin from a plain user each get /admin's CONNECT_ERROR,
// and the session's default namespace keeps working.
func TestNonCanonicalAdminConnectsAreDeniedAndTheSessionLivesOn(t *testing.T) {
	edgeURL, worker := startRuledStack(t)
	user := testenv.Login(t, worker.URL(), "uma", "user")
	client := &http.Client{Timeout: 40 * time.Second}
	do := func(method, query, body string) (int, string) {
		req, err := http.NewRequest(method, edgeURL+"/socket.io/?EIO=4&transport=polling"+query, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Cookie", user)
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// poll reads until the wanted packet arrives (answering pings).
	poll := func(sid, want string) string {
		for range 5 {
			status, body := do("GET", "&sid="+sid, "")
			require.Equal(t, 200, status, body)
			for p := range strings.SplitSeq(body, "\x1e") {
				if p == "2" {
					do("POST", "&sid="+sid, "3")
				}
				if strings.HasPrefix(p, want) {
					return p
				}
			}
		}
		t.Fatalf("no packet starting %q", want)
		return ""
	}

	status, open := do("GET", "", "")
	require.Equal(t, 200, status)
	sid := strings.Split(strings.Split(open, `"sid":"`)[1], `"`)[0]
	status, body := do("POST", "&sid="+sid, "40")
	require.Equal(t, 200, status, body)
	poll(sid, "40{")

	denied, refused := 0, 0
	for _, connect := range []string{"40/admin,", "40/admin", "40/admin?x=1,", "401-/admin,", "40/admin,{\"token\":\"t\"}", "4\"0/admin,\""} {
		status, body := do("POST", "&sid="+sid, connect)
		if status == 400 {
			refused++ // refused outright: nothing reached the worker
			continue
		}
		denied++
		require.Equal(t, 200, status, "%q: %s", connect, body)
		got := poll(sid, "44")
		assert.True(t, strings.HasPrefix(got, `44/admin,{"message":"The /admin namespace requires the role admin."`), "%q got %q", connect, got)
	}

	t.Logf("non-canonical CONNECTs to /admin: %d answered with CONNECT_ERROR, %d refused outright", denied, refused)
	assert.GreaterOrEqual(t, denied, 5)

	status, body = do("POST", "&sid="+sid, `420["echo","still here"]`)
	require.Equal(t, 200, status, body)
	ack := poll(sid, "430")
	assert.Contains(t, ack, `"data":"still here"`)
	assert.NotContains(t, worker.Output(), "refused namespace=/admin")
}
