package socketioproxy_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

const stickySecret = "test-sticky-secret-shared-by-edges"

// startPool runs two Flask-SocketIO workers sharing a Redis queue and
// edges edges in front of both, all sharing one sticky secret. It returns
// the edges' URLs and the workers.
func startPool(t *testing.T, edges int) ([]string, []*testenv.FlaskWorker) {
	t.Helper()
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{
			Name: name, SecretKey: "pool-secret", RedisURL: "redis://" + redis,
		}))
	}
	var urls []string
	for range edges {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	log {
		level INFO
	}
	socketio_proxy {
		to %s %s
		sticky_secret %s
	}
}
`, addr, workers[0].Addr, workers[1].Addr, stickySecret)), addr)
		urls = append(urls, "http://"+addr)
	}
	return urls, workers
}

func assertBalanced(t *testing.T, res testenv.ProbeResult) {
	t.Helper()
	a, b := res.Workers["A"], res.Workers["B"]
	require.Positive(t, a, "worker A got no session: %v", res.Workers)
	require.Positive(t, b, "worker B got no session: %v", res.Workers)
	assert.LessOrEqual(t, float64(max(a, b)), 1.25*float64(min(a, b)), "spread %v", res.Workers)
}

// 200 concurrent sessions from one client address, with no cookies, each
// stay on the worker that created them, on every transport, and the
// workers share the load.
func TestSessionsStickToTheirWorkerWithoutCookies(t *testing.T) {
	urls, _ := startPool(t, 1)
	for _, tc := range []struct {
		name       string
		transports []string
	}{
		{"polling", []string{"polling"}},
		{"websocket", []string{"websocket"}},
		{"default", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := testenv.RunProbe(t, testenv.ProbeOptions{
				URL:         urls[0],
				Transports:  tc.transports,
				Sessions:    200,
				Echoes:      5,
				UpgradeWait: tc.transports == nil,
				TimeoutMs:   90000,
			})
			require.Empty(t, res.Failures)
			assert.Equal(t, 200, res.Completed)
			// Each session's acks all came from one worker, so the
			// counts add up to the sessions.
			assert.Equal(t, 200, res.Workers["A"]+res.Workers["B"], "a session answered by two workers: %v", res.Workers)
			assertBalanced(t, res)
		})
	}
}

// Two edges that share only their configuration route every request of a
// session to the same worker, whichever edge each request reaches.
func TestSessionsStickAcrossEdgesChosenPerRequest(t *testing.T) {
	urls, _ := startPool(t, 2)
	var targets []*url.URL
	for _, u := range urls {
		target, err := url.Parse(u)
		require.NoError(t, err)
		targets = append(targets, target)
	}
	// A per-request random balancer in front of the edges, as DNS or an
	// L4 balancer would spread clients, but harsher: every request,
	// including each long-poll and the WebSocket upgrade, picks anew.
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(targets[rand.IntN(len(targets))])
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
	})
	t.Cleanup(front.Close)

	for _, transports := range [][]string{{"polling"}, nil} {
		res := testenv.RunProbe(t, testenv.ProbeOptions{
			URL:         front.URL,
			Transports:  transports,
			Sessions:    100,
			Echoes:      5,
			UpgradeWait: transports == nil,
			TimeoutMs:   90000,
		})
		require.Empty(t, res.Failures, "transports %v", transports)
		assert.Equal(t, 100, res.Completed)
		assert.Equal(t, 100, res.Workers["A"]+res.Workers["B"], "a session answered by two workers: %v", res.Workers)
	}
}

// A sid the edge did not seal, or a sealed one altered in any way, is
// refused with the Engine.IO error and the refusal is logged; a worker's
// own sid, valid on that worker, is refused too.
func TestForgedAndTamperedSIDsAreRefused(t *testing.T) {
	urls, workers := startPool(t, 1)
	edge := urls[0]

	handshake := func(base string) string {
		res, err := http.Get(base + "/socket.io/?EIO=4&transport=polling")
		require.NoError(t, err)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		require.Equal(t, 200, res.StatusCode, string(body))
		return strings.Split(strings.Split(string(body), `"sid":"`)[1], `"`)[0]
	}
	poll := func(sid string) (int, string) {
		res, err := http.Post(edge+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain", strings.NewReader("3"))
		require.NoError(t, err)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}

	sealed := handshake(edge)
	status, body := poll(sealed)
	require.Equal(t, 200, status, "a genuine sid works: %s", body)

	workerSID := handshake(workers[0].URL())
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for name, sid := range map[string]string{
		"worker's own sid":      workerSID,
		"last character":        flip(sealed, len(sealed)-1),
		"first character":       flip(sealed, 0),
		"seal moved to another": workerSID + sealed[len(sealed)-20:],
		"made up":               strings.Repeat("A", 40),
	} {
		status, body := poll(sid)
		assert.Equal(t, 400, status, name)
		assert.JSONEq(t, `{"code":1,"message":"Session ID unknown"}`, body, name)
	}
}

// A handshake whose worker turns out to be gone is moved to a live one
// (no session exists yet, so nothing is lost) and the dead worker leaves
// rotation: no client sees an error for it, on either transport.
func TestHandshakesAvoidADeadWorker(t *testing.T) {
	urls, workers := startPool(t, 1)
	workers[0].Kill()
	base := strings.TrimPrefix(urls[0], "http://")
	for i := range 10 {
		c, res, err := websocket.DefaultDialer.Dial("ws://"+base+"/socket.io/?EIO=4&transport=websocket", nil)
		if res != nil && res.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(res.Body)
			t.Fatalf("websocket handshake %d: %s %s", i, res.Status, body)
		}
		require.NoError(t, err, "websocket handshake %d", i)
		_, open, err := c.ReadMessage()
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(open), "0{"), string(open))
		c.Close()

		res, err = http.Get(urls[0] + "/socket.io/?EIO=4&transport=polling")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, 200, res.StatusCode, "polling handshake %d: %s", i, body)
	}
}
