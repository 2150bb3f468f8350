package flasksession

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/flaskedge/flaskedge/internal/secretsafe"
	"github.com/flaskedge/flaskedge/internal/subdirective"
	"github.com/flaskedge/flaskedge/internal/upstreamtls"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("flask_session", parseCaddyfile)
	// Identity first, so basic_auth and everything after can use it.
	httpcaddyfile.RegisterDirectiveOrder("flask_session", httpcaddyfile.Before, "basic_auth")
}

// parseCaddyfile expands the flask_session directive into Caddy's own
// authentication handler with this provider, as basic_auth does.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var fs FlaskSession
	if err := fs.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return Authentication(&fs), nil
}

// Authentication is Caddy's authentication handler with fs as its only
// provider: what the flask_session directive (and flask_socketio)
// expands into.
func Authentication(fs *FlaskSession) caddyauth.Authentication {
	return caddyauth.Authentication{
		ProvidersRaw: caddy.ModuleMap{
			"flask_session": caddyconfig.JSON(fs, nil),
		},
	}
}

// UnmarshalCaddyfile sets up the provider from Caddyfile tokens. Syntax:
//
//	flask_session [<matcher>] {
//	    secret_key <key> [<fallback_key>...]
//	    cookie_name <name>
//	    max_age <duration>
//	    clock_skew <duration>
//	    user_key <key>
//	    role_key <key>
//	    identity_headers <user_header> <role_header> | off
//	    require authenticated | role <role...>
//	    whoami <url...>
//	    whoami_timeout <duration>
//	    whoami_ttl <duration>
//	    whoami_negative_ttl <duration>
//	    whoami_cache_size <entries>
//	    whoami_transport http {
//	        tls_trust_pool file <ca.pem...>
//	        <reverse_proxy's other tls_* settings>
//	    }
//	}
//
// secret_key is required and given once: the app's SECRET_KEY, then any
// older keys still accepted. Keep keys out of the file with
// {env.FLASK_SECRET_KEY} or {file./run/secrets/flask_key}, resolved when
// the config loads. max_age takes Caddy durations (12h, 31d). clock_skew
// is how far in the future a signature may be (default 5s); `clock_skew 0`
// refuses any timestamp in the future, as Flask does. `require
// role` accepts any one of the listed roles. Without require, requests
// without a valid session continue as the anonymous user.
//
// whoami takes the roles from the app instead of the cookie: the URLs of
// its whoami endpoint, tried in order (see Whoami). The other whoami_*
// subdirectives need it. whoami_transport is the trust of https URLs,
// written as reverse_proxy's transport with its tls_* settings only (see
// package upstreamtls); inside flask_socketio, its `transport` block
// sets it.
//
// This reads the syntax only; the values are checked when the config
// loads (Provision and Validate), never echoing a key.
func (fs *FlaskSession) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("flask_session takes no arguments besides a matcher; put settings in a block: flask_session { secret_key ... }")
	}
	prev := ""
	for d.NextBlock(0) {
		name := d.Val()
		ok, err := fs.UnmarshalSubdirective(d)
		if err != nil {
			return err
		}
		if !ok {
			return secretsafe.UnknownSubdirective(d, prev, "flask_session", Subdirectives())
		}
		prev = name
	}
	if len(fs.SecretKeys) == 0 {
		return d.Errf("flask_session needs secret_key <key>, e.g. secret_key {env.FLASK_SECRET_KEY}")
	}
	return nil
}

// UnmarshalSubdirective reads the subdirective d is on into fs. It is
// false, with no error, when flask_session has no subdirective of that
// name, so that flask_socketio can offer flask_session's subdirectives
// beside those of other modules.
func (fs *FlaskSession) UnmarshalSubdirective(d *caddyfile.Dispenser) (bool, error) {
	return subdirectives.Unmarshal(d, fs)
}

// Subdirectives are the names of flask_session's subdirectives, sorted.
func Subdirectives() []string {
	return subdirectives.Names()
}

// subdirectives parse each subdirective of flask_session, by name, with
// d on the name.
var subdirectives = subdirective.Table[*FlaskSession]{
	"secret_key": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		if len(fs.SecretKeys) > 0 {
			return d.Errf("secret_key given twice; list fallback keys on one line: secret_key <current> <previous>...")
		}
		keys := d.RemainingArgs()
		if len(keys) == 0 {
			return d.Errf("secret_key needs the app's SECRET_KEY, e.g. secret_key {env.FLASK_SECRET_KEY}")
		}
		fs.SecretKeys = keys
		return nil
	},
	"cookie_name": oneArg(func(fs *FlaskSession) *string { return &fs.CookieName }, defaultCookieName),
	"user_key":    oneArg(func(fs *FlaskSession) *string { return &fs.UserKey }, defaultUserKey),
	"role_key":    oneArg(func(fs *FlaskSession) *string { return &fs.RoleKey }, defaultRoleKey),
	"max_age": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		return durationArg(d, &fs.MaxAge, "31d")
	},
	"clock_skew": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		var skew caddy.Duration
		if err := durationArg(d, &skew, "5s, or clock_skew 0 for the strict check"); err != nil {
			return err
		}
		fs.ClockSkew = &skew
		return nil
	},
	"identity_headers": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		args := d.RemainingArgs()
		switch {
		case len(args) == 1 && args[0] == "off":
			fs.IdentityHeaders = &IdentityHeaders{Off: true}
		case len(args) == 2:
			fs.IdentityHeaders = &IdentityHeaders{User: args[0], Role: args[1]}
		default:
			return d.Errf("identity_headers takes <user_header> <role_header> or off, e.g. identity_headers X-Auth-User-Id X-Auth-Role")
		}
		return nil
	},
	"require": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		if fs.Require != nil {
			return d.Errf("require given twice; write require authenticated, or require role <role...> once")
		}
		args := d.RemainingArgs()
		switch {
		case len(args) == 1 && args[0] == "authenticated":
			fs.Require = &Require{Authenticated: true}
		case len(args) >= 2 && args[0] == "role":
			fs.Require = &Require{Roles: args[1:]}
		case len(args) == 1 && args[0] == "role":
			return d.Errf("require role needs at least one role, e.g. require role admin")
		default:
			return d.Errf("require takes 'authenticated' or 'role <role...>'")
		}
		return nil
	},
	"whoami": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		if fs.Whoami != nil && len(fs.Whoami.URLs) > 0 {
			return d.Errf("whoami given twice; list every URL on one line: whoami <url> <url>...")
		}
		urls := d.RemainingArgs()
		if len(urls) == 0 {
			return d.Errf("whoami needs the URL of the app's whoami endpoint, e.g. whoami http://127.0.0.1:5001/api/whoami")
		}
		fs.whoamiBlock().URLs = urls
		return nil
	},
	"whoami_transport": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		if fs.Whoami != nil && fs.Whoami.TLS != nil {
			return d.Errf("whoami_transport given twice; write every TLS setting in one `whoami_transport http { ... }` block")
		}
		t, err := upstreamtls.Parse(d)
		if err != nil {
			return err
		}
		if t == nil {
			return d.Errf("whoami_transport http has no TLS setting; add e.g. `tls_trust_pool file /etc/flaskedge/workers-ca.pem`")
		}
		fs.whoamiBlock().TLS = t
		return nil
	},
	"whoami_timeout": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		return durationArg(d, &fs.whoamiBlock().Timeout, "5s")
	},
	"whoami_ttl": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		return durationArg(d, &fs.whoamiBlock().TTL, "5s")
	},
	"whoami_negative_ttl": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		return durationArg(d, &fs.whoamiBlock().NegativeTTL, "5s")
	},
	"whoami_cache_size": func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("whoami_cache_size takes exactly one number of entries, e.g. whoami_cache_size 10000")
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return d.Errf("whoami_cache_size %q is not a number of entries; write e.g. 10000", v)
		}
		fs.whoamiBlock().CacheSize = n
		return nil
	},
}

// oneArg parses a subdirective with exactly one value.
func oneArg(field func(*FlaskSession) *string, example string) func(*caddyfile.Dispenser, *FlaskSession) error {
	return func(d *caddyfile.Dispenser, fs *FlaskSession) error {
		sub := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("%s takes exactly one value, e.g. %s %s", sub, sub, example)
		}
		*field(fs) = v
		return nil
	}
}

// durationArg reads the one duration of the current subdirective into v.
func durationArg(d *caddyfile.Dispenser, v *caddy.Duration, example string) error {
	sub := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.Errf("%s takes exactly one duration, e.g. %s %s", sub, sub, example)
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s %q is not a duration (%v); write e.g. %s %s", sub, s, err, sub, example)
	}
	*v = caddy.Duration(dur)
	return nil
}

func (fs *FlaskSession) whoamiBlock() *Whoami {
	if fs.Whoami == nil {
		fs.Whoami = new(Whoami)
	}
	return fs.Whoami
}

// Interface guards
var _ caddyfile.Unmarshaler = (*FlaskSession)(nil)
