package socketioproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"

	"github.com/gorilla/websocket"
)

// maxRecorded bounds the bytes a worker connection records: a 101 reply
// and an open packet fit many times over; past it the connection is not
// handed to the event-driven relay.
const maxRecorded = 8 << 10

// recordingConn is a worker connection that keeps the bytes read from it
// until the relay starts, so that the edge can tell whether gorilla still
// holds bytes it read ahead (see unreadBytes). The event-driven relay
// takes the socket over from gorilla only when it holds none: those bytes
// would be lost.
type recordingConn struct {
	*net.TCPConn
	rec  []byte
	over bool // more than maxRecorded was read
	done bool // recording stopped
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if !c.done && n > 0 {
		if len(c.rec)+n > maxRecorded {
			c.over, c.rec = true, nil
		} else if !c.over {
			c.rec = append(c.rec, p[:n]...)
		}
	}
	return n, err
}

// RelayTCPConn gives the event-driven relay the socket beneath, once
// unreadBytes said that nothing was read ahead.
func (c *recordingConn) RelayTCPConn() *net.TCPConn { return c.TCPConn }

// recordingDial dials as dial does and records what a plain TCP
// connection reads; other connections are returned as they are.
func recordingDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if tcp, ok := conn.(*net.TCPConn); ok && err == nil {
			return &recordingConn{TCPConn: tcp}, nil
		}
		return conn, err
	}
}

// unreadBytes reports whether gorilla may hold bytes of the worker's
// connection that the edge has not read yet, and stops the recording.
// What the edge has read is the 101 reply, then, when opened, one frame:
// the open packet. Anything else recorded, a reply it cannot parse, or a
// connection that did not record (TLS) counts as unread bytes.
func unreadBytes(conn *websocket.Conn, opened bool) bool {
	rc := stopRecording(conn)
	if rc == nil {
		return true
	}
	rec, over := rc.rec, rc.over
	rc.rec = nil
	if over {
		return true
	}
	end := bytes.Index(rec, []byte("\r\n\r\n"))
	if end < 0 {
		return true
	}
	used := end + 4
	if opened {
		n, ok := frameLen(rec[used:])
		if !ok {
			return true
		}
		used += n
	}
	return used != len(rec)
}

// stopRecording ends the recording of conn's worker connection, and
// returns it; nil when conn does not record.
func stopRecording(conn *websocket.Conn) *recordingConn {
	rc, ok := conn.UnderlyingConn().(*recordingConn)
	if !ok {
		return nil
	}
	rc.done = true
	return rc
}

// frameLen is the length of the unmasked WebSocket frame at the start of
// b, header included; false when b does not start with a whole one.
func frameLen(b []byte) (int, bool) {
	if len(b) < 2 || b[1]&0x80 != 0 {
		return 0, false
	}
	head, n := 2, uint64(b[1]&0x7f)
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, false
		}
		head, n = 4, uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return 0, false
		}
		head, n = 10, binary.BigEndian.Uint64(b[2:])
	}
	if n > uint64(len(b)-head) {
		return 0, false
	}
	return head + int(n), true
}
