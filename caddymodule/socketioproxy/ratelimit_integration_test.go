package socketioproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

func startLimitedStack(t *testing.T) string {
	t.Helper()
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	return startLimitedEdge(t, worker.Addr, "rate_limit connect 3/m\n\t\trate_limit messages 5/m")
}

// startLimitedEdge starts an edge in front of the worker at addr with the
// socketio_proxy lines given.
func startLimitedEdge(t *testing.T, addr, lines string) string {
	t.Helper()
	edge := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s {
		%[3]s
	}
}
`, edge, addr, lines)), edge)
	return edge
}

// The fourth session from one address within the minute gets 429 with a
// Retry-After, before any worker sees it.
func TestHandshakesOverTheConnectRateGet429WithRetryAfter(t *testing.T) {
	edge := startLimitedStack(t)
	for i := range 3 {
		res, err := http.Get("http://" + edge + "/socket.io/?EIO=4&transport=polling")
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode, "handshake %d", i)
	}
	res, err := http.Get("http://" + edge + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Equal(t, "20", res.Header.Get("Retry-After"))
	assert.Contains(t, string(body), "Too many requests")
}

// A WebSocket session that sends more messages than its rate is closed
// with 1008 and the reason; the messages over the limit never reach the
// worker.
func TestWebSocketOverTheMessageRateIsClosedWith1008(t *testing.T) {
	edge := startLimitedStack(t)
	c := dialSession(t, edge)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	acks := 0
	for i := range 10 {
		if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42%d["echo",%d]`, i, i))); err != nil {
			break
		}
	}
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.True(t, errors.As(err, &ce), "got %v", err)
			assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
			assert.Equal(t, "message rate limit exceeded; retry after 60 s", ce.Text, "the wait is the window of rate_limit messages")
			break
		}
		if strings.HasPrefix(string(msg), "43") {
			acks++
		}
	}
	// "40" was the first message of the five allowed.
	assert.LessOrEqual(t, acks, 4)
}

// A polling session that sends more messages than its rate gets 429 and
// its worker closes it, so its next poll is refused.
func TestPollingOverTheMessageRateIsClosed(t *testing.T) {
	edge := startLimitedStack(t)
	base := "http://" + edge + "/socket.io/?EIO=4&transport=polling"
	res, err := http.Get(base)
	require.NoError(t, err)
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	sid := strings.Split(strings.Split(string(open), `"sid":"`)[1], `"`)[0]

	post := func(body string) *http.Response {
		res, err := http.Post(base+"&sid="+sid, "text/plain", strings.NewReader(body))
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	assert.Equal(t, 200, post("40").StatusCode)
	res = post(`42["echo",1]` + "\x1e" + `42["echo",2]` + "\x1e" + `42["echo",3]` + "\x1e" + `42["echo",4]` + "\x1e" + `42["echo",5]`)
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.NotEmpty(t, res.Header.Get("Retry-After"))

	// python-engineio answers the first poll after a close with 500,
	// then "Invalid session"; either way the session is gone.
	status := 0
	for range 3 {
		res, err = http.Get(base + "&sid=" + sid)
		require.NoError(t, err)
		res.Body.Close()
		if status = res.StatusCode; status == 400 {
			break
		}
		require.NotEqual(t, 200, status, "the session still answers polls")
	}
	assert.Equal(t, 400, status, "the session is gone")
}

// A polling session over its message rate gets 429 with Retry-After (the
// limit's window) on its waiting GET as well as on the POST, whichever
// the client reads first: ended by its worker instead, the GET would
// look like a lost worker, and the client would reconnect at once.
func TestPollingOverTheMessageRateEndsTheWaitingGETWith429(t *testing.T) {
	edge := startLimitedStack(t)
	base := "http://" + edge + "/socket.io/?EIO=4&transport=polling"
	res, err := http.Get(base)
	require.NoError(t, err)
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	sid := strings.Split(strings.Split(string(open), `"sid":"`)[1], `"`)[0]
	res, err = http.Post(base+"&sid="+sid, "text/plain", strings.NewReader("40"))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	// The CONNECT reply, so that the next GET waits at the worker.
	res, err = http.Get(base + "&sid=" + sid)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.True(t, strings.HasPrefix(string(body), "40{"), "CONNECT reply %q", body)

	type answer struct {
		status     int
		retryAfter string
		body       string
		err        error
	}
	waiting := make(chan answer, 1)
	go func() {
		res, err := http.Get(base + "&sid=" + sid)
		if err != nil {
			waiting <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		waiting <- answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), body: string(b)}
	}()
	// python-engineio holds a poll with nothing to send for its ping
	// interval (25 s): the GET must still be waiting when the limit is
	// crossed, which this also checks.
	select {
	case a := <-waiting:
		t.Fatalf("the GET ended before the limit was crossed: %+v", a)
	case <-time.After(300 * time.Millisecond):
	}

	res, err = http.Post(base+"&sid="+sid, "text/plain", strings.NewReader(strings.Repeat(`42["echo",1]`+"\x1e", 5)+`42["echo",1]`))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Equal(t, "60", res.Header.Get("Retry-After"))

	select {
	case a := <-waiting:
		require.NoError(t, a.err)
		assert.Equal(t, http.StatusTooManyRequests, a.status, "the waiting GET: %q", a.body)
		assert.Equal(t, "60", a.retryAfter)
		assert.JSONEq(t, `{"code":3,"message":"Too many requests; retry after 60 s"}`, a.body)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting GET was not answered")
	}
}

// A client that keeps sending after the edge closed it for its message
// rate still reads the 1008 close and its reason: the edge ends the TCP
// connection only after the client's close, or a grace, so unread
// messages do not turn the close into a reset that hides the reason (a
// browser then reports 1006, and its page cannot tell how long to wait).
// Relayed and bridged (recover) sessions alike.
func TestWebSocketRateCloseSurvivesAClientStillSending(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	for _, extra := range []string{"", "recover 30s"} {
		t.Run("with "+extra, func(t *testing.T) {
			edge := startLimitedEdge(t, worker.Addr, "rate_limit messages 5/m\n\t\t"+extra)
			rateCloseRounds(t, edge)
		})
	}
}

func rateCloseRounds(t *testing.T, edge string) {
	for round := range 10 {
		c := dialSession(t, edge)
		// As a page does: many emits in one go, then it reads.
		msg := []byte(`42["echo","` + strings.Repeat("x", 200) + `"]`)
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for range 30 {
			if c.WriteMessage(websocket.TextMessage, msg) != nil {
				break
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var err2 error
		for err2 == nil {
			_, _, err2 = c.ReadMessage()
		}
		var ce *websocket.CloseError
		if assert.True(t, errors.As(err2, &ce), "round %d: got %v, want the edge's 1008 close", round, err2) {
			assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
			assert.Contains(t, ce.Text, "retry after")
		}
		// Then the edge ends the TCP connection in order (FIN), not
		// with a reset, though the client's messages were left unread.
		_ = c.UnderlyingConn().SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c.UnderlyingConn())
		assert.NoError(t, err, "round %d: the edge reset the connection instead of closing it", round)
		c.Close()
	}
}
