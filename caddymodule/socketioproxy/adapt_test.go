package socketioproxy

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The golden files put flask_session in front, as users do.
	_ "github.com/flaskedge/flaskedge/caddymodule/flasksession"
	"github.com/flaskedge/flaskedge/internal/testenv"
)

// TestCaddyfileAdaptsToGoldenJSON checks the golden files in testdata/.
func TestCaddyfileAdaptsToGoldenJSON(t *testing.T) { testenv.AdaptGolden(t) }

func TestCaddyfileErrorsSayWhatToWrite(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{`socketio_proxy`, "needs an upstream"},
		{"socketio_proxy {\n to\n}", "to needs at least one upstream"},
		{"socketio_proxy a:1 {\n lb_policy ip_hash\n}", `lb_policy "ip_hash" is unknown`},
		{"socketio_proxy a:1 {\n rate_limit connect\n}", "rate_limit takes connect|messages"},
		{"socketio_proxy a:1 {\n rate_limit connect 30/fortnight\n}", "is not s, m, h or a duration"},
		{"socketio_proxy a:1 {\n rate_limit pings 30/m\n}", `rate_limit "pings"`},
		{"socketio_proxy a:1 {\n rate_limit messages 30/s burst x\n}", "burst \"x\" is not a positive number"},
		{"socketio_proxy a:1 {\n namespace /admin\n}", "namespace needs a namespace and a rule"},
		{"socketio_proxy a:1 {\n namespace admin role x\n}", "must start with /"},
		{"socketio_proxy a:1 {\n namespace /admin role\n}", "access role needs role names"},
		{"socketio_proxy a:1 {\n namespace /admin admins\n}", `access "admins" is unknown`},
		{"socketio_proxy a:1 {\n namespace /a public\n namespace /a public\n}", "given twice"},
		{"socketio_proxy a:1 {\n sticky_secret short\n}", "use at least 16"},
		{"socketio_proxy a:1 {\n health_uri healthz\n}", "must be a path"},
		{"socketio_proxy a:1 {\n path /a/ /b/\n}", "takes one value"},
		{"socketio_proxy 127.0.0.1:5001 {\n timeout 5s\n}", `unknown subdirective "timeout"`},
		{`socketio_proxy localhost`, "is not host:port"},
		{`socketio_proxy https://a:1`, "only plain http workers"},
		{"socketio_proxy a:1 {\n max_payload lots\n}", `max_payload "lots" is not a size`},
		{"socketio_proxy a:1 {\n max_requests_per_ip 0\n}", `max_requests_per_ip "0" is not a positive number`},
		{"socketio_proxy a:1 {\n dial_timeout -1s\n}", "not a positive duration"},
		{"socketio_proxy a:1 {\n path\n}", "path needs a value"},
		{"socketio_proxy a:1 {\n drain_period soon\n}", "write e.g. `drain_period 10s`"},
		{"socketio_proxy a:1 {\n drain_period -1s\n}", "is not a duration"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if assert.Error(t, err, tc.input) {
			assert.Contains(t, err.Error(), tc.want, tc.input)
			assert.Contains(t, err.Error(), "Testfile:", tc.input)
		}
	}
}
