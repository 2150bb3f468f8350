package flasksession

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
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
	return caddyauth.Authentication{
		ProvidersRaw: caddy.ModuleMap{
			"flask_session": caddyconfig.JSON(fs, nil),
		},
	}, nil
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
// subdirectives need it.
func (fs *FlaskSession) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("flask_session takes no arguments besides a matcher; put settings in a block: flask_session { secret_key ... }")
	}
	for d.NextBlock(0) {
		switch sub := d.Val(); sub {
		case "secret_key":
			if len(fs.SecretKeys) > 0 {
				return d.Errf("secret_key given twice; list fallback keys on one line: secret_key <current> <previous>...")
			}
			keys := d.RemainingArgs()
			if len(keys) == 0 {
				return d.Errf("secret_key needs the app's SECRET_KEY, e.g. secret_key {env.FLASK_SECRET_KEY}")
			}
			for i, k := range keys {
				if k == "" {
					return d.Errf("secret_key: key %d is empty; write the app's SECRET_KEY or a placeholder such as {env.FLASK_SECRET_KEY}", i+1)
				}
			}
			fs.SecretKeys = keys
		case "cookie_name", "user_key", "role_key":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("%s takes exactly one value, e.g. %s %s", sub, sub, map[string]string{
					"cookie_name": defaultCookieName, "user_key": defaultUserKey, "role_key": defaultRoleKey,
				}[sub])
			}
			if v == "" {
				return d.Errf("%s is empty; omit it for the default", sub)
			}
			switch sub {
			case "cookie_name":
				fs.CookieName = v
			case "user_key":
				fs.UserKey = v
			case "role_key":
				fs.RoleKey = v
			}
		case "max_age":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("max_age takes exactly one duration, e.g. max_age 31d")
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("max_age %q is not a duration (%v); write e.g. 31d or 12h", v, err)
			}
			if dur < 1e9 {
				return d.Errf("max_age %q is under one second; write the app's PERMANENT_SESSION_LIFETIME, e.g. 31d", v)
			}
			fs.MaxAge = caddy.Duration(dur)
		case "clock_skew":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("clock_skew takes exactly one duration, e.g. clock_skew 5s, or clock_skew 0 for the strict check")
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("clock_skew %q is not a duration (%v); write e.g. 5s, or 0 for the strict check", v, err)
			}
			skew := caddy.Duration(dur)
			fs.ClockSkew = &skew
		case "identity_headers":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == "off":
				fs.IdentityHeaders = &IdentityHeaders{Off: true}
			case len(args) == 2:
				fs.IdentityHeaders = &IdentityHeaders{User: args[0], Role: args[1]}
			default:
				return d.Errf("identity_headers takes <user_header> <role_header> or off, e.g. identity_headers X-Auth-User-Id X-Auth-Role")
			}
		case "require":
			if fs.Require != nil {
				return d.Errf("require given twice; write require authenticated, or require role <role...> once")
			}
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == "authenticated":
				fs.Require = &Require{Authenticated: true}
			case len(args) >= 2 && args[0] == "role":
				for _, r := range args[1:] {
					if r == "" {
						return d.Errf("require role: empty role name")
					}
				}
				fs.Require = &Require{Roles: args[1:]}
			case len(args) == 1 && args[0] == "role":
				return d.Errf("require role needs at least one role, e.g. require role admin")
			default:
				return d.Errf("require takes 'authenticated' or 'role <role...>'")
			}
		case "whoami":
			if fs.Whoami != nil && len(fs.Whoami.URLs) > 0 {
				return d.Errf("whoami given twice; list every URL on one line: whoami <url> <url>...")
			}
			urls := d.RemainingArgs()
			if len(urls) == 0 {
				return d.Errf("whoami needs the URL of the app's whoami endpoint, e.g. whoami http://127.0.0.1:5001/api/whoami")
			}
			for _, u := range urls {
				if err := checkWhoamiURL(u); err != nil {
					return d.Err(err.Error())
				}
			}
			fs.whoamiBlock().URLs = urls
		case "whoami_timeout", "whoami_ttl", "whoami_negative_ttl":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("%s takes exactly one duration, e.g. %s 5s", sub, sub)
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("%s %q is not a duration (%v); write e.g. 5s", sub, v, err)
			}
			if dur <= 0 {
				return d.Errf("%s %q is not positive", sub, v)
			}
			switch wc := fs.whoamiBlock(); sub {
			case "whoami_timeout":
				wc.Timeout = caddy.Duration(dur)
			case "whoami_ttl":
				wc.TTL = caddy.Duration(dur)
			case "whoami_negative_ttl":
				wc.NegativeTTL = caddy.Duration(dur)
			}
		case "whoami_cache_size":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("whoami_cache_size takes exactly one number of entries, e.g. whoami_cache_size 10000")
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("whoami_cache_size %q is not a positive number of entries; write e.g. 10000", v)
			}
			fs.whoamiBlock().CacheSize = n
		default:
			return d.Errf("unknown flask_session subdirective %q; expected secret_key, cookie_name, max_age, clock_skew, user_key, role_key, identity_headers, require, "+
				"whoami, whoami_timeout, whoami_ttl, whoami_negative_ttl or whoami_cache_size", sub)
		}
	}
	if len(fs.SecretKeys) == 0 {
		return d.Errf("flask_session needs secret_key <key>, e.g. secret_key {env.FLASK_SECRET_KEY}")
	}
	if fs.Whoami != nil && len(fs.Whoami.URLs) == 0 {
		return d.Errf("whoami_timeout, whoami_ttl, whoami_negative_ttl and whoami_cache_size need whoami <url>")
	}
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
