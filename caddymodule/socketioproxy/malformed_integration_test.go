package socketioproxy_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ambiguousConnect is a message python-engineio decodes as the JSON
// string "0/admin,", which python-socketio then takes for a CONNECT to
// /admin: a way around any rule that reads packets more naively than
// python does.
const ambiguousConnect = `4"0/admin,"`

// Without any namespace rule, a Socket.IO packet the edge cannot read
// exactly as python-socketio does is refused on both transports, logged,
// and never reaches the worker; the worker itself, reached directly,
// acts on the same packet. Ordinary packets of the session pass.
func TestMalformedSocketIOPacketsAreRefusedWithoutNamespaceRules(t *testing.T) {
	edgeURL, worker := startStack(t)

	// The control: sent straight to the worker, the packet reaches
	// python-socketio's /admin connect handler.
	sid := pollingSession(t, worker.URL())
	post(t, worker.URL(), sid, ambiguousConnect)
	require.Eventually(t, func() bool { return strings.Contains(worker.Output(), "namespace=/admin") },
		10*time.Second, 20*time.Millisecond, "the worker did not act on %q; the test proves nothing", ambiguousConnect)
	before := strings.Count(worker.Output(), "namespace=/admin")

	// Polling through the edge: 400, and the session goes on.
	sid = pollingSession(t, edgeURL)
	status, body := post(t, edgeURL, sid, "40\x1e"+ambiguousConnect)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.JSONEq(t, `{"code":3,"message":"Bad request"}`, body)
	status, _ = post(t, edgeURL, sid, "40")
	assert.Equal(t, http.StatusOK, status)

	// WebSocket through the edge: the session is closed with 1008 and
	// the reason, after the packets before it were relayed.
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(edgeURL, "http", "ws", 1)+"/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err)
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, open, err := ws.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(open), "0{"), string(open))
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("40")))
	_, reply, err := ws.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(reply), "40{"), "CONNECT reply %q", reply)
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte(`42["echo","before"]`)))
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte(ambiguousConnect)))
	var ce *websocket.CloseError
	for err == nil {
		_, _, err = ws.ReadMessage()
	}
	require.True(t, errors.As(err, &ce), "the session ended with %v, not a close frame", err)
	assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	assert.Contains(t, ce.Text, "malformed Socket.IO packet")

	// Neither reached python-socketio.
	assert.Equal(t, before, strings.Count(worker.Output(), "namespace=/admin"), "worker log:\n%s", worker.Output())
}

// pollingSession opens an Engine.IO polling session at base and returns
// its sid.
func pollingSession(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(open))
	return strings.Split(strings.Split(string(open), `"sid":"`)[1], `"`)[0]
}

// post sends a polling body and returns the reply.
func post(t *testing.T, base, sid, body string) (int, string) {
	t.Helper()
	res, err := http.Post(base+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain;charset=UTF-8", strings.NewReader(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b)
}
