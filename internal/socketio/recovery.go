package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

var (
	errNotWorkerConnect = errors.New("socketio: not a CONNECT reply with a JSON object")
	errNotWorkerEvent   = errors.New("socketio: not an EVENT or BINARY_EVENT with a JSON array")
	// An offset appended to `42[]` would become the event name.
	errEventWithoutName = errors.New("socketio: EVENT with an empty array has no name to keep")
	errNotConnect       = errors.New("socketio: not a CONNECT packet")
	// Go's decoder refuses what python's json.loads accepts beyond the
	// standard (NaN, Infinity), and JSON.stringify never writes it.
	errConnectJSON = fmt.Errorf("%w: CONNECT data that is not standard JSON in UTF-8", ErrAmbiguous)
	// A pid or offset the edge cannot take as one must not reach the
	// worker as auth either.
	errRecoveryValue = fmt.Errorf("%w: CONNECT data whose pid or offset is not a string", ErrAmbiguous)
)

// WithPid returns the worker's CONNECT reply p (`40[/ns,]{...}`, as
// python-socketio writes it) with the member "pid":pid added to its JSON
// object, replacing any pid already there, so that socket.io-client
// stores the pid and sends it back when it reconnects. Error when p is not
// a CONNECT whose data is a JSON object.
func WithPid(p []byte, pid string) ([]byte, error) {
	h, ok := ReadWorker(p, true)
	if !ok || h.Type != Connect {
		return nil, errNotWorkerConnect
	}
	data := p[2:]
	if len(data) > 0 && data[0] == '/' {
		if len(h.Namespace) == len(data) {
			return nil, errNotWorkerConnect
		}
		data = data[len(h.Namespace)+1:]
	}
	open := skipJSONSpace(data, 0)
	if open == len(data) || data[open] != '{' || !json.Valid(data) {
		return nil, errNotWorkerConnect
	}
	ms, closing := objectMembers(data, open)
	quoted, _ := json.Marshal(pid) // a string always encodes

	b := make([]byte, 0, len(p)+len(`,"pid":`)+len(quoted))
	b = append(b, p[:len(p)-len(data)+open+1]...)
	for _, m := range ms {
		if keyName(m.key) != "pid" {
			b = append(b, data[m.start:m.end]...)
			b = append(b, ',')
		}
	}
	b = append(b, `"pid":`...)
	b = append(b, quoted...)
	return append(b, data[closing:]...), nil
}

// WithOffset returns the EVENT or BINARY_EVENT p, in the form
// python-socketio's encoder writes (`42`, or `45<n>-`, then an optional
// `/ns,`, an optional ack id, then a JSON array), with the JSON string
// offset appended as the array's last element: socket.io-client takes the
// last argument of an event as its offset when it is a string, and its
// listeners receive the offset as one more argument.
//
// socket.io-client ignores the offset of an event with an ack id (the ack
// callback comes last), and its listener would see the offset before the
// callback; Node's server adds none there, and neither should the caller.
// Error when p is not such a packet, its data is not an array, or the
// array is empty (the offset would become the event's name).
func WithOffset(p []byte, offset string) ([]byte, error) {
	h, ok := ReadWorker(p, true)
	if !ok || h.Type != Event && h.Type != BinaryEvent {
		return nil, errNotWorkerEvent
	}
	data := p[2:]
	if h.Type == BinaryEvent {
		data = data[bytes.IndexByte(data, '-')+1:]
	}
	if len(data) > 0 && data[0] == '/' {
		if len(h.Namespace) == len(data) {
			return nil, errNotWorkerEvent
		}
		data = data[len(h.Namespace)+1:]
	}
	data = data[digits(data):]
	open := skipJSONSpace(data, 0)
	if open == len(data) || data[open] != '[' || !json.Valid(data) {
		return nil, errNotWorkerEvent
	}
	// Valid JSON ends with its closing bracket and whitespace.
	closing := bytes.LastIndexByte(data, ']')
	if skipJSONSpace(data, open+1) == closing {
		return nil, errEventWithoutName
	}
	quoted, _ := json.Marshal(offset)

	b := make([]byte, 0, len(p)+1+len(quoted))
	b = append(b, p[:len(p)-len(data)+closing]...)
	b = append(b, ',')
	b = append(b, quoted...)
	return append(b, data[closing:]...), nil
}

// RecoveryOf reads a client's CONNECT p as python-socketio does (see
// Read) and returns the pid and offset its data object carries
// (socket.io-client sends `{pid, offset, ...auth}` when it reconnects),
// and stripped: p with every member python reads as "pid" or "offset"
// removed, so the worker's connect handler gets the auth the application
// gave. found is false when the data has no pid; offset is "" when it has
// none: the client had received no event since it got its pid, and Node's
// server then recovers nothing (it needs both as strings).
//
// Keys are compared as python's json.loads reads them, after unescaping
// ("p\u0069d" is "pid"), and of duplicate keys the last one gives the
// value, as in json.loads. Every other member is kept byte for byte. When
// no member remains, stripped carries no data at all, so python's auth is
// None, as at the first connect of a client without auth; a client whose
// auth is {} cannot be told apart, and python-socketio 5.7.2 treats {} and
// None alike. stripped is p itself when nothing is removed, including when
// the data is not an object.
//
// An error means the edge must refuse the packet: Read refuses it, it is
// not a CONNECT, its data is not standard JSON in UTF-8, or a pid or
// offset is not a string (or holds U+FFFD, which Go's decoder also writes
// for a lone surrogate python would keep).
func RecoveryOf(p []byte) (pid, offset string, stripped []byte, found bool, err error) {
	pkt, err := Read(p, false)
	if err != nil {
		return "", "", nil, false, err
	}
	if pkt.Kind != Message || pkt.Type != Connect {
		return "", "", nil, false, errNotConnect
	}
	data := pkt.Data // a suffix of p
	if data == nil {
		return "", "", p, false, nil
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		return "", "", nil, false, errConnectJSON
	}
	open := skipJSONSpace(data, 0)
	if data[open] != '{' {
		return "", "", p, false, nil
	}
	ms, closing := objectMembers(data, open)
	var pidValue, offsetValue []byte
	kept := make([]member, 0, len(ms))
	for _, m := range ms {
		switch keyName(m.key) {
		case "pid":
			pidValue = m.value
		case "offset":
			offsetValue = m.value
		default:
			kept = append(kept, m)
		}
	}
	if len(kept) == len(ms) {
		return "", "", p, false, nil
	}
	if pidValue != nil {
		if pid, err = stringValue(pidValue); err != nil {
			return "", "", nil, false, err
		}
	}
	if offsetValue != nil {
		if offset, err = stringValue(offsetValue); err != nil {
			return "", "", nil, false, err
		}
	}

	head := p[:len(p)-len(data)]
	if len(kept) == 0 {
		return pid, offset, bytes.Clone(head), pidValue != nil, nil
	}
	b := make([]byte, 0, len(p))
	b = append(b, head...)
	b = append(b, data[:open+1]...)
	for i, m := range kept {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, data[m.start:m.end]...)
	}
	return pid, offset, append(b, data[closing:]...), pidValue != nil, nil
}

// stringValue decodes a JSON value that must be a string.
func stringValue(v []byte) (string, error) {
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil || strings.ContainsRune(s, utf8.RuneError) {
		return "", errRecoveryValue
	}
	return s, nil
}

// member is one member of a JSON object, as spans of the object's text.
type member struct {
	key        []byte // quotes included
	value      []byte
	start, end int // from the key's opening quote to the end of the value
}

// objectMembers splits the object starting at data[open] into its
// members and returns where its closing brace is. data must be valid
// JSON (json.Valid), so the scan needs no checks.
func objectMembers(data []byte, open int) (ms []member, closing int) {
	i := skipJSONSpace(data, open+1)
	for data[i] != '}' {
		start := i
		i = skipString(data, i)
		key := data[start:i]
		i = skipJSONSpace(data, skipJSONSpace(data, i)+1) // the ':'
		vstart := i
		i = skipValue(data, i)
		ms = append(ms, member{key: key, value: data[vstart:i], start: start, end: i})
		if i = skipJSONSpace(data, i); data[i] == ',' {
			i = skipJSONSpace(data, i+1)
		}
	}
	return ms, i
}

// keyName is a member's key as json.loads reads it.
func keyName(key []byte) string {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1 : len(key)-1])
	}
	var s string
	json.Unmarshal(key, &s) // valid: checked with the whole object
	return s
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue returns the index after the valid JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !isJSONSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
		i++
	}
	return i
}
