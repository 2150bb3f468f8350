package socketioproxy

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("socketio_proxy", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("socketio_proxy", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var sp Handler
	err := sp.UnmarshalCaddyfile(h.Dispenser)
	return &sp, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	socketio_proxy [<matcher>] [<upstreams...>] {
//		to              <upstreams...>
//		lb_policy       least_sessions|round_robin
//		sticky_secret   <secret>
//		namespace       <namespace>|* public|authenticated|role <roles...>
//		rate_limit      connect|messages <events>/<window> [burst <n>]
//		health_uri      <path>
//		health_interval <duration>
//		health_timeout  <duration>
//		fail_duration   <duration>
//		path            <prefix>
//		max_payload     <size>
//		max_requests_per_ip <n>
//		dial_timeout    <duration>
//		body_timeout    <duration>
//		drain_period    <duration>
//		client_path     <prefix>
//		dashboard       <path> [role <roles...>]
//	}
//
// Upstreams are the Flask-SocketIO workers, host:port; `to` may be
// repeated. namespace, repeatable, sets who may connect to a Socket.IO
// namespace (`*`: every namespace not listed); without any, all are
// public. sticky_secret must be shared by every edge that serves the
// same clients (e.g. {env.EDGE_STICKY_SECRET}). health_uri turns on
// active health checks. path is the Engine.IO endpoint (default
// /socket.io/); requests outside it go to the next handler. max_payload
// takes a byte count or a size such as 1MB. client_path serves the
// browser client under a prefix such as /socket.io-edge/. dashboard
// serves the live dashboard at path to users with one of the roles
// (default admin). drain_period spreads the closing of WebSocket sessions
// over that long when the process exits (default 0: all at once).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.Upstreams = append(h.Upstreams, d.RemainingArgs()...)
	// A {$VAR} is substituted before the tokens are read: a secret
	// holding a space or a line break becomes several tokens, and the
	// errors below must not quote any of them.
	afterSecret := false
	for d.NextBlock(0) {
		prevSecret := afterSecret
		afterSecret = false
		switch sub := d.Val(); sub {
		case "to":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("to needs at least one upstream, e.g. `to 127.0.0.1:5001 127.0.0.1:5002`")
			}
			h.Upstreams = append(h.Upstreams, args...)
		case "lb_policy":
			v, err := oneArg(d, "lb_policy least_sessions")
			if err != nil {
				return err
			}
			if v != PolicyLeastSessions && v != PolicyRoundRobin {
				return d.Errf("lb_policy %q is unknown; write `lb_policy least_sessions` or `lb_policy round_robin`", v)
			}
			h.LBPolicy = v
		case "sticky_secret":
			afterSecret = true
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Errf("sticky_secret takes one value, got %d (not shown); quote a secret that holds spaces, or write `sticky_secret {env.EDGE_STICKY_SECRET}`", len(args))
			}
			v := args[0]
			if !strings.Contains(v, "{") && len(v) < minStickySecret {
				return d.Errf("sticky_secret is %d characters; use at least %d random characters, e.g. `sticky_secret {env.EDGE_STICKY_SECRET}`", len(v), minStickySecret)
			}
			h.StickySecret = v
		case "health_uri":
			v, err := oneArg(d, "health_uri /healthz")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(v, "/") {
				return d.Errf("health_uri %q must be a path, e.g. `health_uri /healthz`", v)
			}
			h.healthChecks().URI = v
		case "health_interval", "health_timeout", "fail_duration", "dial_timeout", "body_timeout":
			v, err := oneArg(d, sub+" 5s")
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s %q is not a positive duration; write e.g. `%s 5s`", sub, v, sub)
			}
			switch sub {
			case "health_interval":
				h.healthChecks().Interval = caddy.Duration(dur)
			case "health_timeout":
				h.healthChecks().Timeout = caddy.Duration(dur)
			case "fail_duration":
				h.FailDuration = caddy.Duration(dur)
			case "body_timeout":
				h.BodyTimeout = caddy.Duration(dur)
			default:
				h.DialTimeout = caddy.Duration(dur)
			}
		case "drain_period":
			v, err := oneArg(d, "drain_period 10s")
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return d.Errf("drain_period %q is not a duration; write e.g. `drain_period 10s` (0: close every session at once)", v)
			}
			h.DrainPeriod = caddy.Duration(dur)
		case "namespace":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("namespace needs a namespace and a rule, e.g. `namespace /admin role admin` or `namespace * authenticated`")
			}
			ns, rule := args[0], &NamespaceRule{Access: args[1], Roles: args[2:]}
			if _, dup := h.Namespaces[ns]; dup {
				return d.Errf("namespace %s is given twice", ns)
			}
			if err := rule.validate(ns); err != nil {
				return d.Err(err.Error())
			}
			if h.Namespaces == nil {
				h.Namespaces = make(map[string]*NamespaceRule)
			}
			h.Namespaces[ns] = rule
		case "rate_limit":
			args := d.RemainingArgs()
			if len(args) != 2 && !(len(args) == 4 && args[2] == "burst") {
				return d.Errf("rate_limit takes connect|messages <events>/<window> [burst <n>], e.g. `rate_limit connect 30/m`")
			}
			r, err := parseRate(args[1])
			if err != nil {
				return d.Errf("rate_limit %s: %v", args[0], err)
			}
			if len(args) == 4 {
				if r.Burst, err = strconv.Atoi(args[3]); err != nil || r.Burst <= 0 {
					return d.Errf("rate_limit %s: burst %q is not a positive number", args[0], args[3])
				}
			}
			if h.RateLimits == nil {
				h.RateLimits = new(RateLimits)
			}
			switch args[0] {
			case "connect":
				h.RateLimits.Connect = r
			case "messages":
				h.RateLimits.Messages = r
			default:
				return d.Errf("rate_limit %q: limit connect (new sessions per client IP) or messages (per session)", args[0])
			}
		case "path":
			v, err := oneArg(d, "path /socket.io/")
			if err != nil {
				return err
			}
			h.Path = v
		case "max_payload":
			v, err := oneArg(d, "max_payload 1MB")
			if err != nil {
				return err
			}
			size, err := humanize.ParseBytes(v)
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("max_payload %q is not a size; write e.g. `max_payload 1MB` or `max_payload 1000000`", v)
			}
			h.MaxPayload = int64(size)
		case "max_requests_per_ip":
			v, err := oneArg(d, "max_requests_per_ip 4096")
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return d.Errf("max_requests_per_ip %q is not a positive number; write e.g. `max_requests_per_ip 4096`", v)
			}
			h.MaxRequestsPerIP = n
		default:
			if prevSecret {
				return d.Errf("unknown subdirective after sticky_secret (not shown: it may be the rest of a secret that holds a line break); socketio_proxy knows to, lb_policy, sticky_secret, namespace, rate_limit, health_uri, health_interval, health_timeout, fail_duration, path, max_payload, max_requests_per_ip, dial_timeout, body_timeout, drain_period, dashboard and client_path")
			}
			return d.Errf("unknown subdirective %q; socketio_proxy knows to, lb_policy, sticky_secret, namespace, rate_limit, health_uri, health_interval, health_timeout, fail_duration, path, max_payload, max_requests_per_ip, dial_timeout, body_timeout, drain_period, dashboard and client_path", sub)
		}
	}
	if len(h.Upstreams) == 0 {
		return d.Errf("socketio_proxy needs an upstream, e.g. `socketio_proxy 127.0.0.1:5001` or `to 127.0.0.1:5001 127.0.0.1:5002` in its block")
	}
	for _, u := range h.Upstreams {
		if _, err := parseUpstream(u); err != nil && !strings.Contains(u, "{") {
			return d.Err(err.Error())
		}
	}
	return nil
}

func (h *Handler) healthChecks() *HealthChecks {
	if h.HealthChecks == nil {
		h.HealthChecks = new(HealthChecks)
	}
	return h.HealthChecks
}

// oneArg reads the single argument of the current subdirective.
func oneArg(d *caddyfile.Dispenser, example string) (string, error) {
	sub := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s needs a value, e.g. `%s`", sub, example)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s takes one value, got also %q; write e.g. `%s`", sub, d.Val(), example)
	}
	return v, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
