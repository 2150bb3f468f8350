package flasksocketio

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/caddymodule/edgecors"
	"github.com/flaskedge/flaskedge/caddymodule/flasksession"
	"github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
)

func adapt(t *testing.T, caddyfileText string) map[string]any {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText+"\n"), map[string]any{"filename": "Caddyfile"})
	require.NoError(t, err)
	require.Empty(t, warnings)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(out, &cfg))
	return cfg
}

// flask_socketio writes what the separate directives write: the same
// handlers with the same settings, in the order the directives run.
func TestFlaskSocketIOIsTheSeparateDirectives(t *testing.T) {
	one := adapt(t, `example.com {
	flask_socketio 127.0.0.1:5001 127.0.0.1:5002 {
		path /ws/
		client_path off
		origins https://app.example.com
		credentials
		cors_max_age 10m
		secret_key {env.FLASK_SECRET_KEY}
		session_max_age 12h
		require authenticated
		sticky_secret {env.EDGE_STICKY_SECRET}
		namespace /admin role admin
		health_uri /healthz
		health_passes 2
		reverse_proxy {
			health_uri /healthz
			lb_policy first
		}
	}
}`)
	separate := adapt(t, `example.com {
	reverse_proxy 127.0.0.1:5001 127.0.0.1:5002 {
		health_uri /healthz
		lb_policy first
	}
	socketio_proxy 127.0.0.1:5001 127.0.0.1:5002 {
		path /ws/
		sticky_secret {env.EDGE_STICKY_SECRET}
		namespace /admin role admin
		health_uri /healthz
		health_passes 2
	}
	flask_session {
		secret_key {env.FLASK_SECRET_KEY}
		max_age 12h
		require authenticated
	}
	edge_cors https://app.example.com {
		engineio_path /ws/
		credentials
		max_age 10m
	}
}`)
	assert.Equal(t, separate, one)
}

// Every subdirective of the three modules is offered, under its own name
// or, for the two it writes itself and the one two modules share, a
// refusal that says what to write; none is shadowed unnoticed.
func TestEverySubdirectiveOfTheModulesIsOffered(t *testing.T) {
	names := Subdirectives()
	owners := map[string][]string{}
	for module, list := range map[string][]string{
		"edge_cors":      edgecors.Subdirectives(),
		"flask_session":  flasksession.Subdirectives(),
		"socketio_proxy": socketioproxy.Subdirectives(),
	} {
		for _, name := range list {
			owners[name] = append(owners[name], module)
			_, isOwn := own[name]
			_, isRefused := refused[name]
			assert.True(t, slices.Contains(names, name) || isRefused, "%s's %s is neither offered nor refused", module, name)
			if len(owners[name]) > 1 {
				assert.True(t, isOwn || isRefused, "%s is %v's: flask_socketio must decide which, or refuse it", name, owners[name])
			}
		}
	}
	for name := range refused {
		assert.NotContains(t, names, name)
		assert.NotEmpty(t, owners[name], "refused %s is no module's subdirective", name)
	}
	for _, name := range []string{"to", "path", "client_path", "dashboard", "reverse_proxy", "session_max_age", "cors_max_age"} {
		assert.Contains(t, names, name)
	}
}

// reverse_proxy's own block is read by reverse_proxy's parser, nested
// blocks included, and its errors name the line.
func TestReverseProxyBlockIsReverseProxys(t *testing.T) {
	cfg := adapt(t, `example.com {
	flask_socketio 127.0.0.1:5001 {
		origins https://app.example.com
		reverse_proxy {
			transport http {
				dial_timeout 3s
			}
		}
	}
}`)
	raw, _ := json.Marshal(cfg)
	assert.Contains(t, string(raw), `"dial_timeout":3000000000`)

	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`example.com {
	flask_socketio 127.0.0.1:5001 {
		origins https://app.example.com
		reverse_proxy {
			lb_policy nonsense
		}
	}
}`), map[string]any{"filename": "Caddyfile"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Caddyfile:5")
}
