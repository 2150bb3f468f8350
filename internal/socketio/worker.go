package socketio

import "bytes"

// Head is the start of a Socket.IO packet a worker sent: what the edge
// needs to follow a session (its namespaces, the attachments that come
// after a binary packet) without reading the data.
type Head struct {
	Type Type
	// Namespace is the packet's namespace, "/" when it names none. It
	// aliases the message passed to ReadWorker.
	Namespace []byte
	// Attachments is the count a BINARY_EVENT or BINARY_ACK announces;
	// 0 for every other type.
	Attachments int64
}

// CarriesData reports whether the packet carries the namespace's data to
// the client: EVENT, ACK and their binary forms.
func (h Head) CarriesData() bool {
	return h.Type == Event || h.Type == Ack || h.Type == BinaryEvent || h.Type == BinaryAck
}

// maxAttachments bounds an attachment count the edge believes; a worker
// never sends one near it.
const maxAttachments = 1 << 40

// ReadWorker reads the head of an Engine.IO message a python-socketio
// worker sent, in the one form socketio/packet.py Packet.encode writes:
// "4", the type digit, "<n>-" for a binary type, then "<namespace>," unless
// the namespace is "/" ("42/admin,[...]", "451-/admin,[...]", "43[...]").
// whole says p is the entire message; otherwise it is the first bytes of
// one, and a namespace must end (at its comma) within them. ok is false
// when p is not a Socket.IO message in that form, or its head does not
// end within p. It allocates nothing.
//
// Only the worker's messages may be read so: a client's are read with
// Read, as python-socketio reads them.
func ReadWorker(p []byte, whole bool) (h Head, ok bool) {
	if len(p) < 2 || p[0] != '4' || p[1] < '0' || p[1] > '6' {
		return Head{}, false
	}
	h.Type = Type(p[1] - '0')
	rest := p[2:]
	if h.Type == BinaryEvent || h.Type == BinaryAck {
		i := bytes.IndexByte(rest, '-')
		if i <= 0 {
			return Head{}, false
		}
		for _, c := range rest[:i] {
			if !isDigit(c) || h.Attachments > maxAttachments {
				return Head{}, false
			}
			h.Attachments = h.Attachments*10 + int64(c-'0')
		}
		rest = rest[i+1:]
	}
	if len(rest) == 0 && !whole {
		// A namespace may follow.
		return Head{}, false
	}
	if len(rest) == 0 || rest[0] != '/' {
		h.Namespace = rootNamespace
		return h, true
	}
	end := bytes.IndexByte(rest, ',')
	switch {
	case end >= 0:
		h.Namespace = rest[:end]
	case whole:
		h.Namespace = rest
	default:
		return Head{}, false
	}
	return h, true
}

// WorkerType reads only the Socket.IO type of a worker's message from its
// first two bytes; ok is false when it is no Socket.IO message.
func WorkerType(p []byte) (t Type, ok bool) {
	if len(p) < 2 || p[0] != '4' || p[1] < '0' || p[1] > '6' {
		return 0, false
	}
	return Type(p[1] - '0'), true
}

// NamespaceRunsOn reports whether head, the first bytes of a worker's
// message, is a CONNECT reply or a DISCONNECT whose namespace has begun
// but not ended within head: a reader that keeps a bounded head must
// read on to the namespace's comma to know which namespace it is.
func NamespaceRunsOn(head []byte) bool {
	t, ok := WorkerType(head)
	if !ok || t != Connect && t != Disconnect || len(head) < 3 || head[2] != '/' {
		return false
	}
	_, ok = ReadWorker(head, false)
	return !ok
}
