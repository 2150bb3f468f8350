package socketioproxy

import (
	"github.com/flaskedge/flaskedge/internal/socketio"
)

// attachments follows a stream of Socket.IO messages as its reader does:
// after a BINARY_EVENT or BINARY_ACK announcing n attachments,
// python-socketio (and socket.io-client) take the next n messages,
// whatever they hold, text included, as its attachments. So a message
// the edge would read as a DISCONNECT may be an attachment to the
// worker, and a DISCONNECT the edge sends into the stream may be
// swallowed as one. pending counts the attachments still to come of a
// packet passed on; drop those of a packet the edge replaced, which it
// must not pass on either.
type attachments struct {
	pending, drop int64
}

// next says what the next message is: one to drop, an attachment to pass
// on untouched, or (both false) a packet to read.
func (a *attachments) next() (drop, attachment bool) {
	switch {
	case a.drop > 0:
		a.drop--
		return true, false
	case a.pending > 0:
		a.pending--
		return false, true
	}
	return false, false
}

// read records a packet read from the stream; replaced says the edge did
// not pass it on as it was.
func (a *attachments) read(pkt socketio.Packet, replaced bool) {
	if pkt.Kind != socketio.Message || pkt.Attachments <= 0 ||
		pkt.Type != socketio.BinaryEvent && pkt.Type != socketio.BinaryAck {
		return
	}
	if replaced {
		a.drop = pkt.Attachments
	} else {
		a.pending = pkt.Attachments
	}
}

// workerAttachments is the attachment count of a worker's BINARY_EVENT
// or BINARY_ACK, canonical ("451-/admin,[...]"); 0 for any other packet.
func workerAttachments(p []byte) int64 {
	if len(p) < 3 || p[0] != '4' || p[1] != '5' && p[1] != '6' {
		return 0
	}
	var n int64
	for _, c := range p[2:] {
		if c == '-' {
			return n
		}
		if c < '0' || c > '9' || n > 1<<40 {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return 0
}
