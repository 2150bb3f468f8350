package socketioproxy

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/dustin/go-humanize"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
	"github.com/flaskedge/flaskedge/internal/secretsafe"
	"github.com/flaskedge/flaskedge/internal/subdirective"
	"github.com/flaskedge/flaskedge/internal/upstreamtls"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("socketio_proxy", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("socketio_proxy", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var sp Handler
	if err := sp.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	path := sp.Path
	if path == "" {
		path = DefaultPath
	}
	note := crosscheck.NoteIn(h.Dispenser, "socketio_proxy", "path", path)
	if err := crosscheck.Agree(h, crosscheck.EngineIOPath, note); err != nil {
		return nil, err
	}
	return &sp, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	socketio_proxy [<matcher>] [<upstreams...>] {
//		to                  <upstreams...>
//		transport           http {
//			tls_trust_pool       file <ca.pem...>
//			tls_server_name      <name>
//			tls_client_auth      <cert_file> <key_file>
//			<reverse_proxy's other tls_* settings>
//		}
//		lb_policy           least_sessions|round_robin
//		sticky_secret       <secret>
//		namespace           <namespace>|* public|authenticated|role <roles...>
//		rate_limit          connect|messages <events>/<window> [burst <n>]
//		health_uri          <path>
//		health_interval     <duration>
//		health_timeout      <duration>
//		health_status       <code>|<digit>xx
//		health_passes       <n>
//		health_fails        <n>
//		health_drain_status <code>|off
//		fail_duration       <duration>
//		path                <prefix>
//		max_payload         <size>
//		max_requests_per_ip <n>
//		dial_timeout        <duration>
//		body_timeout        <duration>
//		drain_period        <duration>
//		drain_timeout       <duration>
//		dynamic             <source> [<args...>]
//		recover             <window> [<namespaces...>] {
//			max_packets <n>
//			max_bytes   <size>
//		}
//	}
//
// Upstreams are the Flask-SocketIO workers, host:port (or
// https://host:port); `to` may be repeated. transport http, with
// reverse_proxy's tls_* settings and their meaning (see package
// upstreamtls), reaches every worker over TLS, WebSocket and health
// checks included; plain and TLS workers are not mixed. namespace, repeatable, sets who may connect to a Socket.IO
// namespace (`*`: every namespace not listed); without any, all are
// public. sticky_secret must be shared by every edge that serves the
// same clients (e.g. {env.EDGE_STICKY_SECRET}). The health_*
// subdirectives are reverse_proxy's, with its meaning: health_uri turns
// on active checks, health_status is the status a healthy worker
// answers (2xx: any), health_passes and health_fails how many checks in
// a row change a worker's state. path is the Engine.IO endpoint (default
// /socket.io/); requests outside it go to the next handler, and
// edge_cors's engineio_path must be the same (a Caddyfile where they
// differ is refused). max_payload takes a byte count or a size such as
// 1MB. drain_period spreads the closing of WebSocket sessions over that
// long when the process exits (default 0: all at once). A worker answering
// its health check with health_drain_status (default 410) is drained for
// a deploy, as POST /socketio/upstreams/<address>/drain on the admin API
// does: no new sessions, its live ones closed after drain_timeout
// (default: never). dynamic takes the workers from a dynamic upstream
// source instead of `to`, with reverse_proxy's syntax (`dynamic a
// workers.internal 5001`, `dynamic srv ...`, `dynamic file <path>`).
// recover turns on Socket.IO connection state recovery for the namespaces
// named (default: all): a client that loses its connection and comes back
// through this edge within the window gets its session and the events it
// missed; max_packets (default 1000) and max_bytes (default 1MiB) bound
// what one session holds.
//
// This reads the syntax only; the values are checked when the config
// loads (Provision and Validate), where every problem is reported.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.Upstreams = append(h.Upstreams, d.RemainingArgs()...)
	prev := ""
	for d.NextBlock(0) {
		name := d.Val()
		ok, err := h.UnmarshalSubdirective(d)
		if err != nil {
			return err
		}
		if !ok {
			if hint, moved := movedSubdirectives[d.Val()]; moved {
				return d.Errf("%s is no longer a socketio_proxy subdirective: %s", d.Val(), hint)
			}
			return secretsafe.UnknownSubdirective(d, prev, "socketio_proxy", Subdirectives())
		}
		prev = name
	}
	if len(h.Upstreams) == 0 && h.DynamicUpstreamsRaw == nil {
		return d.Errf("socketio_proxy needs an upstream, e.g. `socketio_proxy 127.0.0.1:5001` or `to 127.0.0.1:5001 127.0.0.1:5002` in its block")
	}
	return nil
}

// UnmarshalSubdirective reads the subdirective d is on into h. It is
// false, with no error, when socketio_proxy has no subdirective of that
// name, so that flask_socketio can offer socketio_proxy's subdirectives
// beside those of other modules.
func (h *Handler) UnmarshalSubdirective(d *caddyfile.Dispenser) (bool, error) {
	return subdirectives.Unmarshal(d, h)
}

// Subdirectives are the names of socketio_proxy's subdirectives, sorted.
func Subdirectives() []string {
	return subdirectives.Names()
}

// subdirectives parse each subdirective of socketio_proxy, by name, with
// d on the name.
var subdirectives = subdirective.Table[*Handler]{
	"to": func(d *caddyfile.Dispenser, h *Handler) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("to needs at least one upstream, e.g. `to 127.0.0.1:5001 127.0.0.1:5002`")
		}
		h.Upstreams = append(h.Upstreams, args...)
		return nil
	},
	"transport": func(d *caddyfile.Dispenser, h *Handler) error {
		if h.TLS != nil {
			return d.Errf("transport given twice; write every TLS setting in one `transport http { ... }` block")
		}
		t, err := upstreamtls.Parse(d)
		if err != nil {
			return err
		}
		if t == nil {
			return d.Errf("transport http has no TLS setting; workers are plain http without it, or add e.g. `tls_trust_pool file /etc/flaskedge/workers-ca.pem`")
		}
		h.TLS = t
		return nil
	},
	"lb_policy": func(d *caddyfile.Dispenser, h *Handler) error {
		return oneArg(d, &h.LBPolicy, "lb_policy least_sessions")
	},
	"sticky_secret": func(d *caddyfile.Dispenser, h *Handler) error {
		// Never quote the arguments: they are the secret.
		args := d.RemainingArgs()
		if len(args) != 1 {
			return d.Errf("sticky_secret takes one value, %d given; write e.g. `sticky_secret {env.EDGE_STICKY_SECRET}`", len(args))
		}
		h.StickySecret = args[0]
		return nil
	},
	"path": func(d *caddyfile.Dispenser, h *Handler) error {
		return oneArg(d, &h.Path, "path /socket.io/")
	},
	"health_uri": func(d *caddyfile.Dispenser, h *Handler) error {
		return oneArg(d, &h.healthChecks().URI, "health_uri /healthz")
	},
	"health_interval": func(d *caddyfile.Dispenser, h *Handler) error {
		return durationArg(d, &h.healthChecks().Interval)
	},
	"health_timeout": func(d *caddyfile.Dispenser, h *Handler) error {
		return durationArg(d, &h.healthChecks().Timeout)
	},
	"health_status": func(d *caddyfile.Dispenser, h *Handler) error {
		var v string
		if err := oneArg(d, &v, "health_status 200"); err != nil {
			return err
		}
		// reverse_proxy's shorthand: 2xx is the class, written 2.
		code := v
		if len(v) == 3 && strings.HasSuffix(v, "xx") {
			code = v[:1]
		}
		n, err := strconv.Atoi(code)
		if err != nil {
			return d.Errf("health_status %q is not a status; write e.g. `health_status 200` or `health_status 2xx`", v)
		}
		h.healthChecks().ExpectStatus = n
		return nil
	},
	"health_passes": func(d *caddyfile.Dispenser, h *Handler) error {
		return intArg(d, &h.healthChecks().Passes, "health_passes 2")
	},
	"health_fails": func(d *caddyfile.Dispenser, h *Handler) error {
		return intArg(d, &h.healthChecks().Fails, "health_fails 3")
	},
	"fail_duration": func(d *caddyfile.Dispenser, h *Handler) error {
		return durationArg(d, &h.FailDuration)
	},
	"dial_timeout": func(d *caddyfile.Dispenser, h *Handler) error {
		return durationArg(d, &h.DialTimeout)
	},
	"body_timeout": func(d *caddyfile.Dispenser, h *Handler) error {
		return durationArg(d, &h.BodyTimeout)
	},
	"drain_period": func(d *caddyfile.Dispenser, h *Handler) error {
		return durationArg(d, &h.DrainPeriod)
	},
	"dynamic": func(d *caddyfile.Dispenser, h *Handler) error {
		if !d.NextArg() {
			return d.Errf("dynamic needs a source, e.g. `dynamic a workers.internal 5001` or `dynamic file /etc/caddy/workers`")
		}
		name := d.Val()
		mod, err := caddyfile.UnmarshalModule(d, "http.reverse_proxy.upstreams."+name)
		if err != nil {
			return err
		}
		if _, ok := mod.(reverseproxy.UpstreamSource); !ok {
			return d.Errf("dynamic %s is not an upstream source", name)
		}
		h.DynamicUpstreamsRaw = caddyconfig.JSONModuleObject(mod, "source", name, nil)
		return nil
	},
	"drain_timeout": func(d *caddyfile.Dispenser, h *Handler) error {
		return durationArg(d, &h.DrainTimeout)
	},
	"health_drain_status": func(d *caddyfile.Dispenser, h *Handler) error {
		var v string
		if err := oneArg(d, &v, "health_drain_status 410"); err != nil {
			return err
		}
		if v == "off" {
			h.healthChecks().DrainStatus = -1
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return d.Errf("health_drain_status %q is not a status; write e.g. `health_drain_status 410` or `health_drain_status off`", v)
		}
		h.healthChecks().DrainStatus = n
		return nil
	},
	"namespace": func(d *caddyfile.Dispenser, h *Handler) error {
		args := d.RemainingArgs()
		if len(args) < 2 {
			return d.Errf("namespace needs a namespace and a rule, e.g. `namespace /admin role admin` or `namespace * authenticated`")
		}
		ns := args[0]
		if _, dup := h.Namespaces[ns]; dup {
			return d.Errf("namespace %s is given twice; write one rule per namespace", ns)
		}
		if h.Namespaces == nil {
			h.Namespaces = make(map[string]*NamespaceRule)
		}
		h.Namespaces[ns] = &NamespaceRule{Access: args[1], Roles: args[2:]}
		return nil
	},
	"recover": func(d *caddyfile.Dispenser, h *Handler) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("recover takes a window and, optionally, the namespaces that recover, e.g. `recover 30s` or `recover 2m /chat`")
		}
		if h.Recover != nil {
			return d.Errf("recover is given twice; write one, naming every namespace that recovers")
		}
		window, err := caddy.ParseDuration(args[0])
		if err != nil {
			return d.Errf("recover window %q: %v", args[0], err)
		}
		rc := &Recover{Window: caddy.Duration(window), Namespaces: args[1:]}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			switch d.Val() {
			case "max_packets":
				if !d.NextArg() {
					return d.ArgErr()
				}
				n, err := strconv.Atoi(d.Val())
				if err != nil {
					return d.Errf("recover max_packets %q is not a number", d.Val())
				}
				rc.MaxPackets = n
			case "max_bytes":
				if !d.NextArg() {
					return d.ArgErr()
				}
				n, err := humanize.ParseBytes(d.Val())
				if err != nil {
					return d.Errf("recover max_bytes %q is not a size, e.g. 1MiB: %v", d.Val(), err)
				}
				rc.MaxBytes = int64(n)
			default:
				return d.Errf("recover has no subdirective %q; it takes max_packets and max_bytes", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		}
		h.Recover = rc
		return nil
	},
	"rate_limit": func(d *caddyfile.Dispenser, h *Handler) error {
		args := d.RemainingArgs()
		if len(args) != 2 && !(len(args) == 4 && args[2] == "burst") {
			return d.Errf("rate_limit takes connect|messages <events>/<window> [burst <n>], e.g. `rate_limit connect 30/m`")
		}
		if h.RateLimits == nil {
			h.RateLimits = new(RateLimits)
		}
		var r **Rate
		switch args[0] {
		case "connect":
			r = &h.RateLimits.Connect
		case "messages":
			r = &h.RateLimits.Messages
		default:
			return d.Errf("rate_limit %q: limit connect (new sessions per client IP) or messages (per session)", args[0])
		}
		rate, err := parseRate(args[1])
		if err != nil {
			return d.Errf("rate_limit %s: %v", args[0], err)
		}
		if len(args) == 4 {
			if rate.Burst, err = strconv.Atoi(args[3]); err != nil {
				return d.Errf("rate_limit %s: burst %q is not a number; write e.g. `burst 10`", args[0], args[3])
			}
		}
		*r = rate
		return nil
	},
	"max_payload": func(d *caddyfile.Dispenser, h *Handler) error {
		var v string
		if err := oneArg(d, &v, "max_payload 1MB"); err != nil {
			return err
		}
		size, err := humanize.ParseBytes(v)
		if err != nil || size > 1<<62 {
			return d.Errf("max_payload %q is not a size; write e.g. `max_payload 1MB` or `max_payload 1000000`", v)
		}
		h.MaxPayload = int64(size)
		return nil
	},
	"max_requests_per_ip": func(d *caddyfile.Dispenser, h *Handler) error {
		return intArg(d, &h.MaxRequestsPerIP, "max_requests_per_ip 4096")
	},
}

// movedSubdirectives were socketio_proxy's and are now other modules'.
var movedSubdirectives = map[string]string{
	"client_path": "the browser client has its own handler, `socketio_client /socket.io-edge/` " +
		"(with the same client_path in edge_cors), or write `client_path /socket.io-edge/` in flask_socketio",
	"dashboard": "the dashboard has its own handler, `socketio_dashboard /_edge/dashboard/`, " +
		"behind `flask_session { require role admin }` on its route, or write `dashboard /_edge/dashboard/ role admin` in flask_socketio",
}

func (h *Handler) healthChecks() *HealthChecks {
	if h.HealthChecks == nil {
		h.HealthChecks = new(HealthChecks)
	}
	return h.HealthChecks
}

// oneArg reads the single argument of the current subdirective into v.
func oneArg(d *caddyfile.Dispenser, v *string, example string) error {
	sub := d.Val()
	if !d.NextArg() {
		return d.Errf("%s needs a value, e.g. `%s`", sub, example)
	}
	val := d.Val()
	if d.NextArg() {
		return d.Errf("%s takes one value, got also %q; write e.g. `%s`", sub, d.Val(), example)
	}
	*v = val
	return nil
}

// durationArg reads the single duration argument of the current
// subdirective into v.
func durationArg(d *caddyfile.Dispenser, v *caddy.Duration) error {
	sub := d.Val()
	var s string
	if err := oneArg(d, &s, sub+" 5s"); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s %q is not a duration; write e.g. `%s 5s`", sub, s, sub)
	}
	*v = caddy.Duration(dur)
	return nil
}

// intArg reads the single whole-number argument of the current
// subdirective into v.
func intArg(d *caddyfile.Dispenser, v *int, example string) error {
	sub := d.Val()
	var s string
	if err := oneArg(d, &s, example); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s %q is not a whole number; write e.g. `%s`", sub, s, example)
	}
	*v = n
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
