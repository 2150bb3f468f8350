//go:build unix

package h1client

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// open reports whether a kept connection is still open: the server has
// neither closed it nor sent anything (a kept HTTP/1.1 connection gets
// nothing between responses), seen without reading. (A TLS connection
// with a record waiting counts as closed: it costs a new handshake.)
func open(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = errors.Is(err, syscall.EAGAIN)
		return true
	})
	return err == nil && alive
}
