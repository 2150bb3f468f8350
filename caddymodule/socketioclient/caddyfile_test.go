package socketioclient

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The golden files put the client beside socketio_proxy and edge_cors.
	_ "github.com/flaskedge/flaskedge/caddymodule/edgecors"
	"github.com/flaskedge/flaskedge/internal/testenv"
)

// TestCaddyfileAdaptsToGoldenJSON checks the golden files in testdata/.
func TestCaddyfileAdaptsToGoldenJSON(t *testing.T) { testenv.AdaptGolden(t) }

func TestCaddyfileSetsPathAndEngineIOPath(t *testing.T) {
	for input, want := range map[string]Handler{
		"socketio_client":                                     {},
		"socketio_client /js/edge/":                           {Path: "/js/edge/"},
		"socketio_client {\n engineio_path /ws/\n}":           {EngineIOPath: "/ws/"},
		"socketio_client /js/edge/ {\n engineio_path /ws/\n}": {Path: "/js/edge/", EngineIOPath: "/ws/"},
	} {
		var h Handler
		require.NoError(t, h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)), input)
		assert.Equal(t, want.Path, h.Path, input)
		assert.Equal(t, want.EngineIOPath, h.EngineIOPath, input)
	}
}

func TestCaddyfileErrorsSayWhatToWrite(t *testing.T) {
	for input, want := range map[string]string{
		"socketio_client /a/ /b/":                      `takes one path, got also "/b/"`,
		"socketio_client {\n engineio_path\n}":         "engineio_path needs socketio_proxy's path, e.g. `engineio_path /socket.io/`",
		"socketio_client {\n engineio_path /a/ /b/\n}": `engineio_path takes one value, got also "/b/"`,
		"socketio_client {\n client_path /js/edge/\n}": `unknown subdirective "client_path"; socketio_client knows engineio_path`,
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if assert.Error(t, err, input) {
			assert.Contains(t, err.Error(), want, input)
			assert.Contains(t, err.Error(), "Testfile:", input)
		}
	}
}
