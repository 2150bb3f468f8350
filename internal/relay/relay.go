// Package relay joins two WebSocket connections and passes messages and
// control frames between them, one frame at a time.
//
// It is the data path of a proxied Socket.IO WebSocket: every message a
// client sends crosses it on its way to the worker. It runs in one of two
// ways. Relay, on two goroutines per connection, holds no buffer of its
// own while a connection is idle and copies each message straight from
// one connection's read buffer into the other's write buffer. Start, on
// Linux, hands plain TCP connections to an event engine (epoll): an idle
// connection then holds no goroutine and no buffer, only its frame
// parsers' state, and frames pass from socket to socket byte for byte
// through a pooled buffer; elsewhere Start runs Relay.
package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Options tune a relay.
type Options struct {
	// MaxMessage is the largest message, in bytes, accepted from the
	// client; a larger one closes the connection with 1009 (message too
	// big). Zero means no limit.
	MaxMessage int64
	// Limit, when set, replaces MaxMessage and is asked as each client
	// message begins, so that a limit changed while the relay runs (a
	// config reload) applies from the next message on.
	Limit func() int64
	// Inject, when set, lets the caller send messages of its own into
	// the relay while it runs (see Injector).
	Inject *Injector
	// CloseGrace is how long, once one side has closed, the other side
	// has to answer the close before both connections are torn down.
	CloseGrace time.Duration
	// FromClient and FromUpstream, when set, may rewrite the text
	// messages going each way.
	FromClient, FromUpstream *Filter
	// Count, when set, is told of every message relayed: its direction
	// and its size in bytes as sent on.
	Count func(fromClient bool, size int64)
	// AdmitClient, when set, is asked before each client message is
	// relayed; an error ends the relay as a Filter's refusal does.
	AdmitClient func() error
	// Stop, when set, ends the relay once its Stop is called: the client
	// is sent Farewell (if any) as a text message after the last message
	// relayed from the worker, then both sides get a 1001 close with
	// StopReason, or with the reason given to Stop.
	Stop       *Stopper
	Farewell   []byte
	StopReason string
	// NoTakeover keeps Start on the goroutine relay (see Start). Set it
	// when a connection may hold bytes gorilla has read from the network
	// but not yet returned: the upstream's, once a message was read from
	// it through gorilla (the worker's open packet of a new session).
	NoTakeover bool
}

// ErrStopped ends a relay whose Options.Stop was done.
var ErrStopped = errors.New("relay: stopped")

// Filter rewrites some of the text messages a relay passes. Peek sees the
// first bytes of each text message (at most PeekLen, fewer if the message
// is shorter) and says whether Rewrite needs the message whole; every
// other message is streamed through untouched, so a filter costs the
// common message one short read.
type Filter struct {
	PeekLen int
	Peek    func(prefix []byte) bool
	// Rewrite returns the message to send instead, or nil to send
	// nothing. An error ends the relay with close code 1008 (policy
	// violation) and the error's text as the reason, sent to both sides.
	Rewrite func(msg []byte) ([]byte, error)
	// Binary, when set, is asked before each binary message; false
	// drops the message.
	Binary func() bool
}

// maxPeek bounds Filter.PeekLen, so the peeked bytes live on the stack.
const maxPeek = 32

// PolicyError is a Rewrite's refusal of a message, which ended the relay.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return "relay: message refused: " + e.Reason }

// controlWait bounds a control-frame write to a peer that stopped reading.
const controlWait = 5 * time.Second

// Relay passes messages between client and upstream until either side
// closes or fails, then closes both. A close frame from one side is passed
// to the other with its code and reason, so a client sees the worker's
// close and the worker sees the client's. It returns the error that ended
// the relay: a *websocket.CloseError for an orderly close.
func Relay(client, upstream *websocket.Conn, opt Options) error {
	limit := opt.prepare()
	toClient, toUpstream := &lockedConn{Conn: client}, &lockedConn{Conn: upstream}
	if opt.Inject != nil {
		opt.Inject.start(lockedPair{client: toClient, upstream: toUpstream})
	}
	forwardControl(client, upstream)
	forwardControl(upstream, client)

	// The messages from the worker are relayed on a goroutine of their
	// own and those from the client on the caller's, so a connection
	// costs two goroutines. Whichever direction ends first tells the
	// other side why, and gives it CloseGrace to answer before both
	// connections are closed, which also ends the other direction.
	var (
		once  sync.Once
		first error
		timer *time.Timer
	)
	closeBoth := func() {
		client.Close()
		upstream.Close()
	}
	finish := func(err error) {
		once.Do(func() {
			first = err
			sendClose(client, upstream, err, stopReason(opt))
			timer = time.AfterFunc(opt.CloseGrace, closeBoth)
		})
	}
	var stopping atomic.Bool
	if opt.Stop != nil {
		// Wake the worker->client direction, which alone may write to
		// the client, so that it can say goodbye in order.
		stop := stopFunc(func() {
			stopping.Store(true)
			_ = upstream.SetReadDeadline(time.Now())
			time.AfterFunc(controlWait, closeBoth)
		})
		if opt.Stop.watch(stop) {
			stop()
		}
		defer opt.Stop.unwatch()
	}
	fromUpstream := make(chan struct{})
	go func() {
		err := pipe(toClient, upstream, opt.FromUpstream, nil, counter(opt.Count, false), nil)
		if stopping.Load() {
			if opt.Farewell != nil {
				_ = client.SetWriteDeadline(time.Now().Add(controlWait))
				_ = toClient.write(opt.Farewell)
			}
			err = ErrStopped
		}
		finish(err)
		close(fromUpstream)
	}()
	clientErr := pipe(toUpstream, client, opt.FromClient, limit, counter(opt.Count, true), opt.AdmitClient)
	finish(clientErr)
	// The close frame is on its way to the client (ours, or the
	// worker's passed on); the client's TCP connection ends after the
	// client's own close, so that what it sent meanwhile, unread, does
	// not reset the connection and lose the close frame (see Linger).
	// When the client closed first, its connection ends once the
	// worker's answer has been passed on, below.
	if !isCloseFrame(clientErr) {
		Linger(client, clientErr, opt.CloseGrace)
	}
	<-fromUpstream
	timer.Stop()
	closeBoth()
	return first
}

// prepare checks opt's filters, sets CloseGrace's default and returns the
// message limit to ask as each client message begins.
func (opt *Options) prepare() (limit func() int64) {
	for _, f := range []*Filter{opt.FromClient, opt.FromUpstream} {
		if f != nil && (f.PeekLen <= 0 || f.PeekLen > maxPeek) {
			panic("relay: Filter.PeekLen out of range")
		}
	}
	if opt.CloseGrace <= 0 {
		opt.CloseGrace = 5 * time.Second
	}
	if opt.Limit != nil {
		return opt.Limit
	}
	max := opt.MaxMessage
	return func() int64 { return max }
}

// isCloseFrame tells whether err is a close frame the peer sent, as
// opposed to a failure gorilla reports as 1006.
func isCloseFrame(err error) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure
}

// closeMessage is the payload of the close frame that tells both sides
// why the relay ends, or nil when it ended with a close frame, which has
// already been passed to the other side.
func closeMessage(err error, stopReason string) []byte {
	if isCloseFrame(err) {
		return nil
	}
	var pe *PolicyError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return websocket.FormatCloseMessage(websocket.CloseMessageTooBig, "")
	case errors.As(err, &pe):
		return websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(pe.Reason, 120))
	case errors.Is(err, ErrStopped):
		return websocket.FormatCloseMessage(websocket.CloseGoingAway, truncate(stopReason, 120))
	}
	return websocket.FormatCloseMessage(websocket.CloseGoingAway, "")
}

// sendClose tells both sides why the relay ends when it did not end with
// a close frame (a dropped TCP connection, which gorilla reports as 1006,
// an oversized message, or a refused one); a close frame from one side
// has already been passed to the other by forwardControl.
func sendClose(client, upstream *websocket.Conn, err error, stopReason string) {
	msg := closeMessage(err, stopReason)
	if msg == nil {
		return
	}
	deadline := time.Now().Add(controlWait)
	_ = client.WriteControl(websocket.CloseMessage, msg, deadline)
	_ = upstream.WriteControl(websocket.CloseMessage, msg, deadline)
}

func counter(count func(bool, int64), fromClient bool) func(int64) {
	if count == nil {
		return func(int64) {}
	}
	return func(n int64) { count(fromClient, n) }
}

// pipe copies messages from src to dst until src fails or closes, passing
// text messages through f when it is set, asking admit (when set) before
// each, and telling count each message's size. limit, when set, bounds
// each message read from src: it is asked as the message begins and
// also set as src's read limit, so that a frame announcing more is
// refused from its header.
func pipe(dst *lockedConn, src *websocket.Conn, f *Filter, limit func() int64, count func(int64), admit func() error) error {
	var peek [maxPeek]byte
	var body limitedReader
	for {
		var max int64
		if limit != nil {
			max = limit()
			src.SetReadLimit(max)
		}
		mt, r, err := src.NextReader()
		if err != nil {
			return err
		}
		if limit != nil {
			if now := limit(); now != max {
				max = now
				src.SetReadLimit(max)
			}
		}
		if max > 0 {
			body = limitedReader{r: r, left: max}
			r = &body
		}
		if admit != nil {
			if err := admit(); err != nil {
				return &PolicyError{Reason: err.Error()}
			}
		}
		if f != nil && f.Binary != nil && mt == websocket.BinaryMessage && !f.Binary() {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			continue
		}
		var head []byte
		if f != nil && mt == websocket.TextMessage {
			n, err := io.ReadFull(r, peek[:f.PeekLen])
			if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
				return err
			}
			head = peek[:n]
			if f.Peek(head) {
				n, err := rewrite(dst, f, head, r)
				if err != nil {
					return err
				}
				count(n)
				continue
			}
		}
		n, err := dst.copyMessage(mt, head, r)
		if err != nil {
			return err
		}
		count(n)
	}
}

// limitedReader reads one message up to a limit and fails with
// websocket.ErrReadLimit past it, as the connection's own limit does.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, websocket.ErrReadLimit
	}
	return n, err
}

// rewrite reads the rest of a message whose head f.Peek chose, passes it
// to f.Rewrite and sends the result.
func rewrite(dst *lockedConn, f *Filter, head []byte, r io.Reader) (int64, error) {
	buf := bytes.NewBuffer(make([]byte, 0, 256))
	buf.Write(head)
	if _, err := buf.ReadFrom(r); err != nil {
		return 0, err
	}
	msg, err := f.Rewrite(buf.Bytes())
	if err != nil {
		return 0, &PolicyError{Reason: err.Error()}
	}
	if msg == nil {
		return 0, nil
	}
	return int64(len(msg)), dst.write(msg)
}

// lockedConn is one side of a relay, written to by the relay's goroutine
// for that direction and by an Injector, one message at a time.
type lockedConn struct {
	*websocket.Conn
	mu sync.Mutex
}

func (c *lockedConn) write(msg []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.WriteMessage(websocket.TextMessage, msg)
}

// copyMessage sends head and then what r holds as one message of type mt.
func (c *lockedConn) copyMessage(mt int, head []byte, r io.Reader) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, err := c.NextWriter(mt)
	if err != nil {
		return 0, err
	}
	if len(head) > 0 {
		if _, err := w.Write(head); err != nil {
			w.Close()
			return 0, err
		}
	}
	// gorilla's message writer implements io.ReaderFrom, so this reads
	// straight into the connection's write buffer.
	n, err := io.Copy(w, r)
	if err != nil {
		w.Close()
		return 0, err
	}
	return n + int64(len(head)), w.Close()
}

// Injector sends text messages of the caller's own into a running relay,
// each whole and between two relayed messages: the edge uses it to tell
// both sides of a session that it withdrew a namespace.
type Injector struct {
	mu sync.Mutex
	to injectee
}

// injectee is a running relay as its Injector reaches it: the goroutine
// relay's two connections, or a pair of the event engine.
type injectee interface {
	// inject sends msg as a text message to the client or the upstream.
	inject(toClient bool, msg []byte) error
	// closePolicy ends the relay as Injector.Close says.
	closePolicy(reason string)
}

// ErrNotRelaying is returned by an Injector whose relay has not started,
// or, on the event engine, has ended.
var ErrNotRelaying = errors.New("relay: not running")

func (in *Injector) start(to injectee) {
	in.mu.Lock()
	in.to = to
	in.mu.Unlock()
}

func (in *Injector) target() injectee {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.to
}

// ToClient sends msg to the client.
func (in *Injector) ToClient(msg []byte) error {
	to := in.target()
	if to == nil {
		return ErrNotRelaying
	}
	return to.inject(true, msg)
}

// ToUpstream sends msg to the upstream, as if the client had sent it.
func (in *Injector) ToUpstream(msg []byte) error {
	to := in.target()
	if to == nil {
		return ErrNotRelaying
	}
	return to.inject(false, msg)
}

// Close ends the relay: both sides get a 1008 close with reason. The
// worker's connection closes at once, so nothing the client sends from
// now on reaches it; the client's ends once the client has answered the
// close (see Linger).
func (in *Injector) Close(reason string) {
	if to := in.target(); to != nil {
		to.closePolicy(reason)
	}
}

// lockedPair is the goroutine relay's side of an Injector.
type lockedPair struct{ client, upstream *lockedConn }

func (lp lockedPair) inject(toClient bool, msg []byte) error {
	if toClient {
		return lp.client.write(msg)
	}
	return lp.upstream.write(msg)
}

func (lp lockedPair) closePolicy(reason string) {
	msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(reason, 120))
	deadline := time.Now().Add(controlWait)
	_ = lp.client.WriteControl(websocket.CloseMessage, msg, deadline)
	_ = lp.upstream.WriteControl(websocket.CloseMessage, msg, deadline)
	lp.upstream.Close()
	HalfClose(lp.client.Conn, controlWait)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// forwardControl makes src's ping, pong and close frames go to dst as they
// are, instead of being answered by the relay.
func forwardControl(src, dst *websocket.Conn) {
	src.SetPingHandler(func(data string) error {
		return ignoreTimeout(dst.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(controlWait)))
	})
	src.SetPongHandler(func(data string) error {
		return ignoreTimeout(dst.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(controlWait)))
	})
	src.SetCloseHandler(func(code int, text string) error {
		msg := websocket.FormatCloseMessage(code, text)
		if code == websocket.CloseNoStatusReceived {
			msg = []byte{}
		}
		_ = dst.WriteControl(websocket.CloseMessage, msg, time.Now().Add(controlWait))
		return nil
	})
}

// ignoreTimeout lets a relay outlive a control frame that could not be
// written in time; the data path will notice a dead peer on its own.
func ignoreTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

// stopReason is the reason of the 1001 close when Stop ends the relay.
func stopReason(opt Options) string {
	if opt.Stop != nil {
		opt.Stop.mu.Lock()
		defer opt.Stop.mu.Unlock()
		if opt.Stop.reason != "" {
			return opt.Stop.reason
		}
	}
	return opt.StopReason
}

// Stopper ends a running relay (see Options.Stop). The zero value is
// ready to use; a Stopper serves one relay. It is a few words the caller
// keeps with its own record of the relay, and unlike a context it
// registers nothing anywhere else: the edge holds one per idle
// connection, and a context with an AfterFunc costs ten times as much.
type Stopper struct {
	mu      sync.Mutex
	stopped bool
	reason  string
	to      stoppable // the running relay, told of Stop
}

// stoppable is a running relay as its Stopper reaches it.
type stoppable interface{ stopRequested() }

// stopFunc is the goroutine relay's stoppable.
type stopFunc func()

func (f stopFunc) stopRequested() { f() }

// Stop ends the relay, now or as soon as it starts: reason, when not
// empty, is the 1001 close's reason instead of Options.StopReason. Only
// the first call counts.
func (s *Stopper) Stop(reason string) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped, s.reason = true, reason
	to := s.to
	s.mu.Unlock()
	if to != nil {
		to.stopRequested()
	}
}

// OnStop has f called once with Stop's reason ("" when it gave none),
// when Stop is called, or on a goroutine of its own at once if it was:
// for a caller that relays a session by other means than Relay and
// Start.
func (s *Stopper) OnStop(f func(reason string)) {
	tell := stopFunc(func() {
		s.mu.Lock()
		reason := s.reason
		s.mu.Unlock()
		f(reason)
	})
	if s.watch(tell) {
		go tell()
	}
}

// watch has the relay to told of Stop. It reports whether Stop was
// called already, in which case to is not told.
func (s *Stopper) watch(to stoppable) (stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return true
	}
	s.to = to
	return false
}

// unwatch forgets the relay, once it has ended.
func (s *Stopper) unwatch() {
	s.mu.Lock()
	s.to = nil
	s.mu.Unlock()
}
