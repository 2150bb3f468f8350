package edgecors

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
	"github.com/flaskedge/flaskedge/internal/subdirective"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("edge_cors", parseCaddyfile)
	// Before header, so edge_cors wraps it: a deferred header operation
	// on Access-Control-* cannot outlive the edge's decision.
	httpcaddyfile.RegisterDirectiveOrder("edge_cors", httpcaddyfile.Before, "header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	engineIOPath, clientPath := m.EngineIOPath, m.ClientPath
	if engineIOPath == "" {
		engineIOPath = defaultEngineIOPath
	}
	if clientPath == "" {
		clientPath = defaultClientPath
	}
	if err := crosscheck.Agree(h, crosscheck.EngineIOPath, crosscheck.NoteIn(h.Dispenser, "edge_cors", "engineio_path", engineIOPath)); err != nil {
		return nil, err
	}
	if err := crosscheck.Agree(h, crosscheck.ClientPath, crosscheck.NoteIn(h.Dispenser, "edge_cors", "client_path", clientPath)); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	edge_cors [<matcher>] [<origin...>] {
//		origins <origin...>
//		origins_from_env [<host_var> <port_var> [<public_url_var>]]
//		any_loopback_port
//		credentials
//		allowed_methods <method...>
//		allowed_headers <header...>
//		expose_headers <header...>
//		max_age <duration>
//		websocket_origin_guard on|off
//		require_origin
//		engineio_path <prefix>
//		allow_private_network
//		environment development|staging|production
//		client_path <prefix>
//		diagnostics on|off
//	}
//
// The one-line form edge_cors <origin...> lists origins with every
// default. origins, allowed_methods, allowed_headers and expose_headers
// may be repeated; their arguments accumulate. Origins are written to
// JSON in canonical form (lowercase, default port elided), so a
// malformed one is reported at its line, with the form to write; every
// other value is checked when the config loads, where all problems are
// reported together. origins_from_env without arguments reads
// FLASK_HOST and FLASK_PORT and no public URL; the variables are read
// when the config loads, not while adapting. engineio_path must be
// socketio_proxy's path and client_path the browser client's path
// (socketio_client; default /socket.io-edge/): a Caddyfile where they
// differ is refused. Anything under client_path is public, and with
// diagnostics on (the default in development and staging)
// <client_path>diagnose says whether an origin is allowed and why not.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if err := h.addOrigins(d, d.RemainingArgs()); err != nil {
		return err
	}
	for d.NextBlock(0) {
		ok, err := h.UnmarshalSubdirective(d)
		if err != nil {
			return err
		}
		if !ok {
			return d.Errf("edge_cors: unknown subdirective %q; edge_cors takes %s", d.Val(), strings.Join(Subdirectives(), ", "))
		}
	}
	return nil
}

// UnmarshalSubdirective reads the subdirective d is on into h. It is
// false, with no error, when edge_cors has no subdirective of that name,
// so that flask_socketio can offer edge_cors's subdirectives beside
// those of other modules.
func (h *Handler) UnmarshalSubdirective(d *caddyfile.Dispenser) (bool, error) {
	return subdirectives.Unmarshal(d, h)
}

// Subdirectives are the names of edge_cors's subdirectives, sorted.
func Subdirectives() []string {
	return subdirectives.Names()
}

// subdirectives parse each subdirective of edge_cors, by name, with d on
// the name.
var subdirectives = subdirective.Table[*Handler]{
	"origins": func(d *caddyfile.Dispenser, h *Handler) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf(`edge_cors: origins needs at least one origin, as in "origins https://app.example.com"`)
		}
		return h.addOrigins(d, args)
	},
	"origins_from_env": func(d *caddyfile.Dispenser, h *Handler) error {
		args := d.RemainingArgs()
		if len(args) == 1 || len(args) > 3 {
			return d.Errf(`edge_cors: origins_from_env takes no argument, or the host and port variables and optionally the public URL variable, as in "origins_from_env FLASK_HOST FLASK_PORT PUBLIC_URL"`)
		}
		o := &OriginsFromEnv{}
		if len(args) >= 2 {
			o.HostVar, o.PortVar = args[0], args[1]
		}
		if len(args) == 3 {
			o.PublicURLVar = args[2]
		}
		h.OriginsFromEnv = o
		return nil
	},
	"any_loopback_port": noArg(func(h *Handler) { h.AnyLoopbackPort = true },
		`write "any_loopback_port" alone, with "environment development"`),
	"credentials": noArg(func(h *Handler) { h.Credentials = true },
		`write "credentials" alone, or leave it out`),
	"require_origin": noArg(func(h *Handler) { h.RequireOrigin = true },
		`write "require_origin" alone to refuse WebSocket upgrades and Engine.IO handshakes that carry no Origin`),
	"allow_private_network": noArg(func(h *Handler) { h.AllowPrivateNetwork = true },
		`write "allow_private_network" alone, or leave it out`),
	"allowed_methods": tokens(func(h *Handler) *[]string { return &h.AllowedMethods }, `"allowed_methods GET POST PUT"`),
	"allowed_headers": tokens(func(h *Handler) *[]string { return &h.AllowedHeaders }, `"allowed_headers Content-Type X-CSRFToken"`),
	"expose_headers":  tokens(func(h *Handler) *[]string { return &h.ExposeHeaders }, `"expose_headers X-Request-Id"`),
	"max_age": func(d *caddyfile.Dispenser, h *Handler) error {
		var arg string
		if !d.Args(&arg) || d.NextArg() {
			return d.Errf(`edge_cors: max_age takes one duration, as in "max_age 10m"`)
		}
		dur, err := caddy.ParseDuration(arg)
		if err != nil {
			return d.Errf(`edge_cors: max_age %q is not a duration; write it as in "max_age 10m"`, arg)
		}
		h.MaxAge = caddy.Duration(dur)
		return nil
	},
	"websocket_origin_guard": onOff(func(h *Handler, on bool) {
		h.WebSocketOriginGuard = nil
		if !on {
			h.WebSocketOriginGuard = &on
		}
	}, `edge_cors: websocket_origin_guard takes "on" or "off"; it is on by default, so write "websocket_origin_guard off" to turn it off`),
	"diagnostics": onOff(func(h *Handler, on bool) { h.Diagnostics = &on },
		`edge_cors: diagnostics takes "on" or "off"; it is on by default in development and staging, off otherwise`),
	"engineio_path": oneArg(func(h *Handler) *string { return &h.EngineIOPath },
		`edge_cors: engineio_path takes one path prefix, as in "engineio_path /socket.io/"`),
	"client_path": oneArg(func(h *Handler) *string { return &h.ClientPath },
		`edge_cors: client_path takes one path prefix, the browser client's, as in "client_path /socket.io-edge/"`),
	"environment": oneArg(func(h *Handler) *string { return &h.Environment },
		`edge_cors: environment takes one of development, staging, production; without it, APP_ENV or FLASK_ENV decides`),
}

// addOrigins adds origins in canonical form, or says at d's line what is
// wrong with one.
func (h *Handler) addOrigins(d *caddyfile.Dispenser, origins []string) error {
	for _, o := range origins {
		p, err := parseOriginPattern(o)
		if err != nil {
			return d.Errf("edge_cors: %w", err)
		}
		h.Origins = append(h.Origins, p.String())
	}
	return nil
}

// noArg parses a subdirective without arguments.
func noArg(set func(*Handler), fix string) func(*caddyfile.Dispenser, *Handler) error {
	return func(d *caddyfile.Dispenser, h *Handler) error {
		if sub := d.Val(); d.NextArg() {
			return d.Errf("edge_cors: %s takes no argument; %s", sub, fix)
		}
		set(h)
		return nil
	}
}

// onOff parses a subdirective whose one argument is on or off.
func onOff(set func(h *Handler, on bool), usage string) func(*caddyfile.Dispenser, *Handler) error {
	return func(d *caddyfile.Dispenser, h *Handler) error {
		var arg string
		if !d.Args(&arg) || d.NextArg() || (arg != "on" && arg != "off") {
			return d.Err(usage)
		}
		set(h, arg == "on")
		return nil
	}
}

// oneArg parses a subdirective with exactly one argument.
func oneArg(field func(*Handler) *string, usage string) func(*caddyfile.Dispenser, *Handler) error {
	return func(d *caddyfile.Dispenser, h *Handler) error {
		var arg string
		if !d.Args(&arg) || d.NextArg() {
			return d.Err(usage)
		}
		*field(h) = arg
		return nil
	}
}

// tokens parses a repeatable subdirective whose arguments accumulate.
func tokens(field func(*Handler) *[]string, example string) func(*caddyfile.Dispenser, *Handler) error {
	return func(d *caddyfile.Dispenser, h *Handler) error {
		sub := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("edge_cors: %s needs at least one name, as in %s", sub, example)
		}
		list := field(h)
		*list = append(*list, args...)
		return nil
	}
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
