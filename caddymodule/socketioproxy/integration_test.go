package socketioproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// startStack runs one real Flask-SocketIO worker behind the edge, with
// reverse_proxy serving the rest of the app, and returns the edge's URL.
func startStack(t *testing.T) (edgeURL string, worker *testenv.FlaskWorker) {
	t.Helper()
	testenv.RequireNode(t)
	worker = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s
	reverse_proxy %[2]s
}
`, edge, worker.Addr)), edge)
	return "http://" + edge, worker
}

// The official socket.io-client completes 100 acknowledged echoes through
// the edge on each transport, and every ack carries what was sent.
func TestSocketIOClientEchoesThroughTheEdgeOnEveryTransport(t *testing.T) {
	edgeURL, _ := startStack(t)
	for _, tc := range []struct {
		name       string
		transports []string
		final      string
	}{
		{"polling", []string{"polling"}, "polling"},
		{"websocket", []string{"websocket"}, "websocket"},
		{"default", nil, "websocket"}, // polling, then upgrade
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := testenv.RunProbe(t, testenv.ProbeOptions{
				URL:         edgeURL,
				Transports:  tc.transports,
				Sessions:    1,
				Echoes:      100,
				PayloadSize: 256,
				UpgradeWait: tc.transports == nil,
				TimeoutMs:   60000,
			})
			require.Empty(t, res.Failures)
			assert.Equal(t, 1, res.Completed)
			assert.Equal(t, map[string]int{tc.final: 1}, res.Transports)
			assert.Equal(t, map[string]int{"w1": 1}, res.Workers)
		})
	}
}

// Requests outside the Engine.IO path reach the next handler.
func TestNonSocketIORequestsGoToTheNextHandler(t *testing.T) {
	edgeURL, _ := startStack(t)
	res, err := http.Get(edgeURL + "/healthz")
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	assert.Equal(t, 200, res.StatusCode)
	assert.Contains(t, string(body), "w1")
}

// A forged sid never reaches a worker half-checked, and an unknown one
// gets the Engine.IO error that makes the client open a new session.
func TestEdgeRefusesMalformedEngineIORequestsWithEngineIOErrors(t *testing.T) {
	edgeURL, _ := startStack(t)
	for _, tc := range []struct {
		method, query string
		status        int
		body          string
	}{
		{"GET", "EIO=3&transport=polling", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"GET", "EIO=4&transport=polling&sid=a&sid=b", 400, `{"code":3,"message":"Bad request"}`},
		{"GET", "EIO=4&transport=polling&%73id=x", 400, `{"code":3,"message":"Bad request"}`},
		{"GET", "EIO=4&transport=carrier-pigeon", 400, `{"code":0,"message":"Transport unknown"}`},
		{"POST", "EIO=4&transport=polling", 400, `{"code":2,"message":"Bad handshake method"}`},
		{"GET", "EIO=4&transport=websocket", 400, `{"code":3,"message":"Bad request"}`}, // no Upgrade header
	} {
		req, err := http.NewRequest(tc.method, edgeURL+"/socket.io/?"+tc.query, strings.NewReader(""))
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, tc.status, res.StatusCode, tc.query)
		assert.JSONEq(t, tc.body, string(body), tc.query)
	}
}

// A polling body over max_payload is refused with 413 before the worker
// sees any of it.
func TestOversizedPollingBodyIs413(t *testing.T) {
	edgeURL, _ := startStack(t)
	res, err := http.Get(edgeURL + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode, string(open))
	sid := strings.Split(strings.Split(string(open), `"sid":"`)[1], `"`)[0]

	big := "4" + strings.Repeat("x", 1_000_000) // one byte over the default max_payload
	res, err = http.Post(edgeURL+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain", strings.NewReader(big))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
}

// A WebSocket message over max_payload closes its session with 1009 and
// never reaches the worker, which, reached directly, acts on the same
// message; the edge counts it as refusals_total{reason="size"}.
func TestOversizedWebSocketMessageClosesTheSessionWith1009(t *testing.T) {
	testenv.RequireNode(t)
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s {
		max_payload 1KB
	}
}
`, addr, worker.Addr)), addr)
	// A CONNECT to /admin, which the worker logs ("namespace=/admin")
	// whether it admits it or not, padded past 1 KB.
	big := `40/admin,{"pad":"` + strings.Repeat("x", 2000) + `"}`

	open := func(base string) *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(base, "http", "ws", 1)+"/socket.io/?EIO=4&transport=websocket", nil)
		require.NoError(t, err)
		t.Cleanup(func() { ws.Close() })
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := ws.ReadMessage()
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(msg), "0{"), string(msg))
		return ws
	}

	// The control: straight to the worker, the message is acted on.
	direct := open(worker.URL())
	require.NoError(t, direct.WriteMessage(websocket.TextMessage, []byte(big)))
	require.Eventually(t, func() bool { return strings.Contains(worker.Output(), "namespace=/admin") },
		10*time.Second, 20*time.Millisecond, "the worker did not act on the padded CONNECT; the test proves nothing")
	direct.Close()
	seen := strings.Count(worker.Output(), "namespace=/admin")

	before := scrape(t, edge.AdminAddr)
	ws := open("http://" + addr)
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte(big)))
	var err error
	for err == nil {
		_, _, err = ws.ReadMessage()
	}
	var ce *websocket.CloseError
	require.True(t, errors.As(err, &ce), "the session ended with %v, not a close frame", err)
	assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)

	// The edge's count moves once the relay has ended; the worker, told
	// 1009 too, has by then dropped the session without the message.
	require.Eventually(t, func() bool {
		return sum(scrape(t, edge.AdminAddr), `^caddy_socketio_refusals_total\{reason="size"\}`)-
			sum(before, `^caddy_socketio_refusals_total\{reason="size"\}`) == 1
	}, 10*time.Second, 20*time.Millisecond, "refusals_total{reason=\"size\"} did not move by one")
	require.Eventually(t, func() bool {
		return sum(scrape(t, edge.AdminAddr), `^caddy_socketio_sessions\{`) == 0
	}, 10*time.Second, 20*time.Millisecond, "the refused session is still live")
	assert.Equal(t, seen, strings.Count(worker.Output(), "namespace=/admin"), "worker log:\n%s", worker.Output())
}

// A polling POST body trickled a byte at a time is cut off after
// body_timeout and never reaches the worker.
func TestTrickledPollingBodyIsCutOff(t *testing.T) {
	testenv.RequireNode(t)
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s {
		body_timeout 300ms
	}
}
`, edge, worker.Addr)), edge)
	res, err := http.Get("http://" + edge + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	sid := strings.Split(strings.Split(string(open), `"sid":"`)[1], `"`)[0]

	conn, err := net.Dial("tcp", edge)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n4", sid, edge)
	require.NoError(t, err)
	start := time.Now()
	// Keep trickling until the edge hangs up.
	buf := make([]byte, 512)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	go func() {
		for range 50 {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // the trickle itself, not a wait for readiness
		}
	}()
	_, err = conn.Read(buf)
	for err == nil {
		_, err = conn.Read(buf)
	}
	elapsed := time.Since(start)
	assert.Less(t, elapsed, 3*time.Second, "the trickle held the connection for %v", elapsed)
}
