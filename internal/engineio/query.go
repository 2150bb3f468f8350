package engineio

import (
	"errors"
	"strings"
)

// Transport is the Engine.IO transport a request uses.
type Transport uint8

// The transports of Engine.IO v4.
const (
	Polling Transport = iota
	WebSocket
)

func (t Transport) String() string {
	if t == WebSocket {
		return "websocket"
	}
	return "polling"
}

// Query is what the edge reads from an Engine.IO request's query string.
type Query struct {
	// Transport the client asked for; polling when the parameter is
	// absent, as python-engineio assumes.
	Transport Transport
	// SID is the session id; empty for a handshake.
	SID string
}

// Handshake reports whether the request opens a new session.
func (q Query) Handshake() bool { return q.SID == "" }

// MaxSIDLength bounds the sid a client may present. Session ids from
// python-engineio are 20 characters and those the edge issues are longer;
// anything much larger is not a session id.
const MaxSIDLength = 128

// QueryError is an Engine.IO request the edge refuses. Code is the
// Engine.IO error code the reply carries; Reason says, for the operator's
// log, what exactly was wrong.
type QueryError struct {
	Code   ErrorCode
	Reason string
}

func (e *QueryError) Error() string { return "engineio: " + e.Reason }

// ErrNotEngineIO is returned for a request that carries no EIO parameter at
// all: it is not Engine.IO traffic and belongs to the next handler.
var ErrNotEngineIO = errors.New("engineio: no EIO parameter")

// ParseQuery reads an Engine.IO request's raw query string.
//
// python-engineio reads the query with urllib's parse_qs, which splits on
// '&' only, percent-decodes names and values, turns '+' into a space, drops
// parameters with an empty value and takes the first of repeated ones. The
// edge decides routing from the same parameters, so wherever the two
// parsers could read a query differently ParseQuery refuses the request
// instead: the parameters that matter (EIO, transport, sid, and j, which
// selects JSONP) must appear at most once, with a non-empty value, with
// their names and values written literally (no percent-encoding, no '+').
// Clients never write them any other way.
//
// JSONP polling, which Engine.IO v4 clients do not use and whose bodies are
// form-encoded, is refused, so that every polling body the edge forwards
// is one it can read.
func ParseQuery(raw string) (Query, error) {
	var (
		eio, transport, sid  string
		seenEIO, seenT, seen bool
	)
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		name, value, hasValue := strings.Cut(part, "=")
		key, canonical := paramName(name)
		if key == "" {
			continue
		}
		if !canonical {
			return Query{}, &QueryError{CodeBadRequest, "parameter " + key + " is percent-encoded in its name"}
		}
		if !hasValue || value == "" {
			return Query{}, &QueryError{CodeBadRequest, "parameter " + key + " has no value"}
		}
		if !literal(value) {
			return Query{}, &QueryError{CodeBadRequest, "parameter " + key + " has an encoded value"}
		}
		switch key {
		case "EIO":
			if seenEIO {
				return Query{}, &QueryError{CodeBadRequest, "parameter EIO is repeated"}
			}
			eio, seenEIO = value, true
		case "transport":
			if seenT {
				return Query{}, &QueryError{CodeBadRequest, "parameter transport is repeated"}
			}
			transport, seenT = value, true
		case "sid":
			if seen {
				return Query{}, &QueryError{CodeBadRequest, "parameter sid is repeated"}
			}
			sid, seen = value, true
		case "j":
			return Query{}, &QueryError{CodeBadRequest, "JSONP polling is not supported"}
		}
	}
	if !seenEIO {
		return Query{}, ErrNotEngineIO
	}
	if eio != "4" {
		return Query{}, &QueryError{CodeUnsupportedProtocolVersion, "EIO=" + eio + " is not Engine.IO v4"}
	}
	var q Query
	switch transport {
	case "", "polling":
		q.Transport = Polling
	case "websocket":
		q.Transport = WebSocket
	default:
		return Query{}, &QueryError{CodeTransportUnknown, "transport " + transport + " is unknown"}
	}
	if seen && !validSID(sid) {
		return Query{}, &QueryError{CodeSessionIDUnknown, "sid is not a session id"}
	}
	q.SID = sid
	return q, nil
}

// paramName returns which of the parameters the edge reads a raw name
// denotes once decoded as parse_qs decodes it, and whether it was written
// literally. It returns "" for every other parameter.
func paramName(raw string) (key string, canonical bool) {
	switch raw {
	case "EIO", "transport", "sid", "j":
		return raw, true
	}
	if !strings.ContainsAny(raw, "%+") {
		return "", true
	}
	switch decoded := unquotePlus(raw); decoded {
	case "EIO", "transport", "sid", "j":
		return decoded, false
	}
	return "", true
}

// unquotePlus decodes as Python's urllib.parse.unquote_plus does: '+' is a
// space, a valid %XX escape is its byte, and a malformed escape stays as
// written.
func unquotePlus(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// HasParam reports whether python-engineio, reading raw with parse_qs,
// sees the parameter name with a non-empty value: '&' separates, names
// are percent-decoded with '+' as a space, and pairs without '=' or with
// a blank value are dropped. It allocates nothing. It tells, for one, a
// request that python-engineio takes for a handshake (no sid) whatever
// else its query holds.
func HasParam(raw, name string) bool {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		key, value, ok := strings.Cut(pair, "=")
		if ok && value != "" && decodedEquals(key, name) {
			return true
		}
	}
	return false
}

// decodedEquals reports whether s, decoded as unquotePlus does, equals
// name.
func decodedEquals(s, name string) bool {
	j := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		if j >= len(name) || name[j] != c {
			return false
		}
		j++
	}
	return j == len(name)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// literal reports whether a value reads the same before and after
// parse_qs decodes it.
func literal(v string) bool { return !strings.ContainsAny(v, "%+") }

// validSID reports whether s has the shape of a session id: base64url
// characters, as both python-engineio and the edge issue them.
func validSID(s string) bool {
	if len(s) == 0 || len(s) > MaxSIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ReplaceSID returns raw with the value of its sid parameter replaced by
// sid. raw must be a query ParseQuery accepted with a sid, so the
// parameter is written literally and only once.
func ReplaceSID(raw, sid string) string {
	var b strings.Builder
	b.Grow(len(raw) + len(sid))
	first := true
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if !first {
			b.WriteByte('&')
		}
		first = false
		if strings.HasPrefix(part, "sid=") {
			b.WriteString("sid=")
			b.WriteString(sid)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}
