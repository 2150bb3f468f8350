package socketioproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/h1serve"
	"github.com/flaskedge/flaskedge/internal/park"
)

// A long-polling client keeps a second connection open for its POSTs,
// idle between messages. Served by net/http, an idle kept-alive
// connection holds a goroutine and 8 KiB of buffers; parked, it holds
// its file descriptor and a few hundred bytes. After an answer has been
// written whole (a POST's, a handshake's, a waiting GET's, which the
// edge writes itself: see waitingPoll), the edge parks the connection
// (internal/park); when its client sends again, a keeper serves it,
// with the site's whole handler chain (the Caddy server the connection
// came from), as Caddy would have, and keeps it alive as Caddy would.
// A long-polling session's requests are read and answered by the keeper
// itself (internal/h1serve), on the goroutine that woke the connection;
// any other request goes to an http.Server of the keeper's own.
// When the handler's config ends (a reload, Cleanup) or the edge starts
// exiting, parked connections are closed and the keepers' idle ones too,
// as Caddy's shutdown closes its idle connections.

// keepers are a handler's keepers, one per Caddy server whose
// connections it parked.
type keepers struct {
	mu      sync.Mutex
	by      map[*caddyhttp.Server]*keeper
	stopped bool
}

// keeper serves the parked connections of one Caddy server.
type keeper struct {
	srv    *caddyhttp.Server
	hs     *http.Server
	fast   *h1serve.Server // serves the sessions' requests
	ln     *handover
	idle   time.Duration // how long a connection stays parked
	logger *zap.Logger

	closing atomic.Bool // stop has begun: served connections close

	mu      sync.Mutex
	parked  map[*park.Conn]bool // whether its last request was a POST
	stopped bool
	sweep   *time.Timer // armed while connections are parked
	exit    func() bool // stops closing them when the edge exits
}

// keeperFor returns the keeper of r's Caddy server, made on first use,
// or nil once the handler is cleaned up.
func (h *Handler) keeperFor(r *http.Request) *keeper {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return nil
	}
	ks := h.keepers
	if ks == nil {
		return nil
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.stopped {
		return nil
	}
	if k := ks.by[srv]; k != nil {
		return k
	}
	k := newKeeper(srv, h.logger, h.registry.draining)
	if ks.by == nil {
		ks.by = make(map[*caddyhttp.Server]*keeper)
	}
	ks.by[srv] = k
	return k
}

// stop ends every keeper: parked connections are closed, and the
// requests the keepers serve finish as Caddy's own do on a reload.
func (ks *keepers) stop() {
	ks.mu.Lock()
	ks.stopped = true
	by := ks.by
	ks.by = nil
	ks.mu.Unlock()
	for _, k := range by {
		k.stop()
	}
}

func newKeeper(srv *caddyhttp.Server, logger *zap.Logger, exiting context.Context) *keeper {
	idle := time.Duration(srv.IdleTimeout)
	if idle <= 0 {
		idle = 5 * time.Minute // Caddy's default
	}
	k := &keeper{srv: srv, idle: idle, logger: logger, parked: make(map[*park.Conn]bool)}
	k.ln = &handover{conns: make(chan net.Conn), done: make(chan struct{})}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	k.hs = &http.Server{
		Handler:           http.HandlerFunc(k.serve),
		ReadTimeout:       time.Duration(srv.ReadTimeout),
		ReadHeaderTimeout: time.Duration(srv.ReadHeaderTimeout),
		WriteTimeout:      time.Duration(srv.WriteTimeout),
		IdleTimeout:       idle,
		MaxHeaderBytes:    srv.MaxHeaderBytes,
		Protocols:         protocols,
		ErrorLog:          log.New(zapWriter{logger}, "", 0),
	}
	k.fast = &h1serve.Server{
		Handler:           srv,
		HTTPServer:        k.hs,
		Accept:            sessionRequest,
		ReadHeaderTimeout: k.hs.ReadHeaderTimeout,
		ReadTimeout:       k.hs.ReadTimeout,
		WriteTimeout:      k.hs.WriteTimeout,
		ErrorLog: func(msg string, err error) {
			logger.Error(msg, zap.Error(err))
		},
		Watch:   watchHangUp,
		Closing: k.closing.Load,
	}
	k.exit = context.AfterFunc(exiting, k.stop)
	go func() { _ = k.hs.Serve(k.ln) }()
	return k
}

// watchHangUp watches conn, whose request a handler serves, for its
// client hanging up, and calls gone if it does (h1serve.Server.Watch).
// Bytes the client sends meanwhile (a pipelined request) end the watch,
// as they end net/http's background read.
func watchHangUp(conn net.Conn, gone func()) (stop func()) {
	pc, ok := park.Park(conn, func(*park.Conn) {
		if park.HungUp(conn) {
			gone()
		}
	})
	if !ok {
		return func() {}
	}
	return func() { pc.Unpark() }
}

// sessionRequest reports whether r is a long-polling session's request,
// which the keeper reads and answers itself.
func sessionRequest(r *http.Request) bool {
	q := r.URL.RawQuery
	return strings.Contains(q, "transport=polling") && strings.Contains(q, "sid=")
}

// serve runs the Caddy server's handler chain for a request that came on
// a parked connection.
func (k *keeper) serve(w http.ResponseWriter, r *http.Request) {
	k.srv.ServeHTTP(w, r)
}

// park takes the connection of a request whose response has been written
// whole and parks it, reporting whether it did. It is called last, once
// the call holds nothing the client's next request on the connection
// could meet.
func (k *keeper) park(w http.ResponseWriter, r *http.Request) bool {
	// What net/http read past the request must be the client's next
	// request: a POST's body was read whole, a GET must have none.
	if !keptAlive(r) || (r.Method != http.MethodPost && (r.ContentLength != 0 || len(r.TransferEncoding) > 0)) {
		return false
	}
	if r.TLS != nil {
		// crypto/tls may hold the client's next request decrypted,
		// which its socket would not announce: kept by net/http.
		return false
	}
	if !plainWriters(w) {
		return false
	}
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return false
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		return false
	}
	conn = replayed(conn)
	var pending []byte
	if n := brw.Reader.Buffered(); n > 0 {
		pending, _ = brw.Reader.Peek(n)
		pending = bytes.Clone(pending)
	}
	k.keep(conn, pending, r.Method == http.MethodPost)
	return true
}

// keep parks conn, a client connection whose last answer the edge wrote
// whole, until its client sends again; pending are bytes of the next
// request read already (a client pipelining), whose connection is served
// at once. afterPost says the last request was a POST: the empty lines
// an old client may send after its body are skipped, as net/http skips
// them on the connection that read the POST.
func (k *keeper) keep(conn net.Conn, pending []byte, afterPost bool) {
	if afterPost {
		n := 0
		for n < len(pending) && n < 4 && (pending[n] == '\r' || pending[n] == '\n') {
			n++
		}
		pending = pending[n:]
	}
	if len(pending) > 0 {
		if _, isTLS := conn.(*tls.Conn); isTLS {
			// Its next request cannot be replayed under TLS.
			conn.Close()
			return
		}
		k.hand(&replayConn{Conn: conn, pending: pending})
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		conn.Close()
		return
	}
	if _, isTLS := conn.(*tls.Conn); isTLS {
		// crypto/tls may hold the client's next request decrypted,
		// which its socket would not announce: served on.
		go k.hand(conn)
		return
	}
	pc, ok := park.Hold(conn, k.woken)
	if !ok {
		// Not a plain TCP connection: served on, as net/http would.
		go k.hand(conn)
		return
	}
	k.parked[pc] = afterPost
	parkedIdle.Inc()
	if k.sweep == nil {
		k.sweep = time.AfterFunc(k.idle/4, k.sweepIdle)
	}
}

// woken is called when a parked connection's client sends again (or
// hangs up): the keeper serves it.
func (k *keeper) woken(pc *park.Conn) {
	k.mu.Lock()
	afterPost, ok := k.parked[pc]
	if ok {
		delete(k.parked, pc)
		parkedIdle.Dec()
	}
	stopped := k.stopped
	k.mu.Unlock()
	if stopped {
		pc.Close()
		return
	}
	conn := pc.Conn()
	if err := park.WakeErr(conn); err != nil {
		if errors.Is(err, park.ErrWake) {
			k.logger.Error("a kept connection could not be woken; closed (is the edge out of file descriptors?)", zap.Error(err))
		}
		return
	}
	switch out, pending, lastPost := k.fast.Serve(conn, afterPost); out {
	case h1serve.Idle:
		k.keep(conn, nil, lastPost)
	case h1serve.Declined:
		k.hand(&replayConn{Conn: conn, pending: pending})
	}
}

// hand gives conn to the keeper's server, or closes it once the keeper
// is stopped.
func (k *keeper) hand(conn net.Conn) {
	k.ln.hand(conn)
}

// sweepIdle closes the connections parked for longer than the idle
// timeout, as net/http would close them.
func (k *keeper) sweepIdle() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sweep = nil
	if k.stopped {
		return
	}
	cut := time.Now().Add(-k.idle)
	for pc := range k.parked {
		if pc.Since().Before(cut) && pc.Unpark() {
			delete(k.parked, pc)
			parkedIdle.Dec()
			pc.Close()
		}
	}
	if len(k.parked) > 0 {
		k.sweep = time.AfterFunc(k.idle/4, k.sweepIdle)
	}
}

// stop closes the parked connections and the keeper's server: the
// requests it serves finish; their connections close after them.
func (k *keeper) stop() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.stopped = true
	k.closing.Store(true)
	k.exit()
	if k.sweep != nil {
		k.sweep.Stop()
		k.sweep = nil
	}
	for pc := range k.parked {
		if pc.Unpark() {
			pc.Close()
		}
		parkedIdle.Dec()
	}
	k.parked = nil
	k.mu.Unlock()
	k.ln.Close()
	// Woken connections reading their next head close, as net/http's
	// idle ones do: what their client finishes sending now is the new
	// config's to serve.
	k.fast.CloseIdle()
	k.hs.SetKeepAlivesEnabled(false)
	go func() { _ = k.hs.Shutdown(context.Background()) }()
}

// plainWriters reports whether every writer w wraps passes its response
// on as it is written, so that a flush puts all of it on the connection:
// Caddy's own wrappers and edge_cors's. Any other (encode's, which holds
// a small body until the handler returns, say) keeps the connection
// with net/http.
func plainWriters(w http.ResponseWriter) bool {
	for {
		t := reflect.TypeOf(w)
		kind, ok := writerKinds.Load(t)
		if !ok {
			// Decided once per type, by its name: the types are
			// unexported.
			kind = writerKindsByName[t.String()]
			writerKinds.Store(t, kind)
		}
		switch kind.(writerKind) {
		case netHTTPWriter:
			return true
		case otherWriter:
			return false
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}

// writerKind is what plainWriters makes of a writer's type.
type writerKind uint8

const (
	otherWriter   writerKind = iota
	plainWrapper             // passes writes on as they come
	netHTTPWriter            // net/http's own
)

// writerKindsByName are the kinds of the writers plainWriters knows;
// writerKinds its verdicts by type.
var (
	writerKindsByName = map[string]writerKind{
		"*http.response":                   netHTTPWriter,
		"*h1serve.response":                netHTTPWriter,
		"*caddyhttp.responseRecorder":      plainWrapper,
		"*caddyhttp.readDeadlineWriter":    plainWrapper,
		"*caddyhttp.IdleTimeoutWriter":     plainWrapper,
		"*caddyhttp.ResponseWriterWrapper": plainWrapper,
		"*edgecors.corsWriter":             plainWrapper,
	}
	writerKinds sync.Map // reflect.Type → writerKind
)

// handover is the keeper's server's listener: its connections are the
// parked ones whose clients sent again.
type handover struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *handover) hand(conn net.Conn) {
	select {
	case l.conns <- conn:
	case <-l.done:
		conn.Close()
	}
}

func (l *handover) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handover) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handover) Addr() net.Addr { return &net.TCPAddr{} }

// replayConn is a connection whose next bytes were read already.
type replayConn struct {
	net.Conn
	pending []byte
}

// replayed returns the connection under conn, taken back from net/http
// (Hijack), once the bytes it replayed have all been read: a
// connection the keeper's server got as a replayConn (a request
// pipelined, or one h1serve declined) parks as any other, where the
// wrapper, which park cannot watch, would be served by net/http for the
// rest of its life. Unread bytes keep the wrapper.
func replayed(conn net.Conn) net.Conn {
	if rc, ok := conn.(*replayConn); ok && len(rc.pending) == 0 {
		return rc.Conn
	}
	return conn
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection before closing it,
// as it does after refusing a request the client is still sending (a
// head too large, say), so that its answer is not lost to a reset.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// zapWriter passes the keeper's server's error log lines to the
// handler's log, at debug level (net/http logs clients' TLS and header
// errors there).
type zapWriter struct{ logger *zap.Logger }

func (z zapWriter) Write(p []byte) (int, error) {
	if ce := z.logger.Check(zapcore.DebugLevel, "parked connection"); ce != nil {
		ce.Write(zap.String("error", strings.TrimSpace(string(p))))
	}
	return len(p), nil
}

var _ net.Listener = (*handover)(nil)
