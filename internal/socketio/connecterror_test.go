package socketio

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEncodeConnectError(t *testing.T) {
	cases := []struct {
		name      string
		namespace string
		message   string
		data      any
		want      string
	}{
		{"namespace message and data", "/admin", "forbidden", map[string]any{"code": 403}, `44/admin,{"message":"forbidden","data":{"code":403}}`},
		{"namespace omitted for the main namespace", "/", "forbidden", nil, `44{"message":"forbidden"}`},
		{"empty namespace is the main namespace", "", "forbidden", nil, `44{"message":"forbidden"}`},
		{"data left out when nil", "/admin", "forbidden", nil, `44/admin,{"message":"forbidden"}`},
		{"message is json-escaped", "/admin", "say \"no\"\n", nil, `44/admin,{"message":"say \"no\"\n"}`},
		{"falsy data is kept", "/admin", "x", false, `44/admin,{"message":"x","data":false}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, string(EncodeConnectError(c.namespace, c.message, c.data)))
		})
	}
}

// The reply reads back, through the same grammar clients use, as a
// CONNECT_ERROR to the namespace it was built for.
func TestEncodeConnectErrorReadsBackAsConnectErrorToItsNamespace(t *testing.T) {
	for _, ns := range []string{"/", "/admin", "/a b", "/\u00e9"} {
		pkt, err := Read(EncodeConnectError(ns, "no", nil), false)
		if assert.NoError(t, err) {
			assert.Equal(t, ConnectError, pkt.Type)
			assert.Equal(t, ns, string(pkt.Namespace))
			assert.JSONEq(t, `{"message":"no"}`, string(pkt.Data))
		}
	}
}

func TestEncodeConnectErrorPanicsOnDataThatIsNotJSON(t *testing.T) {
	assert.Panics(t, func() { EncodeConnectError("/admin", "x", func() {}) })
}
