// Package park holds idle client connections without a goroutine and
// without a buffer: a parked connection is watched by an epoll instance
// until its client sends something (or hangs up), and only then handed
// back to a goroutine to be served.
//
// A kept-alive HTTP/1.1 connection served by net/http holds a goroutine
// and 8 KiB of buffers between requests. A Socket.IO long-polling client
// keeps one such connection open for its POSTs, idle between messages;
// parked, it costs its file descriptor and a few hundred bytes.
package park

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// ErrWake is the error of a connection that could not be made again on
// the socket of a sleeping one, which is then closed: the process is out
// of file descriptors, most likely. It is the edge's failure, not the
// peer's.
var ErrWake = errors.New("park: a sleeping connection could not be woken")

// Conn is a connection being watched.
type Conn struct {
	conn net.Conn
	fd   int32
	// seq tells this parking's events from a stale one for the same
	// descriptor number (see loop).
	seq   int32
	ready func(*Conn)
	since time.Time
	// hold: the connection may be put to sleep while it waits (Hold).
	hold bool
	// mu guards conn and sock once c is handed back: its owner and
	// ready may both ask for the connection.
	mu sync.Mutex
	// sock, when not -1, is the socket of a connection put to sleep: a
	// duplicate of its descriptor, the connection itself closed (see
	// hibernate).
	sock int32
}

// Conn is the connection parked, once it is handed back (to ready, or
// by Unpark). A connection put to sleep while it waited (see Hold) is
// woken here: a new net.Conn on the same socket; when that fails (the
// process is out of descriptors), a connection whose every read and
// write fails.
func (c *Conn) Conn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sock >= 0 {
		c.conn = wake(c)
	}
	return c.conn
}

// Close closes the connection handed back, without waking it when it
// sleeps.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sock >= 0 {
		return closeSleeping(c)
	}
	return c.conn.Close()
}

// Since is when c was parked.
func (c *Conn) Since() time.Time { return c.since }

// tcpOf returns the TCP connection whose socket is watched for c: c
// itself, or the one beneath a TLS connection. (A TLS connection may
// hold decrypted bytes its socket no longer announces: whoever parks one
// must know it holds none.)
func tcpOf(c net.Conn) (*net.TCPConn, bool) {
	switch c := c.(type) {
	case *net.TCPConn:
		return c, true
	case *tls.Conn:
		tc, ok := c.NetConn().(*net.TCPConn)
		return tc, ok
	}
	return nil, false
}
