package socketioclient

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validate loads, as `caddy validate` does, one server whose route has
// these handlers in order.
func validate(t *testing.T, handlers ...string) error {
	t.Helper()
	raw := `{"admin":{"disabled":true},"apps":{"http":{"servers":{"srv0":{"listen":["127.0.0.1:0"],"routes":[{"handle":[` +
		strings.Join(handlers, ",") + `]}]}}}}}`
	var cfg caddy.Config
	require.NoError(t, json.Unmarshal([]byte(raw), &cfg))
	return caddy.Validate(&cfg)
}

const guard = `{"handler":"edge_cors","origins":["https://app.example.com"]}`

func TestClientBehindAGuardOfItsPathsLoads(t *testing.T) {
	require.NoError(t, validate(t, guard, `{"handler":"socketio_client"}`))
	require.NoError(t, validate(t,
		`{"handler":"edge_cors","origins":["https://app.example.com"],"client_path":"/js/edge/","engineio_path":"/ws/"}`,
		`{"handler":"socketio_client","path":"/js/edge/","engineio_path":"/ws/"}`))
}

// Without edge_cors in front, the client works; socketio_proxy warns
// that the handshakes are unguarded.
func TestClientWithoutAGuardInFrontLoads(t *testing.T) {
	require.NoError(t, validate(t, `{"handler":"socketio_client","path":"/js/edge/"}`, guard))
}

func TestClientPathThatIsNotTheGuardsClientPathIsRefused(t *testing.T) {
	err := validate(t, guard, `{"handler":"socketio_client","path":"/js/edge/"}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `socketio_client: path "/js/edge/" is not the client_path of the edge_cors in front of it (/socket.io-edge/)`)
	assert.Contains(t, err.Error(), `set edge_cors's client_path to "/js/edge/"`)
}

func TestClientEngineIOPathThatTheGuardDoesNotCheckIsRefused(t *testing.T) {
	err := validate(t, guard, `{"handler":"socketio_client","engineio_path":"/ws/"}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `socketio_client: Engine.IO path "/ws/" is not the engineio_path of the edge_cors in front of it (/socket.io/)`)
}
