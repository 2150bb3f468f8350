// Package h1client sends HTTP/1.1 requests to one server over connections
// it keeps between requests, at the cost of the request itself.
//
// It is the edge's transport for Socket.IO long-polling: every polling
// message crosses it twice (the client's POST, the worker's answer to a
// waiting GET). net/http's Transport parks two goroutines and two 4 KiB
// buffers on every kept connection and hands each request between three
// goroutines; here a request is written and its response read on the
// caller's goroutine, and a kept connection holds no goroutine and no
// buffer: a buffer is borrowed while a response is read.
//
// It speaks plain HTTP/1.1 with keep-alive, to one address, with an
// optional TLS config; no proxies, no HTTP/2, no compression, no
// redirects, which is what a worker behind the edge needs.
package h1client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Client is an http.RoundTripper to one server.
type Client struct {
	// Addr is the server's host:port.
	Addr string
	// Dial opens a connection to Addr.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, when set, is the TLS config of every connection: it must be
	// complete (ServerName set), and is never changed.
	TLS *tls.Config
	// HandshakeTimeout bounds the TLS handshake.
	HandshakeTimeout time.Duration
	// MaxIdle is the most connections kept idle; IdleTimeout how long
	// one is kept.
	MaxIdle     int
	IdleTimeout time.Duration

	mu     sync.Mutex
	idle   []idleConn // the most recently used last
	prune  *time.Timer
	closed bool
}

type idleConn struct {
	conn  net.Conn
	since time.Time
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// earlyAnswerWait bounds the wait for what a server said before it
// closed a connection the request could not be written to.
const earlyAnswerWait = time.Second

// errRetry marks a failure on a kept connection that the server had
// closed before it read the request.
var errRetry = errors.New("h1client: kept connection closed by the server")

// RoundTrip sends req on a kept connection or a new one and returns the
// response; its body must be read to the end or closed, and the
// connection is kept again once it has been read to the end. A GET whose
// kept connection turns out closed by the server is sent again on a new
// one; no other request is ever sent twice. Cancelling req's context
// ends the exchange at once, at any point.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	conn, reused := c.get()
	for {
		if conn == nil {
			var err error
			if conn, err = c.open(req.Context()); err != nil {
				return nil, err
			}
		}
		res, err := c.exchange(req, conn, reused)
		if errors.Is(err, errRetry) && req.Method == http.MethodGet && req.Body == nil && req.Context().Err() == nil {
			conn, reused = nil, false
			continue
		}
		return res, err
	}
}

// open dials a new connection; when ctx ended the dial, the error is
// its cause.
func (c *Client) open(ctx context.Context) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return conn, err
}

// write writes req on conn through a lent buffer.
func write(req *http.Request, conn net.Conn) error {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(conn)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	return err
}

// exchange writes req on conn and reads the response head.
func (c *Client) exchange(req *http.Request, conn net.Conn, reused bool) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	err := write(req, conn)
	br := readers.Get().(*bufio.Reader)
	br.Reset(conn)
	if err != nil {
		// The server may have said why before it closed: a TLS alert (a
		// client certificate it wanted), or an early answer.
		_ = conn.SetReadDeadline(time.Now().Add(earlyAnswerWait))
		res, rerr := readResponse(br, req)
		if rerr == nil {
			b := &body{c: c, conn: conn, br: br, rc: res.Body, stop: stop}
			res.Body = b
			return res, nil
		}
		br.Reset(nil)
		readers.Put(br)
		var ne net.Error
		switch {
		case reused:
			err = errors.Join(errRetry, err)
		case !errors.Is(rerr, io.EOF) && !errors.Is(rerr, syscall.ECONNRESET) && !(errors.As(rerr, &ne) && ne.Timeout()):
			err = rerr
		}
		return fail(err)
	}
	res, err := readResponse(br, req)
	if err != nil {
		br.Reset(nil)
		readers.Put(br)
		if reused && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
			err = errors.Join(errRetry, err)
		}
		return fail(err)
	}
	b := &body{c: c, conn: conn, br: br, rc: res.Body, stop: stop,
		keep: !res.Close && !req.Close}
	if res.Body == http.NoBody || res.ContentLength == 0 {
		b.finish(true)
		return res, nil
	}
	res.Body = b
	return res, nil
}

// max1xx bounds the interim (1xx) answers read before the final one.
const max1xx = 5

// readResponse reads the final answer to req, past the interim ones (100
// Continue, 103 Early Hints), which have no body: taken for the answer,
// one would leave the real answer on the connection for the next request.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for range max1xx {
		res, err := http.ReadResponse(br, req)
		if err != nil || res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			return res, err
		}
	}
	return nil, errors.New("h1client: too many interim (1xx) answers")
}

// body is a response body that gives its connection back once read to
// the end.
type body struct {
	c    *Client
	conn net.Conn
	br   *bufio.Reader
	rc   io.ReadCloser
	stop func() bool
	keep bool
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish releases the buffer and keeps the connection when the response
// was read whole, nothing follows it, and the exchange was not cancelled.
func (b *body) finish(whole bool) {
	b.done = true
	cancelled := !b.stop()
	keep := whole && b.keep && !cancelled && b.br.Buffered() == 0 && !tlsBuffered(b.conn)
	b.br.Reset(nil)
	readers.Put(b.br)
	b.br = nil
	if keep {
		b.c.put(b.conn)
		return
	}
	b.conn.Close()
}

// tlsBuffered reports whether a TLS connection holds bytes past the
// answer that was just read, which crypto/tls decrypted and keeps in a
// buffer of its own where neither the bufio.Reader nor the socket shows
// them. A read with a deadline already past returns them, or returns at
// once with a timeout, which leaves a tls.Conn usable.
func tlsBuffered(conn net.Conn) bool {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return false
	}
	_ = tc.SetReadDeadline(time.Unix(1, 0))
	var b [1]byte
	n, err := tc.Read(b[:])
	var ne net.Error
	if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		return true
	}
	_ = tc.SetReadDeadline(time.Time{})
	return false
}

// dial opens a new connection, with TLS when configured. It ends with
// reqCtx, but what it dials with holds none of reqCtx's values: a dial
// timeout is a context timer, and the runtime keeps a stopped timer, and
// its context, until it would have fired, which would keep the request's
// state (a server's buffers, Caddy's replacer) for that long.
func (c *Client) dial(reqCtx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	defer context.AfterFunc(reqCtx, func() { cancel(context.Cause(reqCtx)) })()
	conn, err := c.Dial(ctx, "tcp", c.Addr)
	if err != nil || c.TLS == nil {
		return conn, err
	}
	tc := tls.Client(conn, c.TLS)
	hctx := ctx
	if c.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, c.HandshakeTimeout)
		defer cancel()
	}
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// get takes the most recently kept connection that is still open.
func (c *Client) get() (net.Conn, bool) {
	for {
		c.mu.Lock()
		n := len(c.idle)
		if n == 0 {
			c.mu.Unlock()
			return nil, false
		}
		ic := c.idle[n-1]
		c.idle[n-1] = idleConn{}
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		if time.Since(ic.since) < c.IdleTimeout && open(ic.conn) {
			return ic.conn, true
		}
		ic.conn.Close()
	}
}

// put keeps conn for the next request, or closes it when MaxIdle are
// kept already.
func (c *Client) put(conn net.Conn) {
	_ = conn.SetDeadline(time.Time{})
	c.mu.Lock()
	if c.closed || len(c.idle) >= c.MaxIdle {
		c.mu.Unlock()
		conn.Close()
		return
	}
	c.idle = append(c.idle, idleConn{conn: conn, since: time.Now()})
	if c.prune == nil {
		c.prune = time.AfterFunc(c.IdleTimeout, c.pruneIdle)
	}
	c.mu.Unlock()
}

// pruneIdle closes the connections kept longer than IdleTimeout, which
// are the first ones, and runs again while some are kept.
func (c *Client) pruneIdle() {
	now := time.Now()
	c.mu.Lock()
	n := 0
	for n < len(c.idle) && now.Sub(c.idle[n].since) >= c.IdleTimeout {
		n++
	}
	expired := make([]net.Conn, n)
	for i := range n {
		expired[i] = c.idle[i].conn
	}
	c.idle = append(c.idle[:0], c.idle[n:]...)
	clear(c.idle[len(c.idle):cap(c.idle)])
	c.prune = nil
	if len(c.idle) > 0 {
		c.prune = time.AfterFunc(c.IdleTimeout-now.Sub(c.idle[0].since), c.pruneIdle)
	}
	c.mu.Unlock()
	for _, conn := range expired {
		conn.Close()
	}
}

// CloseIdleConnections closes the kept connections; the Client keeps
// none from now on.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	if c.prune != nil {
		c.prune.Stop()
		c.prune = nil
	}
	c.mu.Unlock()
	for _, ic := range idle {
		ic.conn.Close()
	}
}

// Head is req's head as Request.Write writes it, for SendHead: req must
// be a GET without a body, kept alive. The bytes are one allocation of
// their exact size, which a caller may keep while the answer is awaited
// (and send again on ErrSendAgain) where the request itself, a header
// map and its values, would be a dozen objects.
func Head(req *http.Request) ([]byte, error) {
	if req.Method != http.MethodGet || (req.Body != nil && req.Body != http.NoBody) || req.Close {
		return nil, errors.New("h1client: Send takes kept-alive GETs without a body")
	}
	buf := heads.Get().(*bytes.Buffer)
	buf.Reset()
	err := req.Write(buf)
	head := make([]byte, buf.Len())
	copy(head, buf.Bytes())
	if buf.Cap() <= 64<<10 {
		heads.Put(buf)
	}
	return head, err
}

var heads = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Send writes req, a kept-alive GET without a body, on a kept connection
// or a new one, and returns the Exchange in which its answer will be
// read. req's context bounds only the dial.
func (c *Client) Send(req *http.Request) (*Exchange, error) {
	head, err := Head(req)
	if err != nil {
		return nil, err
	}
	return c.SendHead(req.Context(), head)
}

// SendHead is Send for a head Head made; ctx bounds only the dial.
func (c *Client) SendHead(ctx context.Context, head []byte) (*Exchange, error) {
	conn, reused := c.get()
	for {
		if conn == nil {
			var err error
			if conn, err = c.open(ctx); err != nil {
				return nil, err
			}
		}
		_, err := conn.Write(head)
		if err == nil {
			return &Exchange{c: c, conn: conn, reused: reused}, nil
		}
		conn.Close()
		if !reused {
			return nil, err
		}
		conn, reused = nil, false
	}
}

// Exchange is a request written and its answer still to come, for a
// caller that waits for the answer without a goroutine: it watches Conn
// until it is readable, then calls Receive.
type Exchange struct {
	c      *Client
	conn   net.Conn
	reused bool
}

// sentGet stands for the request of an Exchange when its answer is read:
// ReadResponse reads the method of it only (a HEAD's answer has no body),
// and an Exchange holds no request while it waits.
var sentGet = &http.Request{Method: http.MethodGet}

// ErrSendAgain is what Receive returns when the kept connection the
// request went out on had been closed by the server before it read the
// request: the request may be sent again (SendHead) on a new connection.
var ErrSendAgain = errors.New("h1client: send the request again")

// Conn is the connection the answer comes on: readable once it has.
func (e *Exchange) Conn() net.Conn { return e.conn }

// Lend gives the exchange's connection to a watcher that may replace it
// while the answer is awaited (see park.Hold): the exchange forgets it
// until Resume gives it a connection on the same socket.
func (e *Exchange) Lend() { e.conn = nil }

// Resume has the exchange go on on conn, a connection on Conn's socket
// that replaces it (see Lend): Receive reads it, and it is kept once
// the answer has been read whole.
func (e *Exchange) Resume(conn net.Conn) { e.conn = conn }

// Receive reads the answer's head; the body must be read to the end or
// closed, as RoundTrip's. It blocks until the answer has come: call it
// once Conn is readable. It returns ErrSendAgain when a kept connection
// turns out closed by the server.
func (e *Exchange) Receive() (*http.Response, error) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(e.conn)
	res, err := readResponse(br, sentGet)
	if err != nil {
		br.Reset(nil)
		readers.Put(br)
		e.conn.Close()
		if e.reused && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
			return nil, errors.Join(ErrSendAgain, err)
		}
		return nil, err
	}
	b := &body{c: e.c, conn: e.conn, br: br, rc: res.Body, stop: func() bool { return true },
		keep: !res.Close}
	if res.Body == http.NoBody || res.ContentLength == 0 {
		b.finish(true)
		return res, nil
	}
	res.Body = b
	return res, nil
}

// Abort ends an exchange whose answer will not be read (a lent
// connection is its watcher's to close).
func (e *Exchange) Abort() {
	if e.conn != nil {
		e.conn.Close()
	}
}
