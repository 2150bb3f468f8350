package socketio

import (
	"bytes"
	"unicode/utf8"
)

// Type is a Socket.IO packet type.
type Type uint8

// The packet types of Socket.IO v5.
const (
	Connect Type = iota
	Disconnect
	Event
	Ack
	ConnectError
	BinaryEvent
	BinaryAck
)

var typeNames = [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}

// String is the type's name in the specification, e.g. "CONNECT".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "UNKNOWN"
}

// Kind is what an Engine.IO packet is to python-socketio.
type Kind uint8

const (
	// Control is an Engine.IO packet other than a message (open, close,
	// ping, pong, upgrade, noop, or a type python-engineio ignores):
	// python-socketio never sees it.
	Control Kind = iota
	// Attachment is a binary message: a WebSocket binary frame or a
	// polling "b" record. python-socketio only ever takes it as an
	// attachment of a pending BINARY_EVENT or BINARY_ACK (whose namespace
	// the edge saw in that packet); it never decodes one as a packet.
	Attachment
	// Message is a text message carrying a Socket.IO packet.
	Message
)

// Packet is what python-socketio makes of one Engine.IO packet. All
// fields but Kind are set for a Message only. The slices alias the packet
// passed to Read.
type Packet struct {
	Kind Kind
	Type Type
	// Namespace is the namespace python-socketio attributes the packet
	// to: it begins with '/' and is "/" when the packet names none. For a
	// CONNECT it is the namespace _handle_connect is asked for.
	Namespace []byte
	// Attachments is the count of a "<n>-" prefix. python reads one on
	// every type but waits for attachments only after BINARY_EVENT and
	// BINARY_ACK; with a count of 0 it then takes every later message of
	// the session as an unexpected attachment and drops it.
	Attachments int64
	// ID is the ack id as sent (ASCII digits), nil when there is none.
	ID []byte
	// Data is the JSON that follows, as sent. Read does not check it;
	// python-socketio drops the packet if json.loads fails.
	Data []byte
}

var rootNamespace = []byte{'/'}

// Read tells what python-socketio will make of one Engine.IO packet from
// a client: p is a polling record (see engineio.Packets) or a WebSocket
// frame, starting with the Engine.IO type, and binary is true for a
// WebSocket binary frame. It allocates nothing.
//
// An error means the edge must refuse the packet; it wraps ErrMalformed
// (python drops it too) or ErrAmbiguous (python may act on it in a way
// Read does not reproduce). Otherwise, for a Message, Type and Namespace
// are exactly python's: in particular, any packet python would hand to
// _handle_connect is reported as a Connect to the same namespace.
func Read(p []byte, binary bool) (Packet, error) {
	if binary {
		return Packet{Kind: Attachment}, nil
	}
	if len(p) == 0 {
		return Packet{}, ErrEmptyPacket
	}
	switch c := p[0]; {
	case c == '4':
	case c == 'b':
		// python-engineio decodes a text packet starting with 'b' as
		// base64 binary, on WebSocket as on polling.
		return Packet{Kind: Attachment}, nil
	case isDigit(c):
		return Packet{Kind: Control}, nil
	case c == 'd' && len(p) > 1 && p[1] == '=':
		return Packet{}, ErrJSONP
	case c >= utf8.RuneSelf:
		// int() of a Unicode digit four makes it a message.
		return Packet{}, ErrUnicodeDigit
	default:
		return Packet{}, ErrEngineIOType
	}
	return readSocketIO(p[1:])
}

// readSocketIO follows socketio/packet.py Packet.decode (lines 75-115)
// on the text python-engineio hands over for a message.
func readSocketIO(ep []byte) (Packet, error) {
	if len(ep) == 0 {
		// Packet('') skips decoding, leaving an EVENT without data that
		// _handle_event fails on.
		return Packet{}, ErrEmptyMessage
	}
	switch c := ep[0]; {
	case isDigit(c):
		if isJSONFloat(ep) {
			return Packet{}, ErrJSONMessage
		}
	case c == '"' || isJSONSpace(c):
		return Packet{}, ErrJSONMessage
	case c >= utf8.RuneSelf:
		return Packet{}, ErrUnicodeDigit
	default:
		// Everything else python-engineio hands over either as text,
		// which int() refuses, or as a JSON value python-socketio
		// cannot use as a type (null, true, false, NaN, lists, objects,
		// negative numbers).
		return Packet{}, ErrPacketType
	}
	pkt := Packet{Kind: Message, Type: Type(ep[0] - '0'), Namespace: rootNamespace[:1:1]}
	if pkt.Type > BinaryAck {
		return Packet{}, ErrUnknownType
	}
	ep = ep[1:]

	// Attachment count: ep[0:dash].isdigit() where dash is the first '-'.
	i := digits(ep)
	if i < len(ep) && ep[i] >= utf8.RuneSelf {
		return Packet{}, ErrUnicodeDigit
	}
	if i > 0 && i < len(ep) && ep[i] == '-' {
		if i > 10 {
			return Packet{}, ErrTooManyAttachments
		}
		for _, c := range ep[:i] {
			pkt.Attachments = pkt.Attachments*10 + int64(c-'0')
		}
		ep = ep[i+1:]
	}

	// Namespace: from '/' to the first ',' in the rest of the packet, or
	// to its end; cut at the first '?'.
	if len(ep) > 0 && ep[0] == '/' {
		ns := ep
		ep = nil
		if sep := bytes.IndexByte(ns, ','); sep >= 0 {
			ns, ep = ns[:sep], ns[sep+1:]
		}
		if q := bytes.IndexByte(ns, '?'); q >= 0 {
			ns = ns[:q]
		}
		if !utf8.Valid(ns) {
			return Packet{}, ErrNamespaceUTF8
		}
		pkt.Namespace = ns
	}

	// Ack id: up to 100 digits; a 101st raises.
	if len(ep) > 0 {
		if ep[0] >= utf8.RuneSelf {
			return Packet{}, ErrUnicodeDigit
		}
		if i := digits(ep); i > 0 {
			if i > 100 {
				return Packet{}, ErrIDTooLong
			}
			if i < len(ep) && ep[i] >= utf8.RuneSelf {
				return Packet{}, ErrUnicodeDigit
			}
			pkt.ID, ep = ep[:i], ep[i:]
		}
	}
	if len(ep) > 0 {
		pkt.Data = ep
	}
	return pkt, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isJSONSpace is the whitespace Python's json module skips.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func digits(b []byte) int {
	i := 0
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// isJSONFloat reports whether json.loads(b) is a float: a JSON number
// with a fraction or an exponent and nothing after it but whitespace.
// python-engineio keeps such a message as a float instead of text (it
// gives integers back as text), which python-socketio then compares with
// the packet types: 1.0 is a DISCONNECT. b starts with a digit.
func isJSONFloat(b []byte) bool {
	i := 1
	if b[0] != '0' {
		i = digits(b)
	}
	float := false
	if i+1 < len(b) && b[i] == '.' && isDigit(b[i+1]) {
		i += 1 + digits(b[i+1:])
		float = true
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		j := i + 1
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if n := digits(b[j:]); n > 0 {
			i = j + n
			float = true
		}
	}
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return float && i == len(b)
}

// ReadHead tells from the first bytes of a longer message what Read will
// make of the whole, when those bytes suffice: decided is true only if
// Read returns, for every message that begins with head, no error and
// the same Kind, Type, Namespace, Attachments and ID as it returns here.
// That holds for Engine.IO control packets, binary records, and Socket.IO
// packets whose header ends inside head and whose data then begins with
// '[' or '{' (nothing after the header changes how python-socketio reads
// it, and such data keeps python-engineio from taking the message for a
// JSON number). The returned Data is cut at the end of head.
//
// A relay peeks at a few bytes of every message and reads whole only the
// undecided ones, which are rare in real traffic, so it can refuse every
// packet Read refuses without buffering the common one.
func ReadHead(head []byte) (pkt Packet, decided bool) {
	if len(head) == 0 {
		return Packet{}, false
	}
	switch c := head[0]; {
	case c == 'b':
		return Packet{Kind: Attachment}, true
	case c != '4' && isDigit(c):
		return Packet{Kind: Control}, true
	}
	pkt, err := Read(head, false)
	if err != nil || pkt.Kind != Message || len(pkt.Data) == 0 || (pkt.Data[0] != '[' && pkt.Data[0] != '{') {
		return Packet{}, false
	}
	return pkt, true
}
