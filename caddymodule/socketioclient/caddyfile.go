package socketioclient

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
	"github.com/flaskedge/flaskedge/internal/pathdirective"
)

func init() {
	httpcaddyfile.RegisterDirective("socketio_client", parseCaddyfile)
	// Beside socketio_proxy; a plugin can only be ordered against
	// Caddy's own directives.
	httpcaddyfile.RegisterDirectiveOrder("socketio_client", httpcaddyfile.Before, "reverse_proxy")
}

// syntax is the directive's, the same as socketio_dashboard's.
var syntax = pathdirective.Syntax{
	Directive:           "socketio_client",
	DefaultPath:         DefaultPath,
	DefaultEngineIOPath: DefaultEngineIOPath,
	// Where the client is served is what edge_cors makes public.
	PathSetting: crosscheck.ClientPath,
}

// parseCaddyfile makes the directive's route. Its paths must agree with
// those of the directives beside it (see package crosscheck).
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	d := new(Handler)
	return syntax.Route(h, d, d.fields())
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	socketio_client [<matcher>] [<path>] {
//		engineio_path <prefix>
//	}
//
// path is the prefix client.js and config.json are served under (default
// /socket.io-edge/, edge_cors's default client_path); a lone argument
// that starts with / is the path, not a path matcher. engineio_path is
// the path of the socketio_proxy the client connects through (default
// /socket.io/). The path must be edge_cors's client_path and
// engineio_path socketio_proxy's path and edge_cors's engineio_path: a
// Caddyfile where they differ is refused.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return syntax.Unmarshal(d, h.fields())
}

// UnmarshalSubdirective reads the subdirective d is on into h. It is
// false, with no error, when socketio_client has no subdirective of that
// name.
func (h *Handler) UnmarshalSubdirective(d *caddyfile.Dispenser) (bool, error) {
	return syntax.UnmarshalSubdirective(d, h.fields())
}

// Subdirectives are the names of socketio_client's subdirectives, sorted.
func Subdirectives() []string { return pathdirective.Subdirectives() }

func (h *Handler) fields() pathdirective.Fields {
	return pathdirective.Fields{Path: &h.Path, EngineIOPath: &h.EngineIOPath}
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
