package flasksession

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/flaskedge/flaskedge/internal/security"
)

// vectors are the cookies real Flask wrote (testdata/flask_cookies/gen.py).
type vector struct {
	Name   string   `json:"name"`
	Cookie string   `json:"cookie"`
	Keys   []string `json:"keys"`
	Now    int64    `json:"now"`
	MaxAge int64    `json:"max_age"`
	Expect string   `json:"expect"`
	UserID string   `json:"user_id"`
	Roles  []string `json:"roles"`
}

func loadVectors(t *testing.T) map[string]vector {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/flask_cookies/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []vector }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]vector)
	for _, v := range f.Vectors {
		m[v.Name] = v
	}
	return m
}

// provisioned returns a provider as Caddy would run it, at the vector's "now".
func provisioned(t *testing.T, fs FlaskSession, at int64) *FlaskSession {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := fs.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fs.Validate(); err != nil {
		t.Fatal(err)
	}
	old := now
	now = func() time.Time { return time.Unix(at, 0) }
	t.Cleanup(func() { now = old })
	return &fs
}

func requestWithCookie(cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if cookie != "" {
		r.Header.Set("Cookie", "session="+cookie)
	}
	return r
}

// The vectors are what Flask itself decides, so the provider runs with
// Flask's strict clock (clock_skew 0) to agree with every one of them.
func TestAuthenticateFlaskVectors(t *testing.T) {
	strict := caddy.Duration(0)
	for name, v := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			fs := provisioned(t, FlaskSession{SecretKeys: v.Keys, ClockSkew: &strict}, v.Now)
			user, ok, err := fs.Authenticate(httptest.NewRecorder(), requestWithCookie(v.Cookie))
			if err != nil || !ok {
				t.Fatalf("without require every request continues; got ok=%v err=%v", ok, err)
			}
			wantSession := "invalid"
			if v.Expect == "valid" {
				wantSession = "valid"
			} else if v.Cookie == "" {
				wantSession = "none"
			}
			if got := user.Metadata["session"]; got != wantSession {
				t.Fatalf("session %q, want %q", got, wantSession)
			}
			if user.ID != v.UserID || user.Metadata["role"] != strings.Join(v.Roles, ",") {
				t.Fatalf("user %q role %q, want %q %q", user.ID, user.Metadata["role"], v.UserID, strings.Join(v.Roles, ","))
			}
		})
	}
}

func TestDefaultMaxAgeIsFlasks31Days(t *testing.T) {
	v := loadVectors(t)["plain"]
	fs := provisioned(t, FlaskSession{SecretKeys: v.Keys}, v.Now+31*24*3600+1)
	user, _, _ := fs.Authenticate(nil, requestWithCookie(v.Cookie))
	if user.Metadata["session"] != "invalid" {
		t.Fatalf("a cookie 31 days and 1 second old was %q", user.Metadata["session"])
	}
}

// Flask's own cookie signed one second after the edge's clock: accepted
// by default (clock_skew 5s), refused with clock_skew 0 as Flask does,
// refused when further ahead than clock_skew.
func TestClockSkewDefaultAcceptsAWorkerSlightlyAhead(t *testing.T) {
	v := loadVectors(t)["future_timestamp"]
	oneSecondAhead := v.Now
	zero, half := caddy.Duration(0), caddy.Duration(500*time.Millisecond)
	for _, tt := range []struct {
		name string
		skew *caddy.Duration
		at   int64
		want string
	}{
		{"default, 1s ahead", nil, oneSecondAhead, "valid"},
		{"default, 5s ahead", nil, oneSecondAhead - 4, "valid"},
		{"default, 10s ahead", nil, oneSecondAhead - 9, "invalid"},
		{"0 is strict, 1s ahead", &zero, oneSecondAhead, "invalid"},
		{"500ms, 1s ahead", &half, oneSecondAhead, "invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := provisioned(t, FlaskSession{SecretKeys: v.Keys, ClockSkew: tt.skew}, tt.at)
			user, _, _ := fs.Authenticate(nil, requestWithCookie(v.Cookie))
			if user.Metadata["session"] != tt.want {
				t.Fatalf("session %q, want %q", user.Metadata["session"], tt.want)
			}
		})
	}
}

func TestProvisionSetsTheDefaultClockSkewAndRefusesANegativeOne(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	fs := FlaskSession{SecretKeys: []string{"k"}}
	if err := fs.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if fs.ClockSkew == nil || time.Duration(*fs.ClockSkew) != 5*time.Second {
		t.Fatalf("default clock_skew %v, want 5s", fs.ClockSkew)
	}
	negative := caddy.Duration(-2 * time.Second)
	fs = FlaskSession{SecretKeys: []string{"k"}, ClockSkew: &negative}
	err := fs.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "clock_skew -2s is negative") || !strings.Contains(err.Error(), "or 0 to refuse") {
		t.Fatalf("error %v should name the value and say what to write", err)
	}
}

func TestRequire(t *testing.T) {
	vs := loadVectors(t)
	plain, anon := vs["plain"], vs["anonymous_session"] // role admin / no user
	tests := []struct {
		name    string
		require *Require
		cookie  string
		want    bool
		refusal string // the reason refusals_total counts, if any
	}{
		{"nothing required, no cookie", nil, "", true, ""},
		{"authenticated, no cookie", &Require{Authenticated: true}, "", false, security.ReasonAuth},
		{"authenticated, tampered cookie", &Require{Authenticated: true}, vs["payload_bit_flipped"].Cookie, false, security.ReasonAuth},
		{"authenticated, valid session without user", &Require{Authenticated: true}, anon.Cookie, false, security.ReasonAuth},
		{"authenticated, logged in", &Require{Authenticated: true}, plain.Cookie, true, ""},
		{"role held", &Require{Roles: []string{"editor", "admin"}}, plain.Cookie, true, ""},
		{"role not held", &Require{Roles: []string{"editor"}}, plain.Cookie, false, security.ReasonRole},
		{"role, no cookie", &Require{Roles: []string{"admin"}}, "", false, security.ReasonAuth},
		{"nothing required, tampered cookie", nil, vs["payload_bit_flipped"].Cookie, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := provisioned(t, FlaskSession{SecretKeys: plain.Keys, Require: tt.require}, plain.Now)
			before := security.RefusalCounts()
			_, ok, err := fs.Authenticate(nil, requestWithCookie(tt.cookie))
			if err != nil || ok != tt.want {
				t.Fatalf("ok=%v err=%v, want ok=%v", ok, err, tt.want)
			}
			after := security.RefusalCounts()
			for _, reason := range security.Reasons {
				want := uint64(0)
				if reason == tt.refusal {
					want = 1
				}
				if got := after[reason] - before[reason]; got != want {
					t.Errorf("refusals_total{reason=%q} moved by %d, want %d", reason, got, want)
				}
			}
		})
	}
}

// Provision registers caddy_socketio_refusals_total in the config's
// registry, which Caddy's /metrics serves.
func TestProvisionRegistersTheRefusalCounter(t *testing.T) {
	plain := loadVectors(t)["plain"]
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	fs := FlaskSession{SecretKeys: plain.Keys}
	if err := fs.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "caddy_socketio_refusals_total" {
			return
		}
	}
	t.Fatal("caddy_socketio_refusals_total is not in the config's registry")
}

// TestPlaceholdersThroughCaddyAuthentication runs the provider inside
// Caddy's own authentication handler, as the Caddyfile directive does,
// and reads the placeholders a route would use.
func TestPlaceholdersThroughCaddyAuthentication(t *testing.T) {
	vs := loadVectors(t)
	plain := vs["compressed"]
	serve := func(t *testing.T, require *Require, cookie string) (string, error) {
		fs := provisioned(t, FlaskSession{SecretKeys: plain.Keys, Require: require}, plain.Now)
		auth := caddyauth.Authentication{Providers: map[string]caddyauth.Authenticator{"flask_session": fs}}
		repl := caddy.NewReplacer()
		r := requestWithCookie(cookie)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		w := httptest.NewRecorder()
		err := auth.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			_, err := w.Write([]byte(repl.ReplaceAll("{http.auth.user.id}|{http.auth.user.role}|{http.auth.user.session}", "-")))
			return err
		}))
		return w.Body.String(), err
	}

	if body, err := serve(t, nil, plain.Cookie); err != nil || body != "7|admin,editor|valid" {
		t.Errorf("valid session: %q %v", body, err)
	}
	if body, err := serve(t, nil, ""); err != nil || body != "-|-|none" {
		t.Errorf("no cookie: %q %v", body, err)
	}
	if body, err := serve(t, nil, vs["wrong_key"].Cookie); err != nil || body != "-|-|invalid" {
		t.Errorf("forged cookie: %q %v", body, err)
	}
	_, err := serve(t, &Require{Roles: []string{"root"}}, plain.Cookie)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Errorf("missing role: %v, want a 401 handler error", err)
	}
}

func TestCookieIsReadAsWerkzeugReadsIt(t *testing.T) {
	tests := []struct {
		headers []string
		want    string
		found   bool
	}{
		{[]string{"session=abc"}, "abc", true},
		{[]string{"a=1; session=abc; b=2"}, "abc", true},
		{[]string{"session=first; session=second"}, "first", true},
		{[]string{"other=1", "session=abc"}, "abc", true},
		{[]string{`session="abc"`}, "abc", true},
		{[]string{" session = abc "}, "abc", true},
		{[]string{"session=bad value\"; session=abc"}, "bad value\"", true},
		{[]string{"session=; session=abc"}, "", false},
		{[]string{"xsession=abc; sessionx=abc"}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		h := http.Header{"Cookie": tt.headers}
		got, found := cookieValue(h, "session")
		if got != tt.want || found != tt.found {
			t.Errorf("%q: got %q %v, want %q %v", tt.headers, got, found, tt.want, tt.found)
		}
	}
}

func TestSecretKeysFromPlaceholders(t *testing.T) {
	v := loadVectors(t)["rotated_key_fallback"]
	t.Setenv("FLASK_SECRET_KEY", v.Keys[0])
	file := filepath.Join(t.TempDir(), "old_key")
	if err := os.WriteFile(file, []byte(v.Keys[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := provisioned(t, FlaskSession{SecretKeys: []string{"{env.FLASK_SECRET_KEY}", "{file." + file + "}"}}, v.Now)
	user, _, _ := fs.Authenticate(nil, requestWithCookie(v.Cookie))
	if user.ID != "42" {
		t.Fatalf("cookie signed with the fallback key from a file: %+v", user)
	}
}

func TestProvisionNamesTheEmptySecret(t *testing.T) {
	t.Setenv("FLASK_SECRET_KEY_UNSET_IN_TEST", "")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, keys := range [][]string{
		{"{env.FLASK_SECRET_KEY_UNSET_IN_TEST}"},
		{"ok", "{env.FLASK_SECRET_KEY_UNSET_IN_TEST}"},
	} {
		fs := FlaskSession{SecretKeys: keys}
		err := fs.Provision(ctx)
		if err == nil || !strings.Contains(err.Error(), "env.FLASK_SECRET_KEY_UNSET_IN_TEST") {
			t.Errorf("%q: error %v does not name the variable", keys, err)
		}
	}
	fs := FlaskSession{}
	if err := fs.Provision(ctx); err == nil {
		t.Error("no secret key accepted")
	}
}

func TestValidateRefusesEmptyRequire(t *testing.T) {
	for _, fs := range []FlaskSession{
		{CookieName: "session", Require: &Require{}},
		{CookieName: "session", Require: &Require{Roles: []string{""}}},
		{CookieName: "my session"},
	} {
		if err := fs.Validate(); err == nil {
			t.Errorf("%+v accepted", fs)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	raw, _ := os.ReadFile("../../testdata/flask_cookies/vectors.json")
	var f struct{ Vectors []vector }
	_ = json.Unmarshal(raw, &f)
	for _, v := range f.Vectors {
		if v.Name != "plain" && v.Name != "wrong_key" {
			continue
		}
		fs := FlaskSession{SecretKeys: v.Keys}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := fs.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		fs.logger = zap.NewNop() // measure the check, not the dev logger's output
		old := now
		now = func() time.Time { return time.Unix(v.Now, 0) }
		r := requestWithCookie(v.Cookie)
		b.Run(v.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fs.Authenticate(nil, r)
			}
		})
		now = old
		cancel()
	}
}

// A refused cookie and an unmet require are security events, named so a
// filter can tell them apart, and never carry the cookie.
func TestRefusalsAreSecurityEvents(t *testing.T) {
	vs := loadVectors(t)
	plain := vs["plain"]
	core, logs := observer.New(zapcore.InfoLevel)
	fs := provisioned(t, FlaskSession{SecretKeys: plain.Keys, Require: &Require{Roles: []string{"superuser"}}}, plain.Now)
	fs.security = zap.New(core)

	_, ok, _ := fs.Authenticate(httptest.NewRecorder(), requestWithCookie(plain.Cookie))
	if ok {
		t.Fatal("require role superuser admitted the plain user")
	}
	_, _, _ = fs.Authenticate(httptest.NewRecorder(), requestWithCookie(plain.Cookie+"x"))

	var events []string
	for _, e := range logs.All() {
		m := e.ContextMap()
		events = append(events, m["event"].(string)+":"+m["reason"].(string))
		for k, v := range m {
			if s, _ := v.(string); strings.Contains(s, plain.Cookie) {
				t.Errorf("field %s carries the cookie", k)
			}
		}
	}
	want := []string{"role_denied:require role superuser not met", "cookie_invalid:malformed"}
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", events, want)
	}
}
