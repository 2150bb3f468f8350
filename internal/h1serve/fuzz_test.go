package h1serve

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen records the requests a handler was given.
type seen struct {
	mu   sync.Mutex
	reqs []string
}

func (s *seen) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, strings.Join([]string{r.Method, r.RequestURI, r.Host, r.Proto, string(body)}, " "))
		s.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})
}

func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// send writes raw on a new loopback connection, closes its write side,
// and hands the server's end to serve.
func send(t *testing.T, raw []byte, serve func(net.Conn)) {
	server, client := pair(t)
	go func() {
		_, _ = client.Write(raw)
		_ = client.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, client)
	}()
	serve(server)
}

// oneConn is a listener that accepts conn once.
type oneConn struct {
	conn net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}
func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return &net.TCPAddr{} }

// FuzzServe checks that what Serve serves, net/http serves the same:
// the same requests, in the same order, each read the same; and that what
// it declines, it gives back whole.
func FuzzServe(f *testing.F) {
	q := "/socket.io/?EIO=4&transport=polling&sid=abc"
	for _, seed := range []string{
		"GET " + q + " HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST " + q + " HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n40GET " + q + " HTTP/1.1\r\nHost: a\r\n\r\n",
		"\r\nGET " + q + " HTTP/1.1\nHost: a\n\n",
		"GET " + q + " HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"POST " + q + " HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\n40",
		"POST " + q + " HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n40",
		"GET " + q + " HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET " + q + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET " + q + " HTTP/1.1\r\nHost: a:1\r\nhost: b\r\n\r\n",
		"GET " + q + "#x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET //a" + q + " HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET " + q + " HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ours := &seen{}
		var out Outcome
		var pending []byte
		send(t, raw, func(c net.Conn) {
			s := &Server{Handler: ours.handler(), ReadHeaderTimeout: time.Second}
			out, pending, _ = s.Serve(c, false)
			if out == Idle || out == Declined {
				c.Close()
			}
		})
		theirs := &seen{}
		send(t, raw, func(c net.Conn) {
			ln := &oneConn{conn: c, done: make(chan struct{})}
			hs := &http.Server{Handler: theirs.handler(), ReadHeaderTimeout: time.Second}
			var closed sync.WaitGroup
			closed.Add(1)
			hs.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateClosed || st == http.StateHijacked {
					closed.Done()
				}
			}
			go func() { _ = hs.Serve(ln) }()
			closed.Wait()
			close(ln.done)
		})
		got, want := ours.list(), theirs.list()
		if len(got) > len(want) {
			t.Fatalf("served %d requests, net/http %d: %q", len(got), len(want), got)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("request %d read as %q, by net/http as %q", i, got[i], want[i])
			}
		}
		if out == Declined {
			trimmed := string(raw)
			if !strings.Contains(trimmed, string(pending)) || len(pending) == 0 {
				t.Fatalf("declined with %q, not part of what was sent", pending)
			}
			if !strings.HasSuffix(trimmed, string(pending)) && len(pending) < bufSize {
				t.Fatalf("declined with %q, not all that followed", pending)
			}
		}
	})
}
