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
	"net"
	"time"
)

// Conn is a connection being watched.
type Conn struct {
	conn  net.Conn
	fd    int32
	ready func(*Conn)
	since time.Time
}

// Conn is the connection parked.
func (c *Conn) Conn() net.Conn { return c.conn }

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
