package socketioproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/flaskedge/flaskedge/internal/h1client"
	"github.com/flaskedge/flaskedge/internal/h1serve"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answer writes through a connWriter with the edge's headers edge and
// returns what the client reads, and what close reported.
func answer(t *testing.T, edge http.Header, write func(w http.ResponseWriter)) (*http.Response, string, bool) {
	t.Helper()
	server, client := net.Pipe()
	defer client.Close()
	got := make(chan *http.Response, 1)
	body := make(chan string, 1)
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(client), nil)
		if err != nil {
			got <- nil
			body <- err.Error()
			return
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			b = []byte(err.Error())
		}
		got <- res
		body <- string(b)
	}()
	cw := newConnWriter(server, edge)
	write(cw)
	ok := cw.close()
	server.Close()
	return <-got, <-body, ok
}

// The worker's answer goes out with its length, and the site's CORS
// headers in place of any the worker sent.
func TestAnAnswerWrittenByTheEdgeKeepsTheSitesCORSHeaders(t *testing.T) {
	edge := http.Header{"Access-Control-Allow-Origin": {"https://app.example.com"}, "Vary": {"Origin"}, "Server": {"Caddy"}}
	res, body, ok := answer(t, edge, func(w http.ResponseWriter) {
		w.Header().Add("Access-Control-Allow-Origin", "*")
		w.Header().Add("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("2probe"[:5]))
	})
	require.NotNil(t, res, body)
	assert.True(t, ok)
	assert.Equal(t, "2prob", body)
	assert.Equal(t, []string{"https://app.example.com"}, res.Header.Values("Access-Control-Allow-Origin"))
	assert.Empty(t, res.Header.Values("Access-Control-Allow-Credentials"))
	assert.False(t, res.Close, "the worker's Connection header is not the client's")
	assert.EqualValues(t, 5, res.ContentLength)
	assert.NotEmpty(t, res.Header.Get("Date"))
}

// Without a length, the answer is chunked; one shorter than its length
// leaves the connection unfit for another request.
func TestAnAnswerWithoutALengthIsChunkedAndAShortOneIsNotKept(t *testing.T) {
	res, body, ok := answer(t, http.Header{}, func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"code":1,`))
		_, _ = w.Write([]byte(`"message":"Session ID unknown"}`))
	})
	require.NotNil(t, res, body)
	assert.True(t, ok)
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	assert.Equal(t, []string{"chunked"}, res.TransferEncoding)
	assert.JSONEq(t, `{"code":1,"message":"Session ID unknown"}`, body)

	_, _, ok = answer(t, http.Header{}, func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "10")
		_, _ = w.Write([]byte("short"))
	})
	assert.False(t, ok, "an answer shorter than it said")

	_, _, ok = answer(t, http.Header{}, func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "2")
		_, _ = w.Write([]byte("longer"))
	})
	assert.False(t, ok, "an answer longer than it said")
}

// A header value cannot split the answer: net/http's Header.Write
// replaces CR and LF.
func TestAHeaderValueCannotSplitAnAnswer(t *testing.T) {
	res, _, _ := answer(t, http.Header{}, func(w http.ResponseWriter) {
		w.Header().Set("X-Evil", "a\r\nSet-Cookie: stolen=1")
		w.Header().Set("Content-Length", "0")
	})
	require.NotNil(t, res)
	assert.Empty(t, res.Header.Values("Set-Cookie"))
}

// plainWriters knows net/http's writer and Caddy's and edge_cors's
// wrappers by name, and nothing else: a name that changes in a new
// version of either makes long-polls go unparked, which this shows.
func TestPlainWritersKnowsTheWritersByName(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.True(t, plainWriters(w), "net/http's own writer")
		assert.True(t, plainWriters(caddyhttp.NewResponseRecorder(w, nil, nil)), "Caddy's recorder")
		assert.False(t, plainWriters(struct{ http.ResponseWriter }{w}), "an unknown writer")
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	require.NoError(t, err)
	res.Body.Close()

	// The writer of the requests the keeper serves itself.
	server, client := net.Pipe()
	defer client.Close()
	saw := make(chan bool, 1)
	s := &h1serve.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		saw <- plainWriters(w)
	})}
	go func() {
		_, _ = io.WriteString(client, "GET /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nHost: a\r\n\r\n")
		_, _ = io.Copy(io.Discard, client)
	}()
	out, _, _ := s.Serve(server, false)
	server.Close()
	assert.Equal(t, h1serve.Idle, out)
	assert.True(t, <-saw, "h1serve's writer")
}

// A waiting GET keeps its site's headers flat and its worker's request as
// the bytes sent: both give back what they were made from.
func TestWaitingPollKeepsHeadersWhole(t *testing.T) {
	site := http.Header{
		"Access-Control-Allow-Origin":      {"https://app.example"},
		"Access-Control-Allow-Credentials": {"true"},
		"Vary":                             {"Origin", "Cookie"},
		"X-Empty":                          {},
	}
	wp := &waitingPoll{site: flatHeader(site)}
	assert.Len(t, wp.site, 8)
	got := wp.siteHeader()
	delete(site, "X-Empty")
	assert.Equal(t, site, got)
	got.Set("Vary", "changed") // the answer's writer may change its map
	assert.Equal(t, "Origin", wp.siteHeader().Get("Vary"))

	out, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:5000/socket.io/?EIO=4&transport=polling&sid=abc", nil)
	require.NoError(t, err)
	out.Host = "app.example"
	// A user id with a control byte, which net/http's parser refuses
	// (attack14), and a value with a colon.
	out.Header = http.Header{"Cookie": {"session=x"}, "X-Forwarded-For": {"192.0.2.1, 198.51.100.7"},
		"X-Auth-User-Id": {"uma\x7f\x01"}, "Origin": {"http://app.example:8080"}, "Vary": {"a", "b"}}
	wp.head, err = h1client.Head(out)
	require.NoError(t, err)
	h := wp.workerHeader()
	assert.Equal(t, "session=x", h.Get("Cookie"))
	assert.Equal(t, "192.0.2.1, 198.51.100.7", h.Get("X-Forwarded-For"))
	assert.Equal(t, "uma\x7f\x01", h.Get("X-Auth-User-Id"))
	assert.Equal(t, "http://app.example:8080", h.Get("Origin"))
	assert.Equal(t, []string{"a", "b"}, h.Values("Vary"))
	assert.Empty(t, h.Get("Host"))
}
