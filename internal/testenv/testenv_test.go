package testenv_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// These tests prove the harness and the demo app against each other, with
// no edge in between.

func requireAllCompleted(t *testing.T, res testenv.ProbeResult) {
	t.Helper()
	require.Empty(t, res.Failures)
	require.Empty(t, res.ConnectErrors)
	require.Equal(t, res.Sessions, res.Completed)
}

func TestProbeEchoesOverEachTransport(t *testing.T) {
	testenv.RequireNode(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})

	for _, tc := range []struct {
		name       string
		transports []string
		want       string
	}{
		{"polling", []string{"polling"}, "polling"},
		{"websocket", []string{"websocket"}, "websocket"},
		{"default upgrades to websocket", nil, "websocket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := testenv.RunProbe(t, testenv.ProbeOptions{
				URL:         w.URL(),
				Transports:  tc.transports,
				Sessions:    3,
				Echoes:      20,
				PayloadSize: 2000,
				UpgradeWait: true,
			})
			requireAllCompleted(t, res)
			assert.Equal(t, map[string]int{tc.want: 3}, res.Transports)
			assert.Equal(t, map[string]int{"w1": 3}, res.Workers)
			assert.Positive(t, res.LatencyMs.Max)
		})
	}
}

func TestProbeReportsEchoAcksAnsweredByTheWorker(t *testing.T) {
	testenv.RequireNode(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{})

	res := testenv.RunProbe(t, testenv.ProbeOptions{URL: w.URL(), Sessions: 10, Echoes: 5})
	requireAllCompleted(t, res)
	// The default worker name is its address.
	assert.Equal(t, map[string]int{w.Addr: 10}, res.Workers)
}

func TestAdminNamespaceRefusesAnonymousWithReadableConnectError(t *testing.T) {
	testenv.RequireNode(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{})

	res := testenv.RunProbe(t, testenv.ProbeOptions{URL: w.URL(), Namespace: "/admin"})

	assert.Zero(t, res.Completed)
	require.Len(t, res.ConnectErrors, 1)
	ce := res.ConnectErrors[0]
	assert.Equal(t, "the /admin namespace requires the admin role; log in as an admin", ce.Message)
	assert.Equal(t, map[string]any{"reason": "role", "required": "admin"}, ce.Data)
	require.Len(t, res.Failures, 1)
	assert.Equal(t, "connect", res.Failures[0].Stage)
	assert.Contains(t, w.Output(), "refused namespace=/admin")
}

func TestAdminNamespaceRefusesUserRole(t *testing.T) {
	testenv.RequireNode(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{})
	cookie := testenv.Login(t, w.URL(), "alice", "user")

	res := testenv.RunProbe(t, testenv.ProbeOptions{
		URL:          w.URL(),
		Namespace:    "/admin",
		ExtraHeaders: map[string]string{"Cookie": cookie},
	})

	assert.Zero(t, res.Completed)
	require.Len(t, res.ConnectErrors, 1)
	assert.Equal(t, map[string]any{"reason": "role", "required": "admin"}, res.ConnectErrors[0].Data)
}

func TestAdminNamespaceAcceptsAdminSessionCookie(t *testing.T) {
	testenv.RequireNode(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{})
	cookie := testenv.Login(t, w.URL(), "root", "admin")

	for _, transports := range [][]string{{"polling"}, {"websocket"}, nil} {
		res := testenv.RunProbe(t, testenv.ProbeOptions{
			URL:          w.URL(),
			Transports:   transports,
			Namespace:    "/admin",
			ExtraHeaders: map[string]string{"Cookie": cookie},
			Sessions:     2,
		})
		requireAllCompleted(t, res)
	}
	assert.Contains(t, w.Output(), "connect namespace=/admin")
}

func TestLoginCookieIsReadByWhoami(t *testing.T) {
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	cookie := testenv.Login(t, w.URL(), "alice", "admin")
	require.True(t, strings.HasPrefix(cookie, "session="), cookie)

	whoami := func(cookie string) (int, map[string]any) {
		req, err := http.NewRequest("GET", w.URL()+"/api/whoami", nil)
		require.NoError(t, err)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}

	status, body := whoami(cookie)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"id": "alice", "role": "admin", "worker": "w1"}, body)

	status, body = whoami("")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Nil(t, body["id"])
}

func TestSessionCookieFromOneWorkerIsValidOnAnotherWithTheSameKey(t *testing.T) {
	a := testenv.StartFlaskWorker(t, testenv.FlaskOptions{})
	b := testenv.StartFlaskWorker(t, testenv.FlaskOptions{SecretKey: a.SecretKey})
	cookie := testenv.Login(t, a.URL(), "alice", "user")

	req, err := http.NewRequest("GET", b.URL()+"/api/whoami", nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestRoomBroadcastCrossesWorkersThroughRedis(t *testing.T) {
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	a := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "a", RedisURL: "redis://" + redis})
	b := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "b", RedisURL: "redis://" + redis, SecretKey: a.SecretKey})

	res := testenv.RunProbe(t, testenv.ProbeOptions{
		URLs:     []string{a.URL(), b.URL()},
		Sessions: 4,
		Room:     "lobby",
	})

	requireAllCompleted(t, res)
	assert.Equal(t, map[string]int{"a": 2, "b": 2}, res.Workers)
	assert.Equal(t, &testenv.ProbeBroadcasts{Sent: 4, Expected: 16, Received: 16}, res.Broadcasts)
}

// The control for the test above: without the message queue a broadcast
// reaches only its own worker's clients, so the probe does see the gap.
func TestRoomBroadcastStaysOnItsWorkerWithoutRedis(t *testing.T) {
	testenv.RequireNode(t)
	a := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "a"})
	b := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "b"})

	res := testenv.RunProbe(t, testenv.ProbeOptions{
		URLs:      []string{a.URL(), b.URL()},
		Sessions:  2,
		Room:      "lobby",
		TimeoutMs: 3000,
	})

	require.NotNil(t, res.Broadcasts)
	assert.Equal(t, 4, res.Broadcasts.Expected)
	assert.Less(t, res.Broadcasts.Received, 4)
	require.NotEmpty(t, res.Failures)
	for _, f := range res.Failures {
		assert.Equal(t, "timeout", f.Stage)
		assert.Contains(t, f.Error, "missing broadcasts")
	}
}

func TestKilledWorkerRefusesNewSessions(t *testing.T) {
	testenv.RequireNode(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{})
	w.Kill()
	w.Kill() // idempotent, and the cleanup calls it again

	res := testenv.RunProbe(t, testenv.ProbeOptions{URL: w.URL(), Transports: []string{"websocket"}})

	assert.Zero(t, res.Completed)
	require.Len(t, res.Failures, 1)
	assert.Equal(t, "connect", res.Failures[0].Stage)
}

func TestEngineIOChecksNoOriginUnlessCORSAllowedOriginsIsSet(t *testing.T) {
	handshake := func(w *testenv.FlaskWorker, origin string) *http.Response {
		req, err := http.NewRequest("GET", w.URL()+"/socket.io/?EIO=4&transport=polling", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	// Unset: the edge is the origin authority, and the worker adds no CORS
	// header the edge's would be duplicated by.
	open := testenv.StartFlaskWorker(t, testenv.FlaskOptions{})
	resp := handshake(open, "http://elsewhere.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Values("Access-Control-Allow-Origin"))

	strict := testenv.StartFlaskWorker(t, testenv.FlaskOptions{
		Env: map[string]string{"CORS_ALLOWED_ORIGINS": "http://app.example, http://other.example"},
	})
	assert.Equal(t, http.StatusBadRequest, handshake(strict, "http://elsewhere.example").StatusCode)
	resp = handshake(strict, "http://other.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "http://other.example", resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestFreePortNeverHandsOutAPortTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		port := testenv.FreePort(t)
		require.False(t, seen[port], "port %d handed out twice", port)
		seen[port] = true
	}
}

func TestProbeReportsTheCauseOfATransportError(t *testing.T) {
	testenv.RequireNode(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{
		Env: map[string]string{"CORS_ALLOWED_ORIGINS": "http://app.example"},
	})

	for transport, want := range map[string]string{
		"polling":   "xhr poll error (400)",
		"websocket": "websocket error (Unexpected server response: 400)",
	} {
		res := testenv.RunProbe(t, testenv.ProbeOptions{
			URL:          w.URL(),
			Transports:   []string{transport},
			ExtraHeaders: map[string]string{"Origin": "http://elsewhere.example"},
		})
		require.Len(t, res.Failures, 1, transport)
		assert.Equal(t, want, res.Failures[0].Error, transport)
	}
}

func TestAppRefusesToStartWithoutSecretKey(t *testing.T) {
	testenv.RequirePython(t)
	cmd := exec.Command(testenv.Python, filepath.Join(testenv.RepoRoot(t), "examples", "flask_app", "app.py"))
	cmd.Env = append(os.Environ(), "FLASK_SECRET_KEY=", "FLASK_PORT=1")
	out, err := cmd.CombinedOutput()

	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode())
	assert.Contains(t, string(out), "FLASK_SECRET_KEY is not set")
}
