package engineio

import (
	"net/url"
	"strings"
)

// WorkerPath returns the PATH_INFO a Flask-SocketIO worker under eventlet
// derives from a request path as the client sent it (escaped): Python's
// http.server reduces leading slashes to one (gh-87389), then eventlet
// percent-decodes. An edge that decides by path must decide on this, or
// "//socket.io/" passes it as an ordinary request and reaches the
// worker's Engine.IO endpoint.
func WorkerPath(escaped string) string {
	if strings.HasPrefix(escaped, "//") {
		escaped = "/" + strings.TrimLeft(escaped, "/")
	}
	if p, err := url.PathUnescape(escaped); err == nil {
		return p
	}
	return escaped
}
