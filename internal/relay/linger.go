package relay

import (
	"errors"
	"io"
	"time"

	"github.com/gorilla/websocket"
)

// LingerMax bounds what Linger reads and throws away from a client that
// keeps sending after its close; past it the connection is closed as is.
const LingerMax = 1 << 20

// HalfClose ends conn's writing side once the close frame has been
// written: the client reads the close frame, then end of stream (FIN).
// Reading goes on until grace has passed, so that whoever reads conn
// sees the client's answering close, or the deadline, and then calls
// Linger (or Close).
func HalfClose(conn *websocket.Conn, grace time.Duration) {
	nc := conn.UnderlyingConn()
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = nc.SetReadDeadline(time.Now().Add(grace))
}

// Linger closes a client's connection as a server that ends a WebSocket
// should (RFC 6455 §7.1.1): after the close frame, it stops writing
// (FIN), reads and throws away what the client still sends until the
// client closes its side too, for at most grace and LingerMax bytes, and
// only then closes. Closing at once with client messages unread makes
// the kernel answer with a reset, and a client that is still writing (a
// page in the middle of a burst) then loses the close frame it had not
// read yet, and with it the code and the reason: a browser reports 1006,
// and the page cannot tell a rate limit (wait, then retry) from a worker
// that went away.
//
// readErr is the error that ended the reading of conn: once it is the
// client's own close frame the closing handshake is done, nothing more
// may follow, and conn is closed at once. Linger must not run while
// another goroutine reads conn.
func Linger(conn *websocket.Conn, readErr error, grace time.Duration) {
	var ce *websocket.CloseError
	if errors.As(readErr, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		_ = conn.Close()
		return
	}
	HalfClose(conn, grace)
	Drain(conn, nil)
}

// Drain ends a connection HalfClose began to close, once its reader
// stopped with readErr: at once when that was the client's close frame
// (see Linger), otherwise after reading and throwing away what the
// client still sends, until the deadline HalfClose set.
func Drain(conn *websocket.Conn, readErr error) {
	var ce *websocket.CloseError
	if !errors.As(readErr, &ce) || ce.Code == websocket.CloseAbnormalClosure {
		_, _ = io.CopyN(io.Discard, conn.UnderlyingConn(), LingerMax)
	}
	_ = conn.Close()
}
