package socketioproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
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

	// The client reads on, as socket.io-client does, so it answers the
	// edge's close at once; the edge waits for that answer (at most 5 s)
	// before it exits.
	type wsEnd struct {
		farewell []byte
		err      error
	}
	ended := make(chan wsEnd, 1)
	go func() {
		_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, farewell, err := ws.ReadMessage()
		if err != nil {
			ended <- wsEnd{err: err}
			return
		}
		_, _, err = ws.ReadMessage()
		ended <- wsEnd{farewell, err}
	}()

	took := edge.Stop(t)
	t.Logf("caddy exited %v after SIGTERM", took)
	assert.Less(t, took, 2*time.Second, "a waiting poll must not hold the exit for pingInterval")

	end := <-ended
	farewell, err := end.farewell, end.err
	require.NotNil(t, farewell, "no Engine.IO close packet: %v", err)
	assert.Equal(t, "1", string(farewell), "the Engine.IO close packet comes first")
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

// With drain_period, the WebSockets of an exiting edge are closed one by
// one over the period instead of all at once, each with the Engine.IO
// close packet and 1001, and each keeps working until its turn; Caddy
// exits once the last has closed.
func TestShutdownSpreadsWebSocketClosesOverTheDrainPeriod(t *testing.T) {
	const (
		sessions = 30
		period   = 3 * time.Second
	)
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy %s {
		drain_period %v
	}
}
`, addr, worker.Addr, period)), addr)

	type ending struct {
		at        time.Time
		farewell  string
		err       error
		lastAckAt time.Time
	}
	var sigterm atomic.Pointer[time.Time]
	endings := make(chan ending, sessions)
	var ready sync.WaitGroup
	for range sessions {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
		require.NoError(t, err)
		defer ws.Close()
		_, open, err := ws.ReadMessage()
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(open), "0{"), string(open))
		require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("40")))
		ready.Add(1)
		go func() {
			// Echo with an ack every 50 ms until the edge says goodbye.
			var e ending
			var acked sync.WaitGroup
			stop := make(chan struct{})
			acked.Add(1)
			go func() {
				defer acked.Done()
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for n := 1; ; n++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `42%d["echo",%d]`, n, n)) != nil {
						return
					}
				}
			}()
			first := true
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					e.at, e.err = time.Now(), err
					break
				}
				switch m := string(msg); {
				case strings.HasPrefix(m, "40"):
					if first {
						first = false
						ready.Done()
					}
				case strings.HasPrefix(m, "43"):
					if s := sigterm.Load(); s != nil {
						e.lastAckAt = time.Now()
					}
				case m == "2":
					_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
				case m == "1":
					e.farewell = m
				}
			}
			close(stop)
			acked.Wait()
			endings <- e
		}()
	}
	ready.Wait()

	now := time.Now()
	sigterm.Store(&now)
	took := edge.Stop(t)
	t.Logf("caddy exited %v after SIGTERM with drain_period %v", took, period)

	var first, last time.Duration
	workedOn := 0
	for i := range sessions {
		var e ending
		select {
		case e = <-endings:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d sessions were never closed", sessions-i, sessions)
		}
		var ce *websocket.CloseError
		require.True(t, errors.As(e.err, &ce), "a session ended with %v, not a close frame", e.err)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		assert.Equal(t, "edge shutting down", ce.Text)
		assert.Equal(t, "1", e.farewell, "the Engine.IO close packet before the close frame")
		at := e.at.Sub(now)
		if i == 0 || at < first {
			first = at
		}
		last = max(last, at)
		if e.lastAckAt.Sub(now) > period/2 {
			workedOn++
		}
	}
	t.Logf("%d sessions closed from %v to %v after SIGTERM; %d got acks more than %v after it", sessions, first, last, workedOn, period/2)
	assert.Less(t, first, period/3, "the first session closes early in the period")
	assert.Greater(t, last, period*2/3, "the last session closes late in the period")
	assert.Less(t, last, period+time.Second)
	assert.Greater(t, workedOn, 0, "sessions keep working until their turn")
	assert.GreaterOrEqual(t, took, last-100*time.Millisecond, "caddy exits after the last close")
	assert.Less(t, took, period+6*time.Second)
}
