package socketio

import (
	"encoding/json"
	"strings"
)

// EncodeConnectError is the Engine.IO message carrying a CONNECT_ERROR for
// namespace, e.g. `44/admin,{"message":"forbidden","data":{"code":403}}`
// (the namespace is omitted for "/"), which socket.io-client 4.x turns
// into a connect_error event with err.message and err.data, and after
// which it does not retry the namespace. data is left out when nil, as
// python-socketio does for a ConnectionRefusedError with one argument.
//
// namespace is the one Read returned, so it never holds a ','. data must
// be encodable by encoding/json; EncodeConnectError panics otherwise, so
// encode a configured value once when it is provisioned.
func EncodeConnectError(namespace, message string, data any) []byte {
	body := struct {
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{message, data}
	js, err := json.Marshal(body)
	if err != nil {
		panic("socketio: CONNECT_ERROR data is not JSON: " + err.Error())
	}
	var b strings.Builder
	b.Grow(3 + len(namespace) + len(js))
	b.WriteString("44")
	if namespace != "/" && namespace != "" {
		b.WriteString(namespace)
		b.WriteByte(',')
	}
	b.Write(js)
	return []byte(b.String())
}
