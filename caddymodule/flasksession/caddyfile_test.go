package flasksession

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	// The adapter and the handlers the golden files use.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// TestCaddyfileAdapt checks the golden files in testdata/.
func TestCaddyfileAdapt(t *testing.T) { testenv.AdaptGolden(t) }

func TestCaddyfileErrorsSayWhereAndWhatToWrite(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"no block", `flask_session`, "needs secret_key"},
		{"inline argument", `flask_session mykey`, "takes no arguments besides a matcher"},
		{"unknown subdirective", "flask_session {\n secret_key k\n secret k\n}", `unknown subdirective on the line after secret_key (not shown`},
		{"identity_headers with one name", "flask_session {\n secret_key k\n identity_headers X-User\n}", "identity_headers takes <user_header> <role_header> or off"},
		{"secret_key without a key", "flask_session {\n secret_key\n}", "secret_key needs the app's SECRET_KEY"},
		{"secret_key twice", "flask_session {\n secret_key a\n secret_key b\n}", "list fallback keys on one line"},
		{"bad duration", "flask_session {\n secret_key k\n max_age forever\n}", `max_age "forever" is not a duration`},
		{"max_age without value", "flask_session {\n secret_key k\n max_age\n}", "max_age takes exactly one duration"},
		{"clock_skew not a duration", "flask_session {\n secret_key k\n clock_skew soon\n}", `clock_skew "soon" is not a duration`},
		{"clock_skew without value", "flask_session {\n secret_key k\n clock_skew\n}", "clock_skew takes exactly one duration, e.g. clock_skew 5s"},
		{"clock_skew two values", "flask_session {\n secret_key k\n clock_skew 1s 2s\n}", "clock_skew takes exactly one duration"},
		{"cookie_name with two values", "flask_session {\n secret_key k\n cookie_name a b\n}", "cookie_name takes exactly one value, e.g. cookie_name session"},
		{"require nothing", "flask_session {\n secret_key k\n require\n}", "require takes 'authenticated' or 'role <role...>'"},
		{"require role without a role", "flask_session {\n secret_key k\n require role\n}", "require role needs at least one role"},
		{"require typo", "flask_session {\n secret_key k\n require admin\n}", "require takes 'authenticated'"},
		{"require twice", "flask_session {\n secret_key k\n require authenticated\n require role a\n}", "require given twice"},
		{"whoami without a URL", "flask_session {\n secret_key k\n whoami\n}", "whoami needs the URL of the app's whoami endpoint"},
		{"whoami twice", "flask_session {\n secret_key k\n whoami http://a/w\n whoami http://b/w\n}", "list every URL on one line"},
		{"whoami_ttl not a duration", "flask_session {\n secret_key k\n whoami http://a/w\n whoami_ttl soon\n}", `whoami_ttl "soon" is not a duration`},
		{"whoami_timeout two values", "flask_session {\n secret_key k\n whoami http://a/w\n whoami_timeout 1s 2s\n}", "whoami_timeout takes exactly one duration"},
		{"whoami_transport without http", "flask_session {\n secret_key k\n whoami https://a/w\n whoami_transport {\n  tls\n }\n}", "whoami_transport takes http and a block of reverse_proxy's TLS settings"},
		{"whoami_transport with keepalive", "flask_session {\n secret_key k\n whoami https://a/w\n whoami_transport http {\n  keepalive off\n }\n}", "whoami_transport http: keepalive is not taken here"},
		{"whoami_transport empty", "flask_session {\n secret_key k\n whoami https://a/w\n whoami_transport http\n}", "whoami_transport http has no TLS setting"},
		{"whoami_cache_size words", "flask_session {\n secret_key k\n whoami http://a/w\n whoami_cache_size lots\n}", `whoami_cache_size "lots" is not a number of entries`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fs FlaskSession
			err := fs.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("accepted: %+v", fs)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("error %q should contain %q and Testfile:<line>", err, tt.want)
			}
		})
	}
}

func TestCaddyfileFullBlock(t *testing.T) {
	var fs FlaskSession
	err := fs.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`flask_session {
		secret_key {env.FLASK_SECRET_KEY} old-key
		cookie_name app_session
		max_age 12h
		clock_skew 2s
		user_key uid
		role_key roles
		require role admin ops
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(fs.SecretKeys, " ") != "{env.FLASK_SECRET_KEY} old-key" || fs.CookieName != "app_session" ||
		fs.MaxAge != caddy.Duration(12*time.Hour) || fs.ClockSkew == nil || *fs.ClockSkew != caddy.Duration(2*time.Second) || fs.UserKey != "uid" || fs.RoleKey != "roles" ||
		fs.Require == nil || strings.Join(fs.Require.Roles, " ") != "admin ops" || fs.Require.Authenticated {
		t.Fatalf("parsed %+v (require %+v)", fs, fs.Require)
	}
}

// The Caddyfile layer reads the syntax; the values are checked when the
// config loads, for Caddyfile and JSON configs alike, and no error
// quotes a key.
func TestCaddyfileLeavesValueChecksToLoad(t *testing.T) {
	const key = "a-literal-key-never-echoed"
	for _, tt := range []struct{ name, block, want string }{
		{"empty secret_key", "secret_key \"\"", "secret key 1 is empty"},
		{"empty fallback", "secret_key " + key + " \"\"", "secret key 2 is empty"},
		{"max_age too small", "secret_key " + key + "\n max_age 10ms", "under one second"},
		{"clock_skew negative", "secret_key " + key + "\n clock_skew -1s", "clock_skew -1s is negative"},
		{"cookie_name not a name", "secret_key " + key + "\n cookie_name \"a b\"", `cookie_name "a b" is not a cookie name`},
		{"whoami relative URL", "secret_key " + key + "\n whoami /api/whoami", `whoami URL "/api/whoami" is not an absolute http(s) URL`},
		{"whoami other scheme", "secret_key " + key + "\n whoami ws://127.0.0.1:5001/w", "not an absolute http(s) URL"},
		{"whoami fragment", "secret_key " + key + "\n whoami http://127.0.0.1:5001/w#me", "has a fragment"},
		{"whoami_ttl without whoami", "secret_key " + key + "\n whoami_ttl 1m", "whoami has no URL"},
		{"whoami_negative_ttl negative", "secret_key " + key + "\n whoami http://a/w\n whoami_negative_ttl -1s", "negative_ttl -1s is negative"},
		{"whoami_cache_size negative", "secret_key " + key + "\n whoami http://a/w\n whoami_cache_size -1", "cache_size -1 is negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var fs FlaskSession
			if err := fs.UnmarshalCaddyfile(caddyfile.NewTestDispenser("flask_session {\n " + tt.block + "\n}")); err != nil {
				t.Fatalf("adapting: %v", err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := fs.Provision(ctx)
			if err == nil {
				err = fs.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("load error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), key) {
				t.Fatalf("load error %q quotes the key", err)
			}
		})
	}
}
