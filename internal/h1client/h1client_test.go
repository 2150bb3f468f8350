package h1client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newClient returns a Client to srv that counts the connections it dials.
func newClient(t *testing.T, srv *httptest.Server) (*Client, *atomic.Int32) {
	t.Helper()
	var dials atomic.Int32
	d := &net.Dialer{}
	c := &Client{
		Addr: srv.Listener.Addr().String(),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxIdle:     4,
		IdleTimeout: time.Minute,
	}
	if srv.TLS != nil {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		c.TLS = &tls.Config{RootCAs: pool, ServerName: "example.com"}
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, &dials
}

func get(t *testing.T, c *Client, url string, body []byte) (*http.Response, string) {
	t.Helper()
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if body == nil {
		req.Body = nil
	}
	res, err := c.RoundTrip(req)
	require.NoError(t, err)
	// With a large buffer, as the edge copies a poll's answer: reads
	// then bypass the bufio.Reader.
	var b bytes.Buffer
	_, err = io.CopyBuffer(struct{ io.Writer }{&b}, res.Body, make([]byte, 32<<10))
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	return res, b.String()
}

// Requests one after another share one connection, whatever the body's
// framing, over plain TCP and TLS.
func TestKeptConnectionIsReused(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		switch r.URL.Query().Get("framing") {
		case "chunked":
			w.Write([]byte("ok:"))
			w.(http.Flusher).Flush()
			w.Write(in)
		case "empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Content-Length", "3")
			w.Write([]byte("abc"))
		}
	})
	for _, srv := range []*httptest.Server{httptest.NewServer(handler), httptest.NewTLSServer(handler)} {
		defer srv.Close()
		c, dials := newClient(t, srv)
		base := "http://" + c.Addr + "/socket.io/?EIO=4"
		res, b := get(t, c, base, nil)
		assert.Equal(t, 200, res.StatusCode)
		assert.Equal(t, "abc", b)
		_, b = get(t, c, base+"&framing=chunked", []byte("payload"))
		assert.Equal(t, "ok:payload", b)
		res, b = get(t, c, base+"&framing=empty", []byte{})
		assert.Equal(t, 204, res.StatusCode)
		assert.Empty(t, b)
		assert.EqualValues(t, 1, dials.Load(), "one connection for all")
	}
}

// A response not read to the end closes its connection; the next
// request dials a new one.
func TestBodyClosedEarlyIsNotKept(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 10000)))
	}))
	defer srv.Close()
	c, dials := newClient(t, srv)
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.Addr+"/", nil)
	res, err := c.RoundTrip(req)
	require.NoError(t, err)
	_, _ = res.Body.Read(make([]byte, 10))
	res.Body.Close()
	get(t, c, "http://"+c.Addr+"/", nil)
	assert.EqualValues(t, 2, dials.Load())
}

// A GET on a kept connection the server has closed meanwhile goes on a
// new one; a POST's is never sent twice.
func TestClosedKeptConnection(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		w.Write([]byte("ok"))
	}))
	srv.Start()
	defer srv.Close()
	c, dials := newClient(t, srv)
	url := "http://" + c.Addr + "/"
	get(t, c, url, nil)
	srv.CloseClientConnections()
	// Seen closed before use: a new connection, for a GET and a POST.
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.idle) == 1 && !open(c.idle[0].conn)
	}, 5*time.Second, 5*time.Millisecond)
	_, b := get(t, c, url, []byte("x"))
	assert.Equal(t, "ok", b)
	assert.EqualValues(t, 2, dials.Load())
	assert.EqualValues(t, 1, posts.Load())
}

// Cancelling the request's context ends a response that is being waited
// for, and its connection is not kept.
func TestCancelEndsAWaitingResponse(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, _ := newClient(t, srv)
	ctx, cancel := context.WithCancelCause(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+"/", nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.RoundTrip(req)
		done <- err
	}()
	<-arrived
	cause := io.ErrClosedPipe
	cancel(cause)
	select {
	case err := <-done:
		assert.ErrorIs(t, err, cause)
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not end")
	}
	c.mu.Lock()
	assert.Empty(t, c.idle)
	c.mu.Unlock()
}

// Kept connections past IdleTimeout are closed; at most MaxIdle are kept.
func TestIdleConnectionsAreBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	c, _ := newClient(t, srv)
	c.IdleTimeout = 50 * time.Millisecond
	// Six requests at once: six connections, four kept.
	var held []*http.Response
	for range 6 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.Addr+"/", nil)
		res, err := c.RoundTrip(req)
		require.NoError(t, err)
		held = append(held, res)
	}
	for _, res := range held {
		_, _ = io.ReadAll(res.Body)
		res.Body.Close()
	}
	c.mu.Lock()
	assert.Len(t, c.idle, 4)
	c.mu.Unlock()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.idle) == 0
	}, 5*time.Second, 10*time.Millisecond)
}

func BenchmarkRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"h1client", func() http.RoundTripper {
			return &Client{Addr: srv.Listener.Addr().String(), Dial: (&net.Dialer{}).DialContext, MaxIdle: 4, IdleTimeout: time.Minute}
		}},
		{"net-http-transport", func() http.RoundTripper { return &http.Transport{DisableCompression: true} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rt := tc.rt()
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/socket.io/?EIO=4&transport=polling&sid=x", strings.NewReader(`42["echo","hi"]`))
				res, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}

// rawServer serves each connection with answer after each request, each
// part in a write of its own (a TLS record of its own), over TLS when
// tlsSrv is true, and returns a client to it that counts its dials.
func rawServer(t *testing.T, tlsSrv bool, answer ...string) (*Client, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var clientTLS *tls.Config
	if tlsSrv {
		// httptest's certificate, for example.com.
		ts := httptest.NewTLSServer(http.NotFoundHandler())
		pool := x509.NewCertPool()
		pool.AddCert(ts.Certificate())
		clientTLS = &tls.Config{RootCAs: pool, ServerName: "example.com"}
		// Records as large as the answer, as a Python worker writes them.
		ts.TLS.DynamicRecordSizingDisabled = true
		ln = tls.NewListener(ln, ts.TLS)
		ts.Close()
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					for _, part := range answer {
						if _, err := conn.Write([]byte(part)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	var dials atomic.Int32
	c := &Client{
		Addr: ln.Addr().String(),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLS:         clientTLS,
		MaxIdle:     4,
		IdleTimeout: time.Minute,
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, &dials
}

// An interim 100 Continue is not the answer: the final one is, and the
// connection stays in step for the next request.
func TestInterimAnswersAreSkipped(t *testing.T) {
	c, dials := rawServer(t, false, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	for range 3 {
		res, b := get(t, c, "http://"+c.Addr+"/", []byte("x"))
		assert.Equal(t, 200, res.StatusCode)
		assert.Equal(t, "ok", b)
	}
	assert.EqualValues(t, 1, dials.Load())
}

// Bytes past an answer are never the next request's answer, over plain
// TCP and TLS. (That crypto/tls may hold such bytes where neither the
// bufio.Reader nor the socket shows them is shown through the edge by
// TestAdversarialBytesPastAWorkersAnswerNeverAnswerAnotherSession.)
func TestBytesPastAnAnswerCloseTheConnection(t *testing.T) {
	for _, tlsSrv := range []bool{false, true} {
		body := strings.Repeat("x", 5000)
		c, dials := rawServer(t, tlsSrv, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"+body+
			"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLEAK")
		for range 3 {
			_, b := get(t, c, "http://"+c.Addr+"/", nil)
			assert.Equal(t, body, b, "tls %v", tlsSrv)
		}
		assert.EqualValues(t, 3, dials.Load(), "tls %v: a connection per request", tlsSrv)
	}
}

// markerKey carries a request's marker in its context.
type markerKey struct{}

// A new connection is dialed within the request's time, but once the
// exchange is over nothing of the request may stay reachable. A dial
// timeout (net.Dialer's, the TLS handshake's) is a context timer, and the
// runtime keeps a stopped timer, and its context, until it would have
// fired, unless a quarter of its timers are such: derived from the
// request's context, it held the request (at the edge, Caddy's state of
// the client's request and net/http's buffers) that long.
func TestADialHoldsNothingOfTheRequest(t *testing.T) {
	for _, tlsSrv := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "TLS"}[tlsSrv], func(t *testing.T) {
			// One P, and many live timers on it, as an edge with idle
			// sessions has: the runtime then leaves stopped timers in
			// its heap.
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			for range 100 {
				tm := time.AfterFunc(time.Hour, func() {})
				defer tm.Stop()
			}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
			srv := httptest.NewUnstartedServer(h)
			if tlsSrv {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			c, _ := newClient(t, srv)
			d := &net.Dialer{Timeout: time.Minute}
			c.Dial, c.HandshakeTimeout = d.DialContext, time.Minute

			var held weak.Pointer[[256]byte]
			func() {
				marker := new([256]byte)
				held = weak.Make(marker)
				ctx, cancel := context.WithCancel(context.WithValue(context.Background(), markerKey{}, marker))
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
				require.NoError(t, err)
				req.Body = nil
				res, err := c.RoundTrip(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, res.Body)
				require.NoError(t, res.Body.Close())
			}()
			runtime.GC()
			runtime.GC()
			assert.Nil(t, held.Value(), "the request's context is still reachable after its exchange")
		})
	}
}
