package socketioproxy

import (
	"errors"

	"github.com/flaskedge/flaskedge/internal/socketio"
)

// attachments follows a stream of Socket.IO messages as its reader does:
// after a BINARY_EVENT or BINARY_ACK announcing n attachments,
// python-socketio (and socket.io-client) take the next n Engine.IO
// messages, whatever they hold, text included, as its attachments. So a
// DISCONNECT the edge sends into the stream may be swallowed as one, and
// the edge must know whether one is awaited before it sends any (it then
// ends the session instead). pending counts the attachments still to
// come of a packet passed on; drop those of a packet the edge replaced,
// which it must not pass on either.
//
// The count is the edge's best knowledge, not a gate: the edge still
// checks every text message as a packet, attachment or not, so a count
// that strays from python's (a body python drops whole, an attachment
// sent through another edge) never lets a packet through unchecked.
type attachments struct {
	pending, drop int64
}

// counts reports whether python-socketio sees the Engine.IO message p at
// all: a message ('4') or a binary one ("b" record, or binary frame when
// binary); Engine.IO's own packets (ping, pong, noop, upgrade) never
// reach it, nor count as attachments.
func counts(p []byte, binary bool) bool {
	return binary || len(p) > 0 && (p[0] == '4' || p[0] == 'b')
}

// next says whether the next message python-socketio sees is to be
// dropped, or is an attachment python awaits (which then must not start
// a count of its own, whatever it holds), and takes it off the count.
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
	if !awaitsAttachments(pkt) {
		return
	}
	if replaced {
		a.drop = pkt.Attachments
	} else {
		a.pending = pkt.Attachments
	}
}

// awaitsAttachments reports whether python-socketio waits for attachments
// after pkt.
func awaitsAttachments(pkt socketio.Packet) bool {
	return pkt.Kind == socketio.Message && pkt.Attachments > 0 &&
		(pkt.Type == socketio.BinaryEvent || pkt.Type == socketio.BinaryAck)
}

// errNoAttachments refuses a BINARY_EVENT or BINARY_ACK announcing no
// attachment: python-socketio would wait for attachments anyway and take
// every later message of the session, the edge's own included, as one.
var errNoAttachments = errors.New("a binary packet that announces no attachment")
