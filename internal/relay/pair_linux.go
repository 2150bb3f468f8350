//go:build linux

package relay

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/flaskedge/flaskedge/internal/rawsys"
)

// endpoint is one of a pair's sockets.
type endpoint struct {
	fd       int
	pair     *pair
	readable bool // reported readable since the last EAGAIN
	writable bool // reported writable since the last EAGAIN
	// hup: epoll reported the peer's FIN, or an error: reads go on to
	// the end (EOF or the error), which no further event announces.
	hup    bool
	shut   bool // written its FIN (lingering)
	broken bool // a write failed
	closed bool // fd closed: never use fd again
}

// ready notes what epoll reported for e and serves e's pair.
func (e *endpoint) ready(events uint32) {
	if events&readEvents != 0 {
		e.readable = true
	}
	if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		e.hup = true
	}
	if events&writeEvents != 0 {
		e.writable = true
	}
	e.pair.service()
}

// request flags, set by other goroutines for the poller.
const (
	reqStop   = 1 << iota // Options.Stop is done
	reqExpire             // the close grace (or stop's wait) is over
	reqClose              // Injector.Close
)

// pair is a relayed client connection and its upstream on the event
// engine. Its fields are the poller goroutine's, but for those under mu.
type pair struct {
	po       *poller
	opt      Options // by value: one allocation per pair, not two
	limit    func() int64
	done     func(error)
	client   endpoint
	upstream endpoint
	up       flow // client → upstream
	down     flow // upstream → client

	mu          sync.Mutex // guards the requests below
	queued      bool       // in the poller's woken list
	gone        bool       // finished: requests are refused
	requests    int
	closeReason string
	injected    []injection

	ended     bool  // the relay is ending: its first error is known
	first     error // what ended it
	stopping  bool  // Stop is done: say goodbye at the next message boundary
	lingering bool  // the client was sent its close and FIN; discarding its bytes
	// clientClosed: the client sent its close frame; its connection
	// closes once the worker's answer is passed on.
	clientClosed bool
	lingerLeft   int64
	finished     bool
	dirty        bool // state changed while serving: serve once more
	later        bool // in the poller's later list
	timer        *time.Timer
}

// injection is a frame an Injector queued.
type injection struct {
	toClient bool
	frame    []byte
}

// newEventPair makes the pair of cfd and ufd; opt is prepared.
func newEventPair(po *poller, cfd, ufd int, opt Options, limit func() int64, done func(error)) *pair {
	p := &pair{po: po, opt: opt, limit: limit, done: done}
	p.client = endpoint{fd: cfd, pair: p, readable: true, writable: true}
	p.upstream = endpoint{fd: ufd, pair: p, readable: true, writable: true}
	p.up = flow{p: p, src: &p.client, dst: &p.upstream, fromClient: true, filter: opt.FromClient}
	p.down = flow{p: p, src: &p.upstream, dst: &p.client, filter: opt.FromUpstream}
	if opt.Inject != nil {
		opt.Inject.start(p)
	}
	if opt.Stop != nil && opt.Stop.watch(p) {
		p.requests |= reqStop // served as the poller registers the pair
	}
	return p
}

// stopRequested is told of Options.Stop.
func (p *pair) stopRequested() { p.request(reqStop, "") }

// register adds the pair's sockets to the poller, on its goroutine.
func (p *pair) register() {
	for _, e := range []*endpoint{&p.client, &p.upstream} {
		if err := p.po.watch(e); err != nil {
			p.end(err)
			p.teardown()
			return
		}
	}
	p.serveRequests() // a Stop before the pair started, then the service
}

// request asks the poller to act on p for another goroutine.
func (p *pair) request(flag int, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return
	}
	p.requests |= flag
	if flag == reqClose {
		p.closeReason = reason
	}
	p.wakeLocked()
}

func (p *pair) wakeLocked() {
	if !p.queued {
		p.queued = true
		p.po.wake(p)
	}
}

// inject queues msg as a text frame for one side (Injector).
func (p *pair) inject(toClient bool, msg []byte) error {
	frame := newFrame(websocket.TextMessage, msg, !toClient)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return ErrNotRelaying
	}
	p.injected = append(p.injected, injection{toClient, frame})
	p.wakeLocked()
	return nil
}

// closePolicy ends the relay with 1008 (Injector.Close).
func (p *pair) closePolicy(reason string) { p.request(reqClose, reason) }

// serveRequests acts on what other goroutines asked, on the poller's.
func (p *pair) serveRequests() {
	p.mu.Lock()
	requests, reason, injected := p.requests, p.closeReason, p.injected
	p.requests, p.injected, p.queued = 0, nil, false
	p.mu.Unlock()
	if p.finished {
		return
	}
	for _, in := range injected {
		if in.toClient {
			p.down.enqueue(in.frame, true)
		} else {
			p.up.enqueue(in.frame, true)
		}
	}
	if requests&reqStop != 0 && !p.stopping {
		p.stopping = true
		p.startTimer(controlWait)
	}
	if requests&reqClose != 0 {
		p.closeWithPolicy(reason)
	}
	if requests&reqExpire != 0 {
		p.teardown()
		return
	}
	p.service()
}

// service pumps both flows until neither has anything left to do until
// the next event, then ends the pair once both sockets are closed.
func (p *pair) service() {
	for p.dirty = true; p.dirty && !p.finished; {
		p.dirty = false
		p.up.pump()
		p.down.pump()
		if p.client.closed && p.down.readDone && !p.up.closeDst {
			// Nothing more can go to the client: the worker's
			// connection closes once what is on its way is sent.
			p.up.closeDst = true
			p.dirty = true
		}
		if p.client.closed && p.upstream.closed {
			p.finish()
		}
	}
}

// end notes the error that ends the relay, when it is the first, and
// tells both sides why unless it was a close frame, already passed on.
// Both sides then have CloseGrace before their connections are closed.
func (p *pair) end(err error) bool {
	if p.ended {
		return false
	}
	p.ended, p.first = true, err
	if msg := closeMessage(err, stopReason(p.opt)); msg != nil {
		// A side that broke the protocol has its 1002 already.
		var fe *frameError
		broke := errors.As(err, &fe)
		if !broke || fe.from != &p.up {
			p.down.enqueue(newFrame(websocket.CloseMessage, msg, false), false)
		}
		if !broke || fe.from != &p.down {
			p.up.enqueue(newFrame(websocket.CloseMessage, msg, true), false)
		}
	}
	p.startTimer(p.opt.CloseGrace)
	return true
}

func (p *pair) startTimer(d time.Duration) {
	if p.timer == nil {
		p.timer = time.AfterFunc(d, func() { p.request(reqExpire, "") })
	}
}

// flowEnded is told that f stopped reading its source, and why.
func (p *pair) flowEnded(f *flow, err error) {
	p.end(err)
	p.dirty = true
	if f == &p.down {
		if p.clientClosed {
			// The worker's answer to the client's close frame (or
			// its end) is on its way: the client's connection
			// closes once it is sent.
			p.down.closeDst = true
		}
		return
	}
	// After the client's own close frame, its connection closes once
	// the worker's answer has been passed on; otherwise once the client
	// has read its close frame and answered, or closed its side (see
	// Linger).
	if isCloseFrame(err) {
		p.clientClosed = true
		if p.down.readDone {
			p.down.closeDst = true
		}
	} else {
		p.down.shutDst = true
	}
}

// closeWithPolicy ends the relay as Injector.Close does: 1008 to both,
// the worker's connection closed once its close frame is sent, the
// client's once it has answered.
func (p *pair) closeWithPolicy(reason string) {
	pe := &PolicyError{Reason: reason}
	if !p.end(pe) {
		msg := closeMessage(pe, "")
		p.down.enqueue(newFrame(websocket.CloseMessage, msg, false), false)
		p.up.enqueue(newFrame(websocket.CloseMessage, msg, true), false)
	}
	p.down.finish(pe)
	p.up.finish(pe)
	p.up.closeDst = true
}

// startLinger begins discarding what the client sends after its close
// frame and FIN (see Linger).
func (p *pair) startLinger() {
	p.lingering = true
	p.lingerLeft = LingerMax
	p.dirty = true
}

// lingerRead reads and throws away what the client sends, and closes the
// client's connection at its end or past LingerMax bytes.
func (p *pair) lingerRead() {
	for p.client.readable && !p.client.closed {
		buf := readBufs.Get().(*[readBufSize]byte)
		n, err := rawsys.Read(p.client.fd, buf[:])
		readBufs.Put(buf)
		switch {
		case err == syscall.EAGAIN:
			p.client.readable = false
		case err == syscall.EINTR:
		case err != nil || n == 0:
			p.closeClient()
		default:
			if p.lingerLeft -= int64(n); p.lingerLeft <= 0 {
				p.closeClient()
			}
		}
	}
}

func (p *pair) closeClient() {
	p.lingering = false
	p.po.release(&p.client)
	p.dirty = true
}

func (p *pair) count(fromClient bool, n int64) {
	if p.opt.Count != nil {
		p.opt.Count(fromClient, n)
	}
}

// teardown closes both sockets at once and ends the pair.
func (p *pair) teardown() {
	p.po.release(&p.client)
	p.po.release(&p.upstream)
	p.finish()
}

// finish ends the pair once its sockets are closed: it frees what the
// pair holds and calls done.
func (p *pair) finish() {
	if p.finished {
		return
	}
	p.finished = true
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.opt.Stop != nil {
		p.opt.Stop.unwatch()
	}
	p.up.drop()
	p.down.drop()
	p.mu.Lock()
	p.gone, p.injected = true, nil
	p.mu.Unlock()
	p.po.finished()
	err := p.first
	if err == nil {
		err = net.ErrClosed
	}
	go p.done(err)
}
