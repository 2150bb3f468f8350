package edgecors

import (
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("edge_cors", parseCaddyfile)
	// Before header, so edge_cors wraps it: a deferred header operation
	// on Access-Control-* cannot outlive the edge's decision.
	httpcaddyfile.RegisterDirectiveOrder("edge_cors", httpcaddyfile.Before, "header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
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
//		websocket_origin_guard off
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
// may be repeated; their arguments accumulate. Origins are checked and
// written to JSON in canonical form (lowercase, default port elided),
// so a malformed one is reported at its line, with the form to write.
// origins_from_env without arguments reads FLASK_HOST and FLASK_PORT
// and no public URL; the variables are read when the config loads, not
// while adapting. client_path is socketio_proxy's client_path (default
// /socket.io-edge/): anything under it is public, and with diagnostics
// on (the default in development and staging) <client_path>diagnose
// says whether an origin is allowed and why not.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name

	addOrigins := func(args []string) error {
		for _, o := range args {
			p, err := parseOriginPattern(o)
			if err != nil {
				return d.Errf("edge_cors: %w", err)
			}
			h.Origins = append(h.Origins, p.String())
		}
		return nil
	}
	addTokens := func(list *[]string, directive, example string) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("edge_cors: %s needs at least one name, as in %s", directive, example)
		}
		for _, a := range args {
			if err := checkToken(directive, a, example); err != nil {
				return d.Errf("edge_cors: %w", err)
			}
		}
		*list = append(*list, args...)
		return nil
	}

	if err := addOrigins(d.RemainingArgs()); err != nil {
		return err
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf(`edge_cors: origins needs at least one origin, as in "origins https://app.example.com"`)
			}
			if err := addOrigins(args); err != nil {
				return err
			}
		case "origins_from_env":
			args := d.RemainingArgs()
			if len(args) == 1 || len(args) > 3 {
				return d.Errf(`edge_cors: origins_from_env takes no argument, or the host and port variables and optionally the public URL variable, as in "origins_from_env FLASK_HOST FLASK_PORT PUBLIC_URL"`)
			}
			for _, a := range args {
				if !isEnvVarName(a) {
					return d.Errf(`edge_cors: origins_from_env: %q is not an environment variable name; write the name alone, as in "FLASK_HOST", not "$FLASK_HOST" or "{$FLASK_HOST}"`, a)
				}
			}
			o := &OriginsFromEnv{}
			if len(args) >= 2 {
				o.HostVar, o.PortVar = args[0], args[1]
			}
			if len(args) == 3 {
				o.PublicURLVar = args[2]
			}
			h.OriginsFromEnv = o
		case "any_loopback_port":
			if d.NextArg() {
				return d.Errf(`edge_cors: any_loopback_port takes no argument; write "any_loopback_port" alone, with "environment development"`)
			}
			h.AnyLoopbackPort = true
		case "credentials":
			if d.NextArg() {
				return d.Errf(`edge_cors: credentials takes no argument; write "credentials" alone, or leave it out`)
			}
			h.Credentials = true
		case "allowed_methods":
			if err := addTokens(&h.AllowedMethods, "allowed_methods", `"allowed_methods GET POST PUT"`); err != nil {
				return err
			}
		case "allowed_headers":
			if err := addTokens(&h.AllowedHeaders, "allowed_headers", `"allowed_headers Content-Type X-CSRFToken"`); err != nil {
				return err
			}
		case "expose_headers":
			if err := addTokens(&h.ExposeHeaders, "expose_headers", `"expose_headers X-Request-Id"`); err != nil {
				return err
			}
		case "max_age":
			var arg string
			if !d.Args(&arg) || d.NextArg() {
				return d.Errf(`edge_cors: max_age takes one duration, as in "max_age 10m"`)
			}
			dur, err := caddy.ParseDuration(arg)
			if err != nil {
				return d.Errf(`edge_cors: max_age %q is not a duration; write it as in "max_age 10m"`, arg)
			}
			if dur < time.Second || dur > maxMaxAge {
				return d.Errf(`edge_cors: max_age %s is out of range; write a duration from 1s to 24h (Chromium caps it at 2h)`, arg)
			}
			h.MaxAge = caddy.Duration(dur)
		case "websocket_origin_guard":
			var arg string
			if !d.Args(&arg) || d.NextArg() || (arg != "on" && arg != "off") {
				return d.Errf(`edge_cors: websocket_origin_guard takes "on" or "off"; it is on by default, so write "websocket_origin_guard off" to turn it off`)
			}
			if arg == "off" {
				off := false
				h.WebSocketOriginGuard = &off
			} else {
				h.WebSocketOriginGuard = nil
			}
		case "require_origin":
			if d.NextArg() {
				return d.Errf(`edge_cors: require_origin takes no argument; write "require_origin" alone to refuse WebSocket upgrades and Engine.IO handshakes that carry no Origin`)
			}
			h.RequireOrigin = true
		case "engineio_path":
			var arg string
			if !d.Args(&arg) || d.NextArg() || !strings.HasPrefix(arg, "/") || !strings.HasSuffix(arg, "/") {
				return d.Errf(`edge_cors: engineio_path takes one path prefix that starts and ends with "/", as in "engineio_path /socket.io/"`)
			}
			h.EngineIOPath = arg
		case "allow_private_network":
			if d.NextArg() {
				return d.Errf(`edge_cors: allow_private_network takes no argument; write "allow_private_network" alone, or leave it out`)
			}
			h.AllowPrivateNetwork = true
		case "environment":
			var arg string
			if !d.Args(&arg) || d.NextArg() || checkEnvironment(arg, "environment") != nil || arg == "" {
				return d.Errf(`edge_cors: environment takes one of development, staging, production; without it, APP_ENV or FLASK_ENV decides`)
			}
			h.Environment = arg
		case "client_path":
			var arg string
			if !d.Args(&arg) || d.NextArg() || !strings.HasPrefix(arg, "/") || !strings.HasSuffix(arg, "/") || arg == "/" {
				return d.Errf(`edge_cors: client_path takes one path prefix that starts and ends with "/", the same as socketio_proxy's, as in "client_path /socket.io-edge/"`)
			}
			h.ClientPath = arg
		case "diagnostics":
			var arg string
			if !d.Args(&arg) || d.NextArg() || (arg != "on" && arg != "off") {
				return d.Errf(`edge_cors: diagnostics takes "on" or "off"; it is on by default in development and staging, off otherwise`)
			}
			on := arg == "on"
			h.Diagnostics = &on
		default:
			return d.Errf("edge_cors: unknown subdirective %q; edge_cors takes %s", d.Val(), subdirectives)
		}
	}
	return nil
}

const subdirectives = "origins, origins_from_env, any_loopback_port, credentials, allowed_methods, allowed_headers, expose_headers, max_age, websocket_origin_guard, require_origin, engineio_path, allow_private_network, environment, client_path and diagnostics"

func isEnvVarName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
