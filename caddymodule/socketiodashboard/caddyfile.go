package socketiodashboard

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/flaskedge/flaskedge/internal/pathdirective"
)

func init() {
	httpcaddyfile.RegisterDirective("socketio_dashboard", parseCaddyfile)
	// After the authentication directives (flask_session, basic_auth)
	// that protect it; a plugin can only be ordered against Caddy's own
	// directives.
	httpcaddyfile.RegisterDirectiveOrder("socketio_dashboard", httpcaddyfile.Before, "reverse_proxy")
}

// syntax is the directive's, the same as socketio_client's.
var syntax = pathdirective.Syntax{
	Directive:           "socketio_dashboard",
	DefaultPath:         DefaultPath,
	DefaultEngineIOPath: DefaultEngineIOPath,
}

// parseCaddyfile makes the directive's route. Its paths must agree with
// those of the directives beside it (see package crosscheck).
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	d := new(Handler)
	return syntax.Route(h, d, d.fields())
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	socketio_dashboard [<matcher>] [<path>] {
//		engineio_path <prefix>
//	}
//
// path is the prefix the dashboard is served under (default
// /_edge/dashboard/); a lone argument that starts with / is the path, not
// a path matcher. engineio_path selects the socketio_proxy whose figures
// the page shows, by its path (default /socket.io/); a Caddyfile where
// it differs from socketio_proxy's path or edge_cors's engineio_path in
// the same block is refused. The dashboard has no access control of its
// own: put it in a route behind the edge's authentication,
//
//	route /_edge/dashboard/* {
//		flask_session {
//			secret_key {env.FLASK_SECRET_KEY}
//			require role admin
//		}
//		socketio_dashboard
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return syntax.Unmarshal(d, h.fields())
}

// UnmarshalSubdirective reads the subdirective d is on into h. It is
// false, with no error, when socketio_dashboard has no subdirective of
// that name.
func (h *Handler) UnmarshalSubdirective(d *caddyfile.Dispenser) (bool, error) {
	return syntax.UnmarshalSubdirective(d, h.fields())
}

// Subdirectives are the names of socketio_dashboard's subdirectives,
// sorted.
func Subdirectives() []string { return pathdirective.Subdirectives() }

func (h *Handler) fields() pathdirective.Fields {
	return pathdirective.Fields{Path: &h.Path, EngineIOPath: &h.EngineIOPath}
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
