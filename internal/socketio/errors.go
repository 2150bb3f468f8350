package socketio

import (
	"errors"
	"fmt"
)

// The two reasons Read refuses a packet. Every error Read returns wraps
// exactly one of them.
var (
	// ErrMalformed is a packet python-socketio drops as well: decoding or
	// dispatching it raises before any handler runs.
	ErrMalformed = errors.New("socketio: malformed packet")
	// ErrAmbiguous is a packet python-socketio may act on in a way Read
	// does not reproduce; the edge must refuse it rather than guess.
	ErrAmbiguous = errors.New("socketio: packet the backend may read differently")
)

// Packets python-socketio drops.
var (
	ErrEmptyPacket        = fmt.Errorf("%w: empty Engine.IO packet", ErrMalformed)
	ErrEngineIOType       = fmt.Errorf("%w: Engine.IO packet type is not a digit", ErrMalformed)
	ErrEmptyMessage       = fmt.Errorf("%w: Engine.IO message without a Socket.IO packet", ErrMalformed)
	ErrPacketType         = fmt.Errorf("%w: Socket.IO packet type is not a digit", ErrMalformed)
	ErrUnknownType        = fmt.Errorf("%w: Socket.IO packet type above 6", ErrMalformed)
	ErrTooManyAttachments = fmt.Errorf("%w: attachment count longer than 10 digits", ErrMalformed)
	ErrIDTooLong          = fmt.Errorf("%w: ack id longer than 100 digits", ErrMalformed)
)

// Packets python-socketio may act on in ways Read does not follow.
var (
	// ErrJSONMessage is a message python-engineio decodes as JSON before
	// python-socketio sees it: a JSON string (which then holds any packet,
	// `4"0/admin,"` connects to /admin), JSON with leading whitespace, or
	// a number with a fraction or exponent (`41.0` disconnects from /).
	ErrJSONMessage = fmt.Errorf("%w: message python-engineio decodes as JSON", ErrAmbiguous)
	// ErrUnicodeDigit is a non-ASCII character where python reads a digit
	// with int() or isdigit(), which accept any Unicode digit ("4٠/admin,"
	// connects to /admin).
	ErrUnicodeDigit = fmt.Errorf("%w: non-ASCII character where python accepts any Unicode digit", ErrAmbiguous)
	// ErrNamespaceUTF8 is a namespace that is not valid UTF-8, so it has
	// no exact Python counterpart.
	ErrNamespaceUTF8 = fmt.Errorf("%w: namespace is not valid UTF-8", ErrAmbiguous)
	// ErrJSONP is a packet starting with "d=": at the start of a polling
	// body python-engineio reads the whole body as a percent-encoded JSONP
	// form ("d=40%2Fadmin%2C" connects to /admin).
	ErrJSONP = fmt.Errorf("%w: polling body in JSONP form", ErrAmbiguous)
)
