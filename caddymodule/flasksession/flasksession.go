// Package flasksession verifies Flask's signed session cookie at the
// edge and hands the identity to Caddy's own authentication handler, so
// the rest of the config reads it from the {http.auth.user.*}
// placeholders. The cookie format lives in internal/flaskcookie; this
// package is the Caddy glue.
package flasksession

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/flaskedge/flaskedge/internal/flaskcookie"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/upstreamtls"
)

func init() {
	caddy.RegisterModule(FlaskSession{})
}

// FlaskSession is an authentication provider for Caddy's
// `authentication` handler that reads Flask's default session cookie
// (SecureCookieSessionInterface: itsdangerous, salt "cookie-session",
// HMAC-SHA1) with the app's SECRET_KEY.
//
// A valid cookie authenticates as
//
//	caddyauth.User{ID: <user id>, Metadata: {"role": <roles joined with ",">, "session": "valid"}}
//
// so that after the handler
//
//   - {http.auth.user.id} is the session's user id (Flask-Login's
//     `_user_id`), "" for a valid session without one;
//   - {http.auth.user.role} is its role(s), comma-separated, or "";
//   - {http.auth.user.session} is "valid", "none" (no cookie) or
//     "invalid" (refused: bad signature, expired, malformed...).
//
// Without `require` every request continues: no cookie, or a refused
// one, is the anonymous user (ID "", role "", session "none" or
// "invalid"), because Socket.IO public namespaces and the login page
// must be reachable before anyone logs in; the route decides with
// matchers on the placeholders. A refused cookie's reason is logged
// (never the cookie): "expired" at debug level, since sessions simply
// age, the others at info.
//
// With `require`, a request that does not meet it is not authenticated
// and the `authentication` handler answers 401 (handle_errors can
// replace that response); the would-be user is then in
// {http.auth.candidate.*}.
//
// With `whoami`, the roles come from the app (see Whoami). When the app
// cannot say, the request fails closed: the provider answers 503 itself
// and returns the error, which the `authentication` handler logs ("auth
// provider returned error", naming the endpoint and what went wrong) and
// puts in {http.auth.flask_session.error}. caddyauth has no way for a
// provider to fail with a status of its own: an error becomes its 401,
// which reaches handle_errors, but the client has already received the
// 503. With several providers in one authentication handler, caddyauth
// buffers each provider's response and the client gets the 401. This is
// the only case in which the provider writes to the response.
type FlaskSession struct {
	// SecretKeys are the app's SECRET_KEY first, then older keys still
	// accepted while rotating (Flask ≥ 3's SECRET_KEY_FALLBACKS). At
	// least one is required. Placeholders are resolved once, at
	// provisioning, with Caddy's global replacer, so keys need not be in
	// the config: {env.FLASK_SECRET_KEY}, {file./run/secrets/flask}
	// (one trailing newline is dropped). A key that is empty after
	// replacement is an error.
	SecretKeys []string `json:"secret_keys,omitempty"`

	// CookieName is Flask's SESSION_COOKIE_NAME. Default: "session". No
	// placeholders.
	CookieName string `json:"cookie_name,omitempty"`

	// MaxAge refuses cookies signed longer ago, as Flask does with
	// PERMANENT_SESSION_LIFETIME for every session cookie (permanent or
	// not). Set it to the app's value; whole seconds count. Default: 31
	// days, Flask's default.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// ClockSkew accepts cookies signed up to this far in the future, for
	// workers whose clock runs ahead of the edge's: Flask signs whole
	// seconds, so a worker a few milliseconds ahead across a second
	// boundary signs a second ahead. Anything further ahead is still
	// refused (reason "future"). Default: 5s when absent; 0 restores
	// Flask's strict check (no future timestamp at all), which is why
	// the field is a pointer: absent and 0 differ. Must not be negative.
	ClockSkew *caddy.Duration `json:"clock_skew,omitempty"`

	// UserKey is the session key holding the user id: a string, an
	// integer or a UUID. Default: "_user_id", where Flask-Login keeps it.
	// No placeholders.
	UserKey string `json:"user_key,omitempty"`

	// RoleKey is the session key holding the role: a string or a list
	// (or tuple) of strings. Default: "role". No placeholders. Flask-Login
	// keeps no role; the app must put one in the session for the edge to
	// see it.
	RoleKey string `json:"role_key,omitempty"`

	// IdentityHeaders hand the verified user id and roles to the app as
	// request headers. Default: X-Auth-User-Id and X-Auth-Role, set for a
	// valid session and removed from every request otherwise.
	IdentityHeaders *IdentityHeaders `json:"identity_headers,omitempty"`

	// Require, if set, makes requests that do not meet it unauthenticated
	// (401). Default: nothing is required.
	Require *Require `json:"require,omitempty"`

	// Whoami, if set, asks the app for the roles of every session that
	// names a user, and the cookie's role is ignored. Default: the roles
	// are the session's role_key.
	Whoami *Whoami `json:"whoami,omitempty"`

	verifier *flaskcookie.Verifier
	whoami   *whoamiLookup
	logger   *zap.Logger
	security *zap.Logger
}

// Require says what a request needs to be authenticated.
type Require struct {
	// Authenticated requires a valid session with a non-empty user id.
	Authenticated bool `json:"authenticated,omitempty"`
	// Roles requires, besides a valid session with a user id, at least
	// one of these roles.
	Roles []string `json:"roles,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (FlaskSession) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.flask_session",
		New: func() caddy.Module { return new(FlaskSession) },
	}
}

const (
	defaultCookieName = "session"
	defaultMaxAge     = caddy.Duration(31 * 24 * time.Hour)
	defaultUserKey    = "_user_id"
	defaultRoleKey    = "role"
)

// Provision sets defaults, resolves the secret keys and derives the
// signing keys once.
func (fs *FlaskSession) Provision(ctx caddy.Context) error {
	fs.logger = ctx.Logger()
	fs.security = security.Logger()
	if err := security.RegisterMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("flask_session: registering metrics: %w", err)
	}
	if fs.CookieName == "" {
		fs.CookieName = defaultCookieName
	}
	if fs.MaxAge == 0 {
		fs.MaxAge = defaultMaxAge
	}
	if fs.ClockSkew == nil {
		skew := caddy.Duration(flaskcookie.DefaultClockSkew)
		fs.ClockSkew = &skew
	}
	if fs.UserKey == "" {
		fs.UserKey = defaultUserKey
	}
	if fs.RoleKey == "" {
		fs.RoleKey = defaultRoleKey
	}
	if fs.IdentityHeaders == nil {
		fs.IdentityHeaders = new(IdentityHeaders)
	}
	if err := fs.IdentityHeaders.provision(); err != nil {
		return err
	}
	if len(fs.SecretKeys) == 0 {
		return fmt.Errorf("flask_session: no secret key; set secret_keys to the app's SECRET_KEY, e.g. \"{env.FLASK_SECRET_KEY}\"")
	}
	if time.Duration(fs.MaxAge) < time.Second {
		return fmt.Errorf("flask_session: max_age %s is under one second; set it to the app's PERMANENT_SESSION_LIFETIME, e.g. 31d",
			time.Duration(fs.MaxAge))
	}
	if *fs.ClockSkew < 0 {
		return fmt.Errorf("flask_session: clock_skew %s is negative; write how far ahead of the edge's clock a worker's may be, e.g. 5s, or 0 to refuse every timestamp in the future",
			time.Duration(*fs.ClockSkew))
	}
	repl := caddy.NewReplacer()
	keys := make([][]byte, len(fs.SecretKeys))
	for i, raw := range fs.SecretKeys {
		key, err := repl.ReplaceOrErr(raw, true, true)
		if err != nil {
			// The error names the placeholder, never a key.
			return fmt.Errorf("flask_session: secret key %d: %v; set it (or its file) to the app's SECRET_KEY", i+1, err)
		}
		if key == "" {
			return fmt.Errorf("flask_session: secret key %d is empty; set it to the app's SECRET_KEY", i+1)
		}
		keys[i] = []byte(key)
	}
	v, err := flaskcookie.NewVerifier(flaskcookie.Options{SecretKeys: keys, MaxAge: time.Duration(fs.MaxAge),
		ClockSkew: time.Duration(*fs.ClockSkew)})
	if err != nil {
		return fmt.Errorf("flask_session: %v", err)
	}
	fs.verifier = v
	if fs.Whoami != nil {
		fs.Whoami.setDefaults()
		if err := fs.Whoami.validate(); err != nil {
			return err
		}
		var tlsConfig *tls.Config
		var trust []byte
		if fs.Whoami.TLS != nil {
			// Read before ClientConfig, which clears the CA's raw JSON.
			trust, _ = json.Marshal(fs.Whoami.TLS)
			if tlsConfig, err = upstreamtls.ClientConfig(ctx, fs.Whoami.TLS, ctx.Logger(), "flask_session whoami"); err != nil {
				return err
			}
		}
		fs.whoami, err = newWhoamiLookup(fs.Whoami, fs.CookieName, fs.UserKey, security.Logger(), tlsConfig, trust)
		if err != nil {
			return err
		}
	}
	return nil
}

// Cleanup releases the whoami cache (kept while another config uses it).
func (fs *FlaskSession) Cleanup() error {
	if fs.whoami == nil {
		return nil
	}
	return fs.whoami.release()
}

// Validate checks the configuration.
func (fs *FlaskSession) Validate() error {
	if !validCookieName(fs.CookieName) {
		return fmt.Errorf("flask_session: cookie_name %q is not a cookie name; use Flask's SESSION_COOKIE_NAME, e.g. session", fs.CookieName)
	}
	if r := fs.Require; r != nil {
		if !r.Authenticated && len(r.Roles) == 0 {
			return fmt.Errorf("flask_session: require is empty; require authenticated, or roles, or remove it")
		}
		for _, role := range r.Roles {
			if role == "" {
				return fmt.Errorf("flask_session: require has an empty role")
			}
		}
	}
	return nil
}

// now is replaced by tests.
var now = time.Now

// Anonymous users share their metadata; caddyauth only reads it.
var (
	anonymousNone    = map[string]string{"role": "", "session": "none"}
	anonymousInvalid = map[string]string{"role": "", "session": "invalid"}
)

// Authenticate implements caddyauth.Authenticator. A missing or refused
// cookie is an anonymous user, not a fault; the only error is a whoami
// lookup that failed, after the 503 has been written to w. Each request
// require turns away counts once in caddy_socketio_refusals_total:
// "auth" without a verified user, "role" with one that lacks the role.
func (fs *FlaskSession) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	user, ok, err := fs.authenticate(w, r)
	if !ok && err == nil {
		if user.ID == "" {
			security.Refused(security.ReasonAuth)
		} else {
			security.Refused(security.ReasonRole)
		}
	}
	return user, ok, err
}

func (fs *FlaskSession) authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	value, ok := cookieValue(r.Header, fs.CookieName)
	if !ok {
		fs.IdentityHeaders.set(r.Header, "", "", false)
		return caddyauth.User{Metadata: anonymousNone}, fs.Require == nil, nil
	}
	payload, err := fs.verifier.Verify(value, now())
	var claims flaskcookie.Claims
	if err == nil {
		claims, err = flaskcookie.Decode(payload, fs.UserKey, fs.RoleKey)
	}
	if err != nil {
		level := zapcore.InfoLevel
		if flaskcookie.Reason(err) == "expired" {
			level = zapcore.DebugLevel
		}
		if c := fs.logger.Check(level, "flask session cookie refused"); c != nil {
			c.Write(
				zap.String("reason", flaskcookie.Reason(err)),
				zap.Error(err),
				zap.String("remote_addr", r.RemoteAddr),
			)
		}
		event := security.CookieInvalid
		if flaskcookie.Reason(err) == "expired" {
			event = security.CookieExpired
		}
		security.Log(fs.security, "flask_session", event, flaskcookie.Reason(err), r, security.Fields{})
		fs.IdentityHeaders.set(r.Header, "", "", false)
		return caddyauth.User{Metadata: anonymousInvalid}, fs.Require == nil, nil
	}
	if fs.whoami != nil {
		return fs.authenticateWithWhoami(w, r, value, claims)
	}
	roles := strings.Join(claims.Roles, ",")
	fs.IdentityHeaders.set(r.Header, claims.UserID, roles, true)
	fs.leaveIdentity(r, value, claims.UserID, roles)
	user := caddyauth.User{
		ID: claims.UserID,
		Metadata: map[string]string{
			"role":    roles,
			"session": "valid",
		},
	}
	return user, fs.admitted(r, claims), nil
}

// admitted is allows, with a security event when a verified user lacks
// what require asks for.
func (fs *FlaskSession) admitted(r *http.Request, c flaskcookie.Claims) bool {
	if fs.allows(c) {
		return true
	}
	if c.UserID != "" {
		security.Log(fs.security, "flask_session", security.RoleDenied, "require "+fs.Require.String()+" not met", r,
			security.Fields{UserID: c.UserID})
	}
	return false
}

// sessionWithoutUser is a valid session that names no user: with whoami
// it has no role, whatever the cookie says.
var sessionWithoutUser = map[string]string{"role": "", "session": "valid"}

// authenticateWithWhoami finishes Authenticate for a verified cookie
// when the roles come from the app.
func (fs *FlaskSession) authenticateWithWhoami(w http.ResponseWriter, r *http.Request, value string, claims flaskcookie.Claims) (caddyauth.User, bool, error) {
	if claims.UserID == "" {
		fs.IdentityHeaders.set(r.Header, "", "", true)
		return caddyauth.User{Metadata: sessionWithoutUser}, fs.allows(flaskcookie.Claims{}), nil
	}
	a, err := fs.whoami.lookup(r, value, claims.UserID)
	if err != nil {
		fs.IdentityHeaders.set(r.Header, "", "", false)
		if w != nil {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "503 Service Unavailable: the edge cannot check this session with the app right now; try again shortly",
				http.StatusServiceUnavailable)
		}
		return caddyauth.User{}, false, err
	}
	if a.refused {
		fs.IdentityHeaders.set(r.Header, "", "", false)
		return caddyauth.User{Metadata: anonymousInvalid}, fs.Require == nil, nil
	}
	claims.Roles = a.roles
	fs.IdentityHeaders.set(r.Header, claims.UserID, a.metadata["role"], true)
	fs.leaveIdentity(r, value, claims.UserID, a.metadata["role"])
	return caddyauth.User{ID: claims.UserID, Metadata: a.metadata}, fs.admitted(r, claims), nil
}

func (fs *FlaskSession) allows(c flaskcookie.Claims) bool {
	r := fs.Require
	if r == nil {
		return true
	}
	if c.UserID == "" {
		return false
	}
	if len(r.Roles) == 0 {
		return true
	}
	for _, want := range r.Roles {
		for _, have := range c.Roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

// cookieValue finds the cookie as Werkzeug does, so the edge and Flask
// read the same one: the first pair named name across Cookie headers,
// surrounding quotes removed. An empty value is no cookie, as in Flask.
// Unlike http.Request.Cookie it does not skip pairs Go deems invalid,
// which would let a second, different cookie be the one the edge sees.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(pair, "=")
			if strings.TrimSpace(k) != name {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, v != ""
		}
	}
	return "", false
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// Interface guards
var (
	_ caddy.Provisioner       = (*FlaskSession)(nil)
	_ caddy.CleanerUpper      = (*FlaskSession)(nil)
	_ caddy.Validator         = (*FlaskSession)(nil)
	_ caddyauth.Authenticator = (*FlaskSession)(nil)
)

// String is the requirement as the Caddyfile writes it.
func (rq *Require) String() string {
	if len(rq.Roles) > 0 {
		return "role " + strings.Join(rq.Roles, " ")
	}
	return "authenticated"
}
