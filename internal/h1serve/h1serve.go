// Package h1serve serves HTTP/1.1 requests on a connection the edge
// holds itself: a kept-alive connection that was parked (see
// internal/park) and whose client sent again.
//
// Handed back to a net/http server, such a connection costs a new
// connection goroutine (whose stack grows again through Caddy's handler
// chain), a new 4 KiB read buffer and write buffer, and, when the
// request's handler takes the connection to park it again, a third
// buffer net/http allocates for the hijack: garbage on every request of
// a long-polling session. Serve reads the request on the goroutine that
// woke it, with a pooled buffer, and writes the response itself.
//
// It serves only what it can serve exactly as net/http would: a request
// whose whole head (and body) is already read, that Server.Accept takes,
// and that has nothing net/http treats specially (HTTP/1.0, Connection:
// close, Expect, Upgrade, Transfer-Encoding, an absolute URI, a bad or
// missing Host, a header net/http refuses). Anything else is declined,
// with the bytes read so far, for net/http to serve.
package h1serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves requests on held connections.
type Server struct {
	// Handler serves the requests.
	Handler http.Handler
	// HTTPServer is what the requests' contexts carry as
	// http.ServerContextKey.
	HTTPServer *http.Server
	// Accept reports whether a request (its head read) is one to serve
	// here; the others are declined.
	Accept func(*http.Request) bool
	// ReadHeaderTimeout, ReadTimeout and WriteTimeout are net/http's.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	// ErrorLog reports handlers' panics; nil drops them.
	ErrorLog func(msg string, err error)
	// Watch, when set, watches a connection while a handler runs and
	// calls gone if its client hangs up (net/http's background read,
	// which cancels the request's context); stop ends the watch.
	Watch func(conn net.Conn, gone func()) (stop func())
	// Closing, when set, reports whether the server is shutting down:
	// the response in flight then says Connection: close, and the
	// connection is closed after it, as net/http closes its own.
	Closing func() bool

	mu      sync.Mutex
	reading map[net.Conn]struct{} // waiting for, or reading, a head
	shut    bool                  // CloseIdle was called
}

// CloseIdle closes the connections waiting for their next request, or
// reading its head, once they see it (their read is cut), and any that
// would wait from now on, as net/http's Shutdown closes its idle
// connections: a request whose head is not read whole when the server
// stops is not served (a config reload must not let the old config
// serve a request its client finished sending after the new one took
// over). Requests being served finish, and their connections close.
func (s *Server) CloseIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shut = true
	for c := range s.reading {
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}
}

// startReading registers conn as waiting for a head, until deadline
// (zero: none), and reports false once CloseIdle was called.
func (s *Server) startReading(conn net.Conn, deadline time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return false
	}
	// Set under mu: a CloseIdle that comes after it cuts it.
	_ = conn.SetReadDeadline(deadline)
	if s.reading == nil {
		s.reading = make(map[net.Conn]struct{})
	}
	s.reading[conn] = struct{}{}
	return true
}

func (s *Server) doneReading(conn net.Conn) {
	s.mu.Lock()
	delete(s.reading, conn)
	s.mu.Unlock()
}

// Outcome is what became of a connection Serve was given.
type Outcome uint8

const (
	// Idle: every response was written whole and nothing more is
	// buffered: the connection waits for its client's next request.
	Idle Outcome = iota
	// Taken: a handler took the connection (http.Hijacker).
	Taken
	// Closed: the connection is closed (its client left, a response
	// asked for it, or writing failed).
	Closed
	// Declined: the next request is not one Serve serves; the bytes it
	// read of it are returned, for net/http to serve.
	Declined
)

func (o Outcome) String() string {
	switch o {
	case Idle:
		return "idle"
	case Taken:
		return "taken"
	case Closed:
		return "closed"
	case Declined:
		return "declined"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

const bufSize = 4096

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

// Serve serves the requests conn's client sends, as long as they come
// without waiting, and reports what became of conn; with Declined, the
// bytes read of the request it declined. afterPost says the connection's
// last request was a POST (whose client may have ended it with an extra
// empty line, which net/http skips); lastPost says the same of the last
// request Serve served.
func (s *Server) Serve(conn net.Conn, afterPost bool) (out Outcome, pending []byte, lastPost bool) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(conn)
	out, pending, lastPost, keepReader := s.serve(conn, br, afterPost)
	if !keepReader {
		br.Reset(nil)
		readers.Put(br)
	}
	return out, pending, lastPost
}

// serve is Serve's loop; keepReader is true when br went to a handler
// with the connection.
func (s *Server) serve(conn net.Conn, br *bufio.Reader, lastPost bool) (out Outcome, pending []byte, _ bool, keepReader bool) {
	var base context.Context
	kept := buffers.Get().(*[]byte)
	defer putBuffer(kept)
	for {
		var deadline time.Time
		if d := s.headerTimeout(); d > 0 {
			deadline = time.Now().Add(d)
		}
		if !s.startReading(conn, deadline) {
			conn.Close()
			return Closed, nil, lastPost, false
		}
		if lastPost {
			// Empty lines after a POST are skipped, as net/http skips
			// them (RFC 9112, section 2.2).
			if _, err := br.Peek(1); err == nil {
				b, _ := br.Peek(min(4, br.Buffered()))
				_, _ = br.Discard(leadingCRLF(b))
			}
		}
		headLen, err := readHead(br)
		s.doneReading(conn)
		if err != nil {
			var ne net.Error
			if br.Buffered() == 0 || errors.As(err, &ne) && ne.Timeout() {
				// Gone, or too slow: net/http closes such a
				// connection without an answer.
				conn.Close()
				return Closed, nil, lastPost, false
			}
			return Declined, decline(conn, br), lastPost, false
		}
		// What was read, as it came: the parser canonicalizes header
		// names in br's buffer.
		raw, _ := br.Peek(br.Buffered())
		*kept = append((*kept)[:0], raw...)
		req, err := http.ReadRequest(br)
		if read := len(raw) - br.Buffered(); read > headLen || err == nil && read != headLen {
			// The parser did not stop where the head ends: what it
			// read cannot be trusted to be given back.
			conn.Close()
			return Closed, nil, lastPost, false
		}
		if err != nil || !s.servable(req, br.Buffered()) {
			return Declined, bytes.Clone(*kept), lastPost, false
		}
		if s.ReadTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(s.ReadTimeout))
		} else {
			_ = conn.SetReadDeadline(time.Time{})
		}
		if s.WriteTimeout > 0 {
			_ = conn.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
		}
		if base == nil {
			base = context.WithValue(context.Background(), http.ServerContextKey, s.HTTPServer)
			base = context.WithValue(base, http.LocalAddrContextKey, conn.LocalAddr())
		}
		lastPost = req.Method == http.MethodPost
		ctx, cancel := context.WithCancel(base)
		req = req.WithContext(ctx)
		if ra := conn.RemoteAddr(); ra != nil {
			req.RemoteAddr = ra.String() // nil for a socket reset under it (net/http: "")
		}
		w := newResponse(conn, br, req, s.Closing)
		stop := func() {}
		if s.Watch != nil {
			stop = s.Watch(conn, cancel)
		}
		ok := s.call(w, req)
		stop()
		cancel()
		if w.hijacked {
			w.release()
			return Taken, nil, lastPost, w.readerTaken
		}
		if ok {
			w.finish()
			// Whatever the handler left of the body is buffered: skip
			// it, as net/http would.
			_, _ = io.Copy(io.Discard, req.Body)
			_ = req.Body.Close()
		}
		closing := !ok || w.closeAfter || w.err != nil || s.Closing != nil && s.Closing()
		w.release()
		if closing {
			conn.Close()
			return Closed, nil, lastPost, false
		}
		if br.Buffered() == 0 {
			return Idle, nil, lastPost, false
		}
	}
}

func leadingCRLF(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

// decline returns what br holds, with the read deadline lifted.
func decline(conn net.Conn, br *bufio.Reader) []byte {
	_ = conn.SetReadDeadline(time.Time{})
	b, _ := br.Peek(br.Buffered())
	return bytes.Clone(b)
}

func (s *Server) headerTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return s.ReadTimeout
}

// errHeadTooLarge: a head that does not fit the buffer is net/http's to
// serve (or refuse). (The buffer is smaller than any limit net/http
// applies: MaxHeaderBytes plus 4 KiB.)
var errHeadTooLarge = errors.New("h1serve: request head too large")

// readHead reads until br holds a whole request head and returns its
// length: up to and with its first empty line ("\r\n" or "\n", as
// net/textproto ends it).
func readHead(br *bufio.Reader) (int, error) {
	limit := br.Size()
	from := 0 // where the line being looked at starts
	for {
		b, err := br.Peek(br.Buffered())
		for from < len(b) {
			i := bytes.IndexByte(b[from:], '\n')
			if i < 0 {
				break
			}
			line := b[from : from+i]
			from += i + 1
			if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
				return from, nil
			}
		}
		if len(b) >= limit {
			return 0, errHeadTooLarge
		}
		if err != nil {
			return 0, err
		}
		// More is needed: wait for it (under the read deadline).
		if _, err := br.Peek(len(b) + 1); err != nil {
			return 0, err
		}
	}
}

// servable reports whether req is one Serve serves as net/http would;
// buffered is what br holds past its head.
func (s *Server) servable(req *http.Request, buffered int) bool {
	if req.ProtoMajor != 1 || req.ProtoMinor != 1 || req.Close {
		return false
	}
	switch req.Method {
	case http.MethodGet:
		if req.ContentLength != 0 {
			return false
		}
	case http.MethodPost:
		// Its body must be read already: a slow body is net/http's,
		// with its timeouts.
		if req.ContentLength < 0 || req.ContentLength > int64(buffered) {
			return false
		}
	default:
		return false
	}
	if len(req.TransferEncoding) > 0 || req.URL.Host != "" || !strings.HasPrefix(req.RequestURI, "/") {
		return false
	}
	// net/http's own checks of a request (conn.readRequest). (Two Host
	// headers failed ReadRequest, which took the one out of the header.)
	if req.Host == "" || !httpguts.ValidHostHeader(req.Host) {
		return false
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
		switch k {
		case "Expect", "Upgrade", "Transfer-Encoding", "Te", "Http2-Settings":
			return false
		case "Connection":
			for _, v := range vv {
				for _, t := range strings.Split(v, ",") {
					if t = strings.TrimSpace(t); t != "" && !strings.EqualFold(t, "keep-alive") {
						return false
					}
				}
			}
		}
	}
	return s.Accept == nil || s.Accept(req)
}

// call runs the handler, reporting false when it panicked (the
// connection is then closed, as net/http closes it).
func (s *Server) call(w *response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v == http.ErrAbortHandler || s.ErrorLog == nil {
				return
			}
			const size = 64 << 10
			buf := make([]byte, size)
			buf = buf[:runtime.Stack(buf, false)]
			s.ErrorLog("panic serving "+req.RemoteAddr, fmt.Errorf("%v\n%s", v, buf))
		}
	}()
	s.Handler.ServeHTTP(w, req)
	return true
}
