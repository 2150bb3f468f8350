package h1serve

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (server, client net.Conn) { return testenv.TCPPair(t) }

// serveRaw sends raw on a new connection, has s serve it, and returns
// Serve's outcome, the bytes it declined and what the client read.
func serveRaw(t *testing.T, s *Server, raw string) (Outcome, []byte, string) {
	t.Helper()
	return serveRawAfter(t, s, raw, false)
}

// serveRawAfter is serveRaw on a connection whose last request was a
// POST when afterPost is true.
func serveRawAfter(t *testing.T, s *Server, raw string, afterPost bool) (Outcome, []byte, string) {
	t.Helper()
	server, client := pair(t)
	_, err := client.Write([]byte(raw))
	require.NoError(t, err)
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = 200 * time.Millisecond
	}
	out, pending, _ := s.Serve(server, afterPost)
	if out != Closed && out != Taken {
		server.Close()
	}
	got, _ := io.ReadAll(client)
	return out, pending, string(got)
}

func handler(f func(w http.ResponseWriter, r *http.Request)) *Server {
	return &Server{Handler: http.HandlerFunc(f)}
}

const get = "GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: example.com\r\n\r\n"

func TestAShortResponseGoesOutWithItsLength(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "example.com", r.Host)
		assert.Equal(t, "/socket.io/", r.URL.Path)
		assert.NotEmpty(t, r.RemoteAddr)
		assert.NotNil(t, r.Context().Value(http.LocalAddrContextKey))
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "2")
	})
	out, _, got := serveRaw(t, s, get)
	assert.Equal(t, Idle, out)
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, int64(1), res.ContentLength)
	assert.NotEmpty(t, res.Header.Get("Date"))
	body, _ := io.ReadAll(res.Body)
	assert.Equal(t, "2", string(body))
}

func TestALongOrFlushedResponseIsChunked(t *testing.T) {
	long := strings.Repeat("x", 3*holdBody) + strings.Repeat("y", 3*bufSize)
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, long)
		w.Header().Set("Trailer-Not-Declared", "dropped")
	})
	out, _, got := serveRaw(t, s, get)
	assert.Equal(t, Idle, out)
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"chunked"}, res.TransferEncoding)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Equal(t, "a"+long, string(body))
}

func TestDeclaredTrailersFollowTheBody(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "7")
	})
	_, _, got := serveRaw(t, s, get)
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	assert.Equal(t, "body", string(body))
	assert.Equal(t, "42", res.Trailer.Get("X-Sum"))
	assert.Equal(t, "7", res.Trailer.Get("X-Late"))
}

func TestADeclaredLengthIsKeptAndAShortBodyClosesTheConnection(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "short")
	})
	out, _, got := serveRaw(t, s, get)
	assert.Equal(t, Closed, out)
	assert.Contains(t, got, "Content-Length: 10\r\n")
	assert.True(t, strings.HasSuffix(got, "\r\n\r\nshort"), got)

	s = handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, err := io.WriteString(w, "too long")
		assert.ErrorIs(t, err, http.ErrContentLength)
	})
	out, _, _ = serveRaw(t, s, get)
	assert.Equal(t, Closed, out)
}

func TestHeaderValuesCannotSplitTheResponse(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Evil"] = []string{"a\r\nSet-Cookie: owned=1"}
		w.Header()["Bad Name"] = []string{"x"}
	})
	_, _, got := serveRaw(t, s, get)
	assert.NotContains(t, got, "\r\nSet-Cookie")
	assert.NotContains(t, got, "Bad Name")
	assert.Contains(t, got, "X-Evil: a  Set-Cookie: owned=1\r\n")
}

func TestStatusesWithoutBodyAndInformationalResponses(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.js>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusNoContent)
		_, err := io.WriteString(w, "x")
		assert.ErrorIs(t, err, http.ErrBodyNotAllowed)
	})
	out, _, got := serveRaw(t, s, get)
	assert.Equal(t, Idle, out)
	assert.True(t, strings.HasPrefix(got, "HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\nHTTP/1.1 204 No Content\r\n"), got)
	assert.NotContains(t, got, "Content-Length")
	assert.NotContains(t, got, "chunked")
}

func TestAConnectionCloseAnswerClosesTheConnection(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
	})
	out, _, got := serveRaw(t, s, get)
	assert.Equal(t, Closed, out)
	assert.Contains(t, got, "Connection: close\r\n")
}

func TestAPanicClosesTheConnectionAndIsLogged(t *testing.T) {
	var logged string
	s := handler(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	s.ErrorLog = func(msg string, err error) { logged = msg + ": " + err.Error() }
	out, _, got := serveRaw(t, s, get)
	assert.Equal(t, Closed, out)
	assert.Empty(t, got)
	assert.Contains(t, logged, "boom")

	logged = ""
	s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	out, _, _ = serveRaw(t, s, get)
	assert.Equal(t, Closed, out)
	assert.Empty(t, logged)
}

func TestPipelinedRequestsAreServedInTurn(t *testing.T) {
	n := 0
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		n++
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+":"+string(body))
	})
	post := "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\n40abc"
	out, _, got := serveRaw(t, s, post+"\r\n"+get+post)
	assert.Equal(t, Idle, out)
	assert.Equal(t, 3, n)
	br := bufio.NewReader(strings.NewReader(got))
	for _, want := range []string{"POST:40abc", "GET:", "POST:40abc"} {
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		assert.Equal(t, want, string(body))
	}
}

func TestAnUnreadBodyIsSkipped(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {})
	post := "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n\r\nGET /x"
	out, _, got := serveRaw(t, s, post+get)
	assert.Equal(t, Idle, out)
	assert.Equal(t, 2, strings.Count(got, "HTTP/1.1 200 OK"))
}

// What net/http treats specially is declined, with every byte read.
func TestRequestsNetHTTPTreatsSpeciallyAreDeclinedWhole(t *testing.T) {
	q := "/socket.io/?EIO=4&transport=polling&sid=abc"
	cases := map[string]string{
		"HTTP/1.0":          "GET " + q + " HTTP/1.0\r\nHost: a\r\n\r\n",
		"Connection: close": "GET " + q + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"Connection: other": "GET " + q + " HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n",
		"Upgrade":           "GET " + q + " HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
		"Expect":            "POST " + q + " HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
		"chunked body":      "POST " + q + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n40\r\n0\r\n\r\n",
		"GET with a body":   "GET " + q + " HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"body not all read": "POST " + q + " HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\nabc",
		"absolute URI":      "GET http://b" + q + " HTTP/1.1\r\nHost: a\r\n\r\n",
		"no Host":           "GET " + q + " HTTP/1.1\r\n\r\n",
		"two Hosts":         "GET " + q + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"bad Host":          "GET " + q + " HTTP/1.1\r\nHost: a b\r\n\r\n",
		"two lengths":       "POST " + q + " HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n40x",
		"bad header value":  "GET " + q + " HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
		"OPTIONS":           "OPTIONS " + q + " HTTP/1.1\r\nHost: a\r\n\r\n",
		"not a session's":   "GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
		"garbage":           "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
		"head too large":    "GET " + q + " HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", bufSize) + "\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			s := handler(func(w http.ResponseWriter, r *http.Request) { t.Error("served") })
			s.Accept = func(r *http.Request) bool { return strings.Contains(r.URL.RawQuery, "sid=") }
			out, pending, _ := serveRaw(t, s, raw)
			assert.Equal(t, Declined, out)
			if len(raw) > bufSize {
				assert.Equal(t, raw[:bufSize], string(pending))
			} else {
				assert.Equal(t, raw, string(pending))
			}
		})
	}
}

func TestAClientThatLeavesOrStallsIsClosed(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) { t.Error("served") })
	server, client := pair(t)
	client.Close()
	out, _, _ := s.Serve(server, false)
	assert.Equal(t, Closed, out)

	// Half a head, then nothing: closed when the header timeout passes,
	// as net/http closes it (not handed to net/http, whose timeout would
	// start again).
	s.ReadHeaderTimeout = 50 * time.Millisecond
	start := time.Now()
	out, _, got := serveRaw(t, s, "GET /socket.io/?sid=a HTTP/1.1\r\nHo")
	assert.Equal(t, Closed, out)
	assert.Empty(t, got)
	assert.Less(t, time.Since(start), time.Second)
}

func TestEmptyLinesAfterAPostAreSkippedAsNetHTTPSkipsThem(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) {})
	out, pending, _ := serveRaw(t, s, "\r\n"+get)
	assert.Equal(t, Declined, out, "not after a POST")
	assert.Equal(t, "\r\n"+get, string(pending))

	out, _, got := serveRawAfter(t, s, "\r\n"+get, true)
	assert.Equal(t, Idle, out)
	assert.True(t, strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n"), got)
}

func TestAClientHangingUpCancelsItsRequest(t *testing.T) {
	canceled := make(chan struct{})
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(5 * time.Second):
			t.Error("the request's context was not canceled")
		}
	})
	stopped := false
	s.Watch = func(conn net.Conn, gone func()) func() {
		go gone() // as the watch does when the client hangs up
		return func() { stopped = true }
	}
	serveRaw(t, s, get)
	<-canceled
	assert.True(t, stopped, "the watch ends with the request")
}

func TestAClosingServerClosesAfterTheResponse(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	s.Closing = func() bool { return true }
	out, _, got := serveRaw(t, s, get+get)
	assert.Equal(t, Closed, out)
	assert.Equal(t, 1, strings.Count(got, "HTTP/1.1 200 OK"), "the pipelined request is not served")
	assert.Contains(t, got, "Connection: close\r\n")
}

func TestHijackHandsOverTheConnectionAndWhatFollows(t *testing.T) {
	var pending string
	s := handler(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
		w.(http.Flusher).Flush()
		conn, brw, err := http.NewResponseController(w).Hijack()
		require.NoError(t, err)
		b, _ := brw.Reader.Peek(brw.Reader.Buffered())
		pending = string(b)
		_, _ = io.WriteString(w, "late")
		conn.Close()
	})
	out, _, got := serveRaw(t, s, get+"GET /next")
	assert.Equal(t, Taken, out)
	assert.Equal(t, "GET /next", pending)
	assert.Equal(t, "HTTP/1.1 200 OK\r\n", got[:17])
	assert.True(t, strings.HasSuffix(got, "2\r\nok\r\n"), got)
}

func TestOutcomeNames(t *testing.T) {
	assert.Equal(t, "idle taken closed declined outcome(9)",
		strings.Join([]string{Idle.String(), Taken.String(), Closed.String(), Declined.String(), Outcome(9).String()}, " "))
}

// CloseIdle cuts a connection reading its next head (half of it here),
// unanswered, as net/http's Shutdown closes its idle connections, and
// closes any connection handed to Serve after it: the rest of the head
// never reaches the handler.
func TestCloseIdleClosesAConnectionReadingItsHead(t *testing.T) {
	s := handler(func(w http.ResponseWriter, r *http.Request) { t.Error("served after CloseIdle") })
	s.ReadHeaderTimeout = time.Minute
	server, client := pair(t)
	_, err := client.Write([]byte(get[:30]))
	require.NoError(t, err)
	done := make(chan Outcome, 1)
	go func() {
		out, _, _ := s.Serve(server, false)
		done <- out
	}()
	// Wait until it reads.
	for {
		s.mu.Lock()
		n := len(s.reading)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.CloseIdle()
	select {
	case out := <-done:
		assert.Equal(t, Closed, out)
	case <-time.After(5 * time.Second):
		t.Fatal("the connection reading its head was not cut")
	}
	_, _ = client.Write([]byte(get[30:]))
	got, _ := io.ReadAll(client)
	assert.Empty(t, got)

	out, _, got2 := serveRaw(t, s, get)
	assert.Equal(t, Closed, out, "a connection handed over after CloseIdle")
	assert.Empty(t, got2)
}
