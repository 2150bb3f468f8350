package socketioproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// When Caddy exits, a relayed WebSocket gets the Engine.IO close packet
// and a 1001 close, and a waiting long-poll gets the Engine.IO close packet, so both clients reconnect
// at once; Caddy does not wait out the poll.
func TestShutdownClosesSessionsCleanly(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy %s
}
`, addr, worker.Addr)), addr)

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err)
	defer ws.Close()
	_, open, err := ws.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(open), "0{"))

	base := "http://" + addr + "/socket.io/?EIO=4&transport=polling"
	res, err := http.Get(base)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	sid := strings.Split(strings.Split(string(body), `"sid":"`)[1], `"`)[0]
	res, err = http.Post(base+"&sid="+sid, "text/plain", strings.NewReader("40"))
	require.NoError(t, err)
	res.Body.Close()
	res, err = http.Get(base + "&sid=" + sid) // the CONNECT reply
	require.NoError(t, err)
	res.Body.Close()

	type pollResult struct {
		status int
		body   string
		err    error
	}
	polled := make(chan pollResult, 1)
	sent := make(chan struct{})
	go func() {
		// Waits at the worker for up to pingInterval (25s).
		req, _ := http.NewRequest("GET", base+"&sid="+sid, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) },
		}))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			polled <- pollResult{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		polled <- pollResult{status: res.StatusCode, body: string(b)}
	}()
	<-sent
	require.Eventually(t, func() bool {
		res, err := http.Get("http://" + edge.AdminAddr + "/socketio/upstreams")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return strings.Contains(string(b), `"polling":1`) && strings.Contains(string(b), `"websocket":1`)
	}, 10*time.Second, 20*time.Millisecond)

	took := edge.Stop(t)
	t.Logf("caddy exited %v after SIGTERM", took)
	assert.Less(t, took, 10*time.Second, "a waiting poll must not hold the exit for pingInterval")

	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, farewell, err := ws.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "1", string(farewell), "the Engine.IO close packet comes first")
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	require.True(t, errors.As(err, &ce), "the WebSocket ended with %v, not a close frame", err)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	assert.Equal(t, "edge shutting down", ce.Text)

	select {
	case p := <-polled:
		require.NoError(t, p.err)
		assert.Equal(t, 200, p.status)
		assert.Equal(t, "1", p.body, "the Engine.IO close packet")
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting poll got no answer")
	}
}
