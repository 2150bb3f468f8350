package engineio

import (
	"net/http"
	"strconv"
)

// ErrorCode is an Engine.IO server error code, as the reference server
// sends it in the JSON body of a refused request.
type ErrorCode int

// The error codes of the reference Engine.IO server.
const (
	CodeTransportUnknown           ErrorCode = 0
	CodeSessionIDUnknown           ErrorCode = 1
	CodeBadHandshakeMethod         ErrorCode = 2
	CodeBadRequest                 ErrorCode = 3
	CodeForbidden                  ErrorCode = 4
	CodeUnsupportedProtocolVersion ErrorCode = 5
)

// Message is the reference server's message for the code.
func (c ErrorCode) Message() string {
	switch c {
	case CodeTransportUnknown:
		return "Transport unknown"
	case CodeSessionIDUnknown:
		return "Session ID unknown"
	case CodeBadHandshakeMethod:
		return "Bad handshake method"
	case CodeForbidden:
		return "Forbidden"
	case CodeUnsupportedProtocolVersion:
		return "Unsupported protocol version"
	}
	return "Bad request"
}

// Status is the HTTP status the reference server answers with.
func (c ErrorCode) Status() int {
	if c == CodeForbidden {
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// Body is the JSON body of the reply, e.g.
// {"code":1,"message":"Session ID unknown"}.
func (c ErrorCode) Body() []byte {
	return []byte(`{"code":` + strconv.Itoa(int(c)) + `,"message":"` + c.Message() + `"}`)
}

// WriteError answers a request with the Engine.IO error reply for code,
// which socket.io-client treats as a transport error and recovers from by
// opening a new session.
func WriteError(w http.ResponseWriter, code ErrorCode) {
	body := code.Body()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code.Status())
	_, _ = w.Write(body)
}
