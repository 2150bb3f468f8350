package socketioproxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Plain WebSockets through Caddy are relayed by the event engine, new
// WebSocket-only sessions and upgrades alike: while idle they hold no
// goroutine at the edge, and messages still cross both ways.
func TestIdleWebSocketsHoldNoGoroutineAtTheEdge(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy %s
}
`, addr, worker.Addr)), addr)

	// A first session, so that what the edge starts once is part of
	// the baseline.
	first := dialSession(t, addr)
	echo(t, first, 0)
	baseline := settledGoroutines(t, edge.AdminAddr, -1)

	const n = 100
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialSession(t, addr)
	}
	for i, c := range conns {
		echo(t, c, i+1)
	}
	// The gauge counts a relay once relay.Start has returned, a moment
	// after the client may have had its open packet.
	var m map[string]float64
	assert.Eventually(t, func() bool {
		m = scrape(t, edge.AdminAddr)
		return m[`caddy_socketio_websocket_relays{engine="event"}`] == float64(n+1)
	}, 5e9, 10e6, "relays on the event engine")
	assert.Equal(t, 0.0, m[`caddy_socketio_websocket_relays{engine="goroutine"}`])
	idle := settledGoroutines(t, edge.AdminAddr, -1)
	t.Logf("edge goroutines: %d with one session, %d with %d more idle", baseline, idle, n)
	assert.Less(t, idle-baseline, 10, "goroutines held by %d idle WebSockets", n)

	for _, c := range append(conns, first) {
		c.Close()
	}
	require.Eventually(t, func() bool {
		return scrape(t, edge.AdminAddr)[`caddy_socketio_websocket_relays{engine="event"}`] == 0
	}, 15e9, 20e6, "relays still counted after every client closed")
}

// dialSession opens a WebSocket-only Engine.IO session through the edge
// and connects it to the default namespace.
func dialSession(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, open, err := c.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(open), "0{"), string(open))
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("40")))
	_, connected, err := c.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(connected), "40{"), string(connected))
	return c
}

// echo sends the worker an acknowledged echo and waits for its answer.
func echo(t *testing.T, c *websocket.Conn, id int) {
	t.Helper()
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42%d["echo","hi %d"]`, id, id))))
	for {
		_, msg, err := c.ReadMessage()
		require.NoError(t, err)
		if strings.HasPrefix(string(msg), fmt.Sprintf("43%d[", id)) {
			assert.Contains(t, string(msg), fmt.Sprintf("hi %d", id))
			return
		}
	}
}
