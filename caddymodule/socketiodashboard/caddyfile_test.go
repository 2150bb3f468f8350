package socketiodashboard

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The golden files put flask_session in front, as users do, and
	// edge_cors beside it.
	_ "github.com/flaskedge/flaskedge/caddymodule/edgecors"
	_ "github.com/flaskedge/flaskedge/caddymodule/flasksession"
	"github.com/flaskedge/flaskedge/internal/testenv"
)

// TestCaddyfileAdaptsToGoldenJSON checks the golden files in testdata/.
func TestCaddyfileAdaptsToGoldenJSON(t *testing.T) { testenv.AdaptGolden(t) }

func TestCaddyfileSetsPathAndEngineIOPath(t *testing.T) {
	for input, want := range map[string]Handler{
		"socketio_dashboard":                                 {},
		"socketio_dashboard /ops/":                           {Path: "/ops/"},
		"socketio_dashboard {\n engineio_path /ws/\n}":       {EngineIOPath: "/ws/"},
		"socketio_dashboard /ops/ {\n engineio_path /ws/\n}": {Path: "/ops/", EngineIOPath: "/ws/"},
	} {
		var h Handler
		require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)), input)
		assert.Equal(t, want.Path, h.Path, input)
		assert.Equal(t, want.EngineIOPath, h.EngineIOPath, input)
	}
}

func TestCaddyfileErrorsSayWhatToWrite(t *testing.T) {
	for input, want := range map[string]string{
		"socketio_dashboard /a/ /b/":                      `takes one path, got also "/b/"`,
		"socketio_dashboard {\n engineio_path\n}":         "engineio_path needs socketio_proxy's path, e.g. `engineio_path /socket.io/`",
		"socketio_dashboard {\n engineio_path /a/ /b/\n}": `engineio_path takes one value, got also "/b/"`,
		"socketio_dashboard {\n dashboard /ops/\n}":       `unknown subdirective "dashboard"; socketio_dashboard knows engineio_path`,
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if assert.Error(t, err, input) {
			assert.Contains(t, err.Error(), want, input)
			assert.Contains(t, err.Error(), "Testfile:", input)
		}
	}
}
