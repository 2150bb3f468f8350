package socketioproxy

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/flaskedge/flaskedge/caddymodule/upstreamfile"

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
		{"socketio_proxy a:1 {\n rate_limit connect\n}", "rate_limit takes connect|messages"},
		{"socketio_proxy a:1 {\n rate_limit connect 30/fortnight\n}", "is not s, m, h or a duration"},
		{"socketio_proxy a:1 {\n rate_limit pings 30/m\n}", `rate_limit "pings"`},
		{"socketio_proxy a:1 {\n rate_limit messages 30/s burst x\n}", "burst \"x\" is not a number"},
		{"socketio_proxy a:1 {\n namespace /admin\n}", "namespace needs a namespace and a rule"},
		{"socketio_proxy a:1 {\n namespace /a public\n namespace /a public\n}", "given twice"},
		{"socketio_proxy a:1 {\n path /a/ /b/\n}", "takes one value"},
		{"socketio_proxy 127.0.0.1:5001 {\n timeout 5s\n}", `unknown subdirective "timeout"; socketio_proxy takes body_timeout, dial_timeout`},
		{"socketio_proxy a:1 {\n max_payload lots\n}", `max_payload "lots" is not a size`},
		{"socketio_proxy a:1 {\n max_requests_per_ip many\n}", `max_requests_per_ip "many" is not a whole number`},
		{"socketio_proxy a:1 {\n dial_timeout soon\n}", "write e.g. `dial_timeout 5s`"},
		{"socketio_proxy a:1 {\n path\n}", "path needs a value"},
		{"socketio_proxy a:1 {\n drain_period soon\n}", "write e.g. `drain_period 5s`"},
		{"socketio_proxy a:1 {\n health_status ok\n}", "`health_status 2xx`"},
		{"socketio_proxy a:1 {\n health_passes twice\n}", `health_passes "twice" is not a whole number`},
		{"socketio_proxy a:1 {\n health_fails\n}", "health_fails needs a value"},
		{"socketio_proxy a:1 {\n client_path /c/\n}", "`socketio_client /socket.io-edge/`"},
		{"socketio_proxy a:1 {\n dashboard /d/\n}", "`socketio_dashboard /_edge/dashboard/`"},
		{"socketio_proxy a:1 {\n sticky_secret two words-of-a-secret\n}", "sticky_secret takes one value, 2 given"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if assert.Error(t, err, tc.input) {
			assert.Contains(t, err.Error(), tc.want, tc.input)
			assert.Contains(t, err.Error(), "Testfile:", tc.input)
			assert.NotContains(t, err.Error(), "words-of-a-secret", "a Caddyfile error quotes the sticky_secret")
		}
	}
}

// The Caddyfile layer reads the syntax and leaves the values to
// Provision and Validate, which check them once for Caddyfile and JSON
// configs alike: a value that is well-formed but wrong adapts, and a
// literal sticky_secret is never part of a Caddyfile error.
func TestCaddyfileLeavesValueChecksToValidate(t *testing.T) {
	for _, input := range []string{
		"socketio_proxy a:1 {\n lb_policy ip_hash\n}",
		"socketio_proxy a:1 {\n sticky_secret short\n}",
		"socketio_proxy a:1 {\n health_uri healthz\n}",
		"socketio_proxy a:1 {\n namespace admin role x\n}",
		"socketio_proxy a:1 {\n dial_timeout -1s\n}",
		"socketio_proxy a:1 {\n max_requests_per_ip -1\n}",
		"socketio_proxy localhost",
	} {
		var h Handler
		assert.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)), input)
	}
}

// health_status takes reverse_proxy's forms: a code, or its class as 2xx.
func TestHealthStatusTakesReverseProxyForms(t *testing.T) {
	for in, want := range map[string]int{"200": 200, "2xx": 2, "503": 503} {
		var h Handler
		require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("socketio_proxy a:1 {\n health_status "+in+"\n}")))
		assert.Equal(t, want, h.HealthChecks.ExpectStatus, in)
	}
}
