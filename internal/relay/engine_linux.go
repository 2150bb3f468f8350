//go:build linux

package relay

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gorilla/websocket"

	"github.com/flaskedge/flaskedge/internal/rawsys"
)

// The event engine relays WebSocket connections without a goroutine per
// connection: a few pollers, each a goroutine and an epoll instance, read
// and write the connections' non-blocking sockets themselves as they
// become ready. A poller's goroutine does not block its thread in
// epoll_wait: the epoll instance is itself watched by the Go runtime's
// network poller (an epoll descriptor is readable while it has events),
// so it parks and wakes as any goroutine reading a socket does. A relayed pair holds its parsing state (see flow) and,
// only while bytes are on their way, a read buffer from readBufs.

// readBufSize is the size of the buffer a flow reads into.
const readBufSize = 16 << 10

// readBufs lends read buffers for the time their bytes take to be sent on.
var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// Edge-triggered: a socket is reported once each time it becomes
// readable or writable, and a flow that stops reading (its destination
// is full) simply leaves the readiness unread, without an epoll_ctl.
const (
	epollET     = 1 << 31 // syscall.EPOLLET is negative, as an int
	pairEvents  = syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET
	readEvents  = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
	writeEvents = syscall.EPOLLOUT | syscall.EPOLLHUP | syscall.EPOLLERR
)

// engine is the set of pollers, made on first use.
var engine struct {
	once    sync.Once
	pollers []*poller
	next    atomic.Uint32
}

// pickPoller returns the poller for a new pair, or nil when epoll is not
// available.
func pickPoller() *poller {
	engine.once.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			po, err := newPoller()
			if err != nil {
				break
			}
			engine.pollers = append(engine.pollers, po)
		}
	})
	if len(engine.pollers) == 0 {
		return nil
	}
	return engine.pollers[int(engine.next.Add(1))%len(engine.pollers)]
}

// poller is one epoll instance and the goroutine that waits on it. The
// goroutine runs while the poller has pairs, and exits when it has none.
type poller struct {
	epfd         int
	epoll        syscall.RawConn // epfd, as the runtime's poller watches it
	wakeR, wakeW int             // a pipe that wakes the goroutine for requests

	mu      sync.Mutex // guards the fields below
	running bool       // the goroutine runs
	active  int        // pairs registered and not finished
	fresh   []*pair    // pairs to register
	woken   []*pair    // pairs with requests from other goroutines

	// Only the poller's goroutine uses ends, and only it closes a
	// pair's file descriptors, after removing them from epoll and from
	// ends: a file descriptor number the kernel reuses for another
	// connection is never mistaken for a closed one.
	ends map[int32]*endpoint
	// later are pairs that stopped reading a socket that was still
	// readable, for others' sake: they are served after the events.
	later []*pair
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var wake [2]int
	if err := syscall.Pipe2(wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	fail := func(err error) (*poller, error) {
		syscall.Close(epfd)
		syscall.Close(wake[0])
		syscall.Close(wake[1])
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollET, Fd: int32(wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wake[0], &ev); err != nil {
		return fail(err)
	}
	// Non-blocking, so that os.NewFile hands it to the runtime's poller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return fail(err)
	}
	epoll, err := os.NewFile(uintptr(epfd), "relay-epoll").SyscallConn()
	if err != nil {
		return fail(err)
	}
	return &poller{epfd: epfd, epoll: epoll, wakeR: wake[0], wakeW: wake[1], ends: make(map[int32]*endpoint)}, nil
}

// add hands a new pair to the poller.
func (po *poller) add(p *pair) {
	po.mu.Lock()
	defer po.mu.Unlock()
	po.active++
	po.fresh = append(po.fresh, p)
	po.wakeLocked()
}

// wake has the poller serve p's requests.
func (po *poller) wake(p *pair) {
	po.mu.Lock()
	defer po.mu.Unlock()
	po.woken = append(po.woken, p)
	po.wakeLocked()
}

func (po *poller) wakeLocked() {
	if !po.running {
		po.running = true
		go po.loop()
		return
	}
	if len(po.fresh)+len(po.woken) == 1 {
		_, _ = rawsys.Write(po.wakeW, []byte{0})
	}
}

// loop waits for events and serves them until the poller has no pair.
func (po *poller) loop() {
	var (
		events [128]syscall.EpollEvent
		n      int
		err    error
	)
	// poll asks epoll before each wait, never waits first: RawConn.Read
	// forgets a readiness the runtime saw while the events of the last
	// batch were served, so the events that came meanwhile must be
	// asked for. (Made once: a closure per wait would be an allocation.)
	poll := func(fd uintptr) bool {
		n, err = rawsys.EpollPoll(int(fd), events[:])
		return n > 0 || err != nil || len(po.later) > 0
	}
	for po.serveRequests() {
		if rerr := po.epoll.Read(poll); err == nil {
			err = rerr
		}
		if err == syscall.EINTR {
			err = nil
			continue
		}
		if err != nil {
			panic("relay: epoll_wait: " + err.Error())
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(po.wakeR) {
				po.drainWake()
			} else if e := po.ends[ev.Fd]; e != nil {
				e.ready(ev.Events)
			}
		}
		po.serveLater()
	}
}

// again has p served once more after the events at hand.
func (po *poller) again(p *pair) {
	if !p.later {
		p.later = true
		po.later = append(po.later, p)
	}
}

// serveLater serves the pairs that gave up their turn.
func (po *poller) serveLater() {
	later := po.later
	po.later = nil
	for _, p := range later {
		p.later = false
		p.service()
	}
}

// serveRequests registers new pairs and serves the requests other
// goroutines made. It returns false, and the goroutine ends, once the
// poller has no pair left.
func (po *poller) serveRequests() bool {
	for {
		po.mu.Lock()
		fresh, woken := po.fresh, po.woken
		po.fresh, po.woken = nil, nil
		if len(fresh)+len(woken) == 0 {
			po.running = po.active > 0
			running := po.running
			po.mu.Unlock()
			return running
		}
		po.mu.Unlock()
		for _, p := range fresh {
			p.register()
		}
		for _, p := range woken {
			p.serveRequests()
		}
	}
}

func (po *poller) drainWake() {
	var b [64]byte
	for {
		if n, _ := rawsys.Read(po.wakeR, b[:]); n < len(b) {
			return
		}
	}
}

// watch adds e to the poller.
func (po *poller) watch(e *endpoint) error {
	ev := syscall.EpollEvent{Events: pairEvents, Fd: int32(e.fd)}
	if err := rawsys.EpollCtl(po.epfd, syscall.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
		return err
	}
	po.ends[int32(e.fd)] = e
	return nil
}

// release removes e from the poller and closes its file descriptor.
func (po *poller) release(e *endpoint) {
	if e.closed {
		return
	}
	e.closed = true
	if _, ok := po.ends[int32(e.fd)]; ok {
		_ = rawsys.EpollCtl(po.epfd, syscall.EPOLL_CTL_DEL, e.fd, nil)
		delete(po.ends, int32(e.fd))
	}
	_ = syscall.Close(e.fd)
}

// finished tells the poller that one of its pairs ended.
func (po *poller) finished() {
	po.mu.Lock()
	po.active--
	po.mu.Unlock()
}

// startEvented hands client and upstream to the event engine, or reports
// that it cannot take them.
func startEvented(client, upstream *websocket.Conn, opt Options, done func(error)) bool {
	limit := opt.prepare() // its panic comes before anything is taken
	po := pickPoller()
	if po == nil {
		return false
	}
	cfd, ok := takeFD(client)
	if !ok {
		return false
	}
	ufd, ok := takeFD(upstream)
	if !ok {
		syscall.Close(cfd)
		return false
	}
	// The duplicates keep the sockets open; closing gorilla's
	// connections only makes Go's own poller forget them.
	client.Close()
	upstream.Close()
	po.add(newEventPair(po, cfd, ufd, opt, limit, done))
	return true
}

// takeFD duplicates the file descriptor of c's TCP connection, non
// blocking and closed on exec, or reports that c is not plain TCP. (The
// duplicate is taken under the connection's own lock, rather than by
// File, which would make an os.File whose finalizer closes it.)
func takeFD(c *websocket.Conn) (int, bool) {
	tc, ok := tcpConn(c.UnderlyingConn())
	if !ok {
		return -1, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			dupErr = errno
			return
		}
		fd = int(r)
	}); err != nil || dupErr != nil {
		return -1, false
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, false
	}
	return fd, true
}

// writev writes segs to fd in one system call. (A peer gone makes it
// fail with EPIPE: the Go runtime ignores SIGPIPE but on stdout and
// stderr, as it does for net.Conn's writes.)
// writevHook, set by tests before any relay runs, is told of each write
// of the event engine.
var writevHook func()

func writev(fd int, segs [][]byte) (int, error) {
	if writevHook != nil {
		writevHook()
	}
	var iov [maxOut]syscall.Iovec
	for i, s := range segs {
		iov[i].Base = &s[0]
		iov[i].SetLen(len(s))
	}
	return rawsys.Writev(fd, iov[:len(segs)])
}
