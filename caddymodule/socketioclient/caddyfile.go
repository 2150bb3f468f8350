package socketioclient

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterDirective("socketio_client", parseCaddyfile)
	// Beside socketio_proxy; a plugin can only be ordered against
	// Caddy's own directives.
	httpcaddyfile.RegisterDirectiveOrder("socketio_client", httpcaddyfile.Before, "reverse_proxy")
}

// parseCaddyfile makes the directive's route. Caddy reads a first
// argument that starts with "/" as a path matcher; here a lone one is the
// client's path, so `socketio_client /js/edge/` serves it under
// /js/edge/, and a matcher comes before the path.
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	h.Next() // directive name
	args := h.RemainingArgs()
	h.Reset()
	h.Next()
	var matcherSet caddy.ModuleMap
	if len(args) > 1 || len(args) == 1 && !strings.HasPrefix(args[0], "/") {
		var err error
		if matcherSet, err = h.ExtractMatcherSet(); err != nil {
			return nil, err
		}
	} else {
		h.Reset()
	}
	var d Handler
	if err := d.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return h.NewRoute(matcherSet, &d), nil
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
// /socket.io/).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Path = d.Val()
	}
	if d.NextArg() {
		return d.Errf("socketio_client takes one path, got also %q; write `socketio_client [<matcher>] [<path>]`, e.g. `socketio_client %s`", d.Val(), DefaultPath)
	}
	for d.NextBlock(0) {
		switch sub := d.Val(); sub {
		case "engineio_path":
			if !d.NextArg() {
				return d.Errf("engineio_path needs socketio_proxy's path, e.g. `engineio_path %s`", DefaultEngineIOPath)
			}
			h.EngineIOPath = d.Val()
			if d.NextArg() {
				return d.Errf("engineio_path takes one value, got also %q; write e.g. `engineio_path %s`", d.Val(), DefaultEngineIOPath)
			}
		default:
			return d.Errf("unknown subdirective %q; socketio_client knows engineio_path", sub)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
