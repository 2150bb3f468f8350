//go:build linux

package park

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flaskedge/flaskedge/internal/rawsys"
)

// The watcher is one epoll instance, made on first use, and a goroutine
// that waits on it while connections are parked. The goroutine does not
// block its thread in epoll_wait: the epoll descriptor is itself watched
// by the Go runtime's network poller (it is readable while it has
// events), so the goroutine parks as any goroutine reading a socket does.
var watcher struct {
	once  sync.Once
	epfd  int
	epoll syscall.RawConn
	wake  int // an eventfd that ends the goroutine's wait
	err   error

	mu       sync.Mutex
	running  bool
	conns    map[int32]*Conn
	sweeping bool // a sweep for connections to put to sleep is due (see Hold)
	// seq numbers the parkings: an event carries its parking's number.
	seq int32
	// held are the held connections not yet asleep, oldest first, and
	// some no longer parked, dropped as the sweep meets them: a sweep
	// looks at the connections due and stops at the first that is not,
	// where a look at every parked connection, asleep ones included,
	// would cost a sweep per SleepAfter in proportion to all of them.
	held []*Conn
}

// One-shot: a connection is reported once, then forgotten; level
// triggered, so bytes that arrived before it was watched are reported.
const events = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func setup() {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		watcher.err = err
		return
	}
	wake, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(epfd)
		watcher.err = errno
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wake)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(wake), &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(int(wake))
		watcher.err = err
		return
	}
	// Non-blocking, so that os.NewFile hands it to the runtime's poller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		syscall.Close(int(wake))
		watcher.err = err
		return
	}
	rc, err := os.NewFile(uintptr(epfd), "park-epoll").SyscallConn()
	if err != nil {
		watcher.err = err
		return
	}
	watcher.epfd, watcher.epoll, watcher.wake = epfd, rc, int(wake)
	watcher.conns = make(map[int32]*Conn)
}

// Park watches conn until it is readable (its client sent bytes, a FIN
// or a reset), then calls ready(c) once, on a goroutine of its own (a
// worker's: see dispatch).
// Until then conn is the watcher's: nothing else may use or close it but
// through Unpark. Park reports false, having done nothing, when conn is
// neither TCP nor TLS over TCP, or epoll is not available.
func Park(conn net.Conn, ready func(*Conn)) (*Conn, bool) {
	return park(conn, ready, false)
}

// Hold is Park for a connection that may wait long (a kept-alive
// connection between requests, a long-poll's): once it has waited
// SleepAfter, a plain TCP connection is put to sleep. Its socket stays
// open and watched, but the connection itself is closed: the Go
// runtime's state of it (its poller descriptor, about 540 bytes outside
// the heap, and 350 of heap) is let go, and a new net.Conn is made on
// the socket when the connection is handed back. So once Hold returns
// true, the caller must not use conn again but through c.Conn (or
// c.Close), once ready is called or Unpark reports true.
func Hold(conn net.Conn, ready func(*Conn)) (*Conn, bool) {
	_, plain := conn.(*net.TCPConn)
	return park(conn, ready, plain)
}

// SleepAfter is how long a held connection waits awake (a sweep puts it
// to sleep between one and two SleepAfter): one that is busy (a client
// sending every few milliseconds) never pays for the sleep and the
// waking, an idle one (a long-poll waiting for its ping) costs its
// socket and a hundred bytes. A quarter of a second, not more: what the
// runtime takes for a connection outside the heap it keeps for good, so
// the most connections ever awake at once set the edge's size. Sessions
// opened all at once (a reconnect storm; the bench's 2,000 polling
// sessions) left 1.2 KB each there with a second, 0.5 KB with a quarter,
// and 5.9 KB of RSS each in all instead of 7.1 to 8.2. A session sending
// every 400 ms, which then sleeps and wakes between its messages, cost
// 2.5% more CPU per message (449 µs against 438).
const SleepAfter = 250 * time.Millisecond

func park(conn net.Conn, ready func(*Conn), hold bool) (*Conn, bool) {
	tc, ok := tcpOf(conn)
	if !ok {
		return nil, false
	}
	watcher.once.Do(setup)
	if watcher.err != nil {
		return nil, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, false
	}
	c := &Conn{conn: conn, fd: -1, ready: ready, since: time.Now(), hold: hold, sock: -1}
	var ctlErr error
	// The descriptor is registered as it is, not duplicated: it stays
	// open while the connection is parked (only Unpark's caller or
	// ready may close it, after the registration is disarmed), so its
	// number names it alone. Its registration outlives the wait,
	// disarmed (one-shot), and is armed again by the connection's next
	// Park: one epoll_ctl per wait, not two. Closing the connection
	// removes it. c is known before it is armed, so that its event
	// finds it.
	if err := rc.Control(func(fd uintptr) {
		watcher.mu.Lock()
		c.fd = int32(fd)
		watcher.seq++
		c.seq = watcher.seq
		watcher.conns[c.fd] = c
		if !watcher.running {
			watcher.running = true
			go loop()
		}
		if hold {
			watcher.held = append(watcher.held, c)
			if !watcher.sweeping {
				watcher.sweeping = true
				time.AfterFunc(SleepAfter, sleepSweep)
			}
		}
		watcher.mu.Unlock()
		ev := syscall.EpollEvent{Events: events, Fd: int32(fd), Pad: c.seq}
		ctlErr = rawsys.EpollCtl(watcher.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if ctlErr == syscall.ENOENT {
			ctlErr = rawsys.EpollCtl(watcher.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	}); err != nil || ctlErr != nil {
		if c.fd >= 0 {
			c.Unpark()
		}
		return nil, false
	}
	return c, true
}

// Unpark stops watching c and hands it back to the caller, who then
// owns it (to close it, say). It reports false when c has already been
// handed to ready, or unparked.
func (c *Conn) Unpark() bool {
	watcher.mu.Lock()
	fd := c.fd
	if !c.forgetLocked() {
		watcher.mu.Unlock()
		return false
	}
	empty := len(watcher.conns) == 0
	watcher.mu.Unlock()
	// Disarmed, not removed: the next Park arms it again. (A hang-up
	// may still be reported once, for no parked connection: ignored.)
	ev := syscall.EpollEvent{Events: syscall.EPOLLONESHOT, Fd: fd}
	_ = rawsys.EpollCtl(watcher.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
	if empty {
		// Nothing is left to wait for: the goroutine ends.
		one := [8]byte{1}
		_, _ = rawsys.Write(watcher.wake, one[:])
	}
	return true
}

// forgetLocked removes c from the watcher, once. Its registration is
// left disarmed: by its one-shot event, or by Unpark.
func (c *Conn) forgetLocked() bool {
	if c.fd < 0 || watcher.conns[c.fd] != c {
		return false
	}
	delete(watcher.conns, c.fd)
	c.fd = -1
	return true
}

// Parked is how many connections are watched.
func Parked() int {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	return len(watcher.conns)
}

// loop serves the watcher's events until no connection is parked.
func loop() {
	var (
		evs [64]syscall.EpollEvent
		n   int
		err error
	)
	// poll asks epoll before each wait, never waits first (made once:
	// a closure per wait would be an allocation).
	poll := func(fd uintptr) bool {
		n, err = rawsys.EpollPoll(int(fd), evs[:])
		return n > 0 || err != nil
	}
	for {
		watcher.mu.Lock()
		if len(watcher.conns) == 0 {
			watcher.running = false
			watcher.mu.Unlock()
			return
		}
		watcher.mu.Unlock()
		if rerr := watcher.epoll.Read(poll); err == nil {
			err = rerr
		}
		if err == syscall.EINTR {
			err = nil
			continue
		}
		if err != nil {
			panic("park: epoll_wait: " + err.Error())
		}
		var due []*Conn
		watcher.mu.Lock()
		for _, ev := range evs[:n] {
			if ev.Fd == int32(watcher.wake) {
				var b [8]byte
				_, _ = rawsys.Read(watcher.wake, b[:])
				continue
			}
			// An event read before the lock may be stale: its
			// connection put to sleep meanwhile, its descriptor
			// closed, and the number given to another connection,
			// parked since. Its parking's number tells.
			if c := watcher.conns[ev.Fd]; c != nil && c.seq == ev.Pad && c.forgetLocked() {
				due = append(due, c)
			}
		}
		watcher.mu.Unlock()
		for _, c := range due {
			dispatch(c)
		}
	}
}

// sleepSweep puts to sleep the held connections that have waited
// SleepAfter, and comes again while others wait.
func sleepSweep() {
	sweeps.Add(1)
	now := time.Now()
	var due []*Conn
	watcher.mu.Lock()
	held := watcher.held
	i := 0
	for ; i < len(held); i++ {
		c := held[i]
		if c.hold && c.sock < 0 && c.fd >= 0 && watcher.conns[c.fd] == c {
			if now.Sub(c.since) < SleepAfter {
				break // and so are the younger ones behind it
			}
			due = append(due, c)
		}
		held[i] = nil
	}
	if watcher.held = held[i:]; len(watcher.held) == 0 {
		watcher.held = nil
	}
	if len(watcher.held) > 0 {
		time.AfterFunc(SleepAfter, sleepSweep)
	} else {
		watcher.sweeping = false
	}
	watcher.mu.Unlock()
	// One at a time: three system calls each, which Park and Unpark
	// do not wait for all together.
	for _, c := range due {
		watcher.mu.Lock()
		var old net.Conn
		if c.fd >= 0 && watcher.conns[c.fd] == c && c.sock < 0 {
			old = sleep(c)
		}
		watcher.mu.Unlock()
		if old != nil {
			old.Close()
		}
	}
}

// sleep puts parked c to sleep (under watcher.mu): its socket is
// registered again under a duplicate descriptor, armed, and its
// connection is returned, for the caller to close. It returns nil when
// c stays as it is; then it is not tried again.
func sleep(c *Conn) net.Conn {
	c.hold = false
	tc, ok := c.conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	dup := -1
	if err := rc.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno == 0 {
			dup = int(r)
		}
	}); err != nil || dup < 0 {
		return nil
	}
	// Added armed before the original goes: level triggered, the new
	// registration reports bytes that came meanwhile.
	ev := syscall.EpollEvent{Events: events, Fd: int32(dup), Pad: c.seq}
	if err := rawsys.EpollCtl(watcher.epfd, syscall.EPOLL_CTL_ADD, dup, &ev); err != nil {
		syscall.Close(dup)
		return nil
	}
	// The original's registration is removed, not left disarmed: the
	// socket outlives its descriptor, and with it the registration,
	// which would fire for a socket the number no longer names.
	_ = rawsys.EpollCtl(watcher.epfd, syscall.EPOLL_CTL_DEL, int(c.fd), nil)
	delete(watcher.conns, c.fd)
	c.fd = int32(dup)
	watcher.conns[c.fd] = c
	c.mu.Lock()
	old := c.conn
	c.conn, c.sock = nil, int32(dup)
	c.mu.Unlock()
	sleeping.Add(1)
	return old
}

// sleeping counts the connections asleep; sweeps, the sweeps run.
var sleeping, sweeps atomic.Int64

// Sleeping is how many parked connections are asleep (see Hold).
func Sleeping() int { return int(sleeping.Load()) }

// wake makes a connection again on the socket of c, handed back asleep
// (under c.mu).
func wake(c *Conn) net.Conn {
	sock := int(c.sock)
	c.sock = -1
	sleeping.Add(-1)
	// Its registration goes before its descriptor (see sleep).
	_ = rawsys.EpollCtl(watcher.epfd, syscall.EPOLL_CTL_DEL, sock, nil)
	f := os.NewFile(uintptr(sock), "")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return failedConn{fmt.Errorf("%w: %w", ErrWake, err)}
	}
	if conn.RemoteAddr() == nil || conn.LocalAddr() == nil {
		// Reset by its client as it woke: the socket no longer has a
		// peer (getpeername: ENOTCONN), and a connection without an
		// address is one nobody expects.
		conn.Close()
		return failedConn{syscall.ECONNRESET}
	}
	return conn
}

// closeSleeping closes the socket of c, handed back asleep (under c.mu).
func closeSleeping(c *Conn) error {
	sock := int(c.sock)
	c.sock = -1
	c.conn = failedConn{net.ErrClosed}
	sleeping.Add(-1)
	_ = rawsys.EpollCtl(watcher.epfd, syscall.EPOLL_CTL_DEL, sock, nil)
	return syscall.Close(sock)
}

// WakeErr is the error a connection handed back by Conn fails with when
// it could not be woken (ErrWake, or the reset that ended it as it
// woke); nil for any other connection.
func WakeErr(conn net.Conn) error {
	if f, ok := conn.(failedConn); ok && !errors.Is(f.err, net.ErrClosed) {
		return f.err
	}
	return nil
}

// failedConn is a connection that could not be woken.
type failedConn struct{ err error }

func (f failedConn) Read([]byte) (int, error)         { return 0, f.err }
func (f failedConn) Write([]byte) (int, error)        { return 0, f.err }
func (f failedConn) Close() error                     { return nil }
func (f failedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f failedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f failedConn) SetDeadline(time.Time) error      { return nil }
func (f failedConn) SetReadDeadline(time.Time) error  { return nil }
func (f failedConn) SetWriteDeadline(time.Time) error { return nil }

// HungUp reports whether conn's client has closed or reset its end, seen
// without reading: bytes waiting (a next request) are no hang-up.
func HungUp(conn net.Conn) bool {
	tc, ok := tcpOf(conn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, err := rawsys.Peek(int(fd), b[:])
		gone = err == nil && n == 0 || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
	})
	return gone
}
