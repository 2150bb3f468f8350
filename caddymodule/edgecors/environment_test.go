package edgecors

import (
	"strings"
	"testing"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// Tests see an empty environment unless they give one with withEnv, so
// an APP_ENV set on the machine cannot change their outcome.
func TestMain(m *testing.M) {
	lookupEnv = func(string) (string, bool) { return "", false }
	// The run fails if a goroutine a test started (a handler, a test
	// server's connection) is still running once the tests are over.
	testenv.VerifyTestMain(m)
}

func withEnv(t *testing.T, env map[string]string) {
	t.Helper()
	saved := lookupEnv
	lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	t.Cleanup(func() { lookupEnv = saved })
}

func TestEnvironmentComesFromConfigThenAPPENVThenFLASKENV(t *testing.T) {
	for _, tc := range []struct {
		name, configured  string
		env               map[string]string
		wantEnv, wantFrom string
	}{
		{"config wins", "staging", map[string]string{"APP_ENV": "production"}, "staging", "environment"},
		{"APP_ENV before FLASK_ENV", "", map[string]string{"APP_ENV": "Production ", "FLASK_ENV": "development"}, "production", "APP_ENV"},
		{"FLASK_ENV", "", map[string]string{"FLASK_ENV": "development"}, "development", "FLASK_ENV"},
		{"blank APP_ENV is unset", "", map[string]string{"APP_ENV": " ", "FLASK_ENV": "development"}, "development", "FLASK_ENV"},
		{"none", "", nil, "", ""},
	} {
		withEnv(t, tc.env)
		env, from := resolveEnvironment(tc.configured)
		if env != tc.wantEnv || from != tc.wantFrom {
			t.Errorf("%s: got %q from %q, want %q from %q", tc.name, env, from, tc.wantEnv, tc.wantFrom)
		}
	}
}

func TestProductionRefusesHTTPLoopbackAndStar(t *testing.T) {
	for _, tc := range []struct{ origin, want string }{
		{"http://app.example.com", `environment production refuses http origin "http://app.example.com"; serve the page over https and write "https://app.example.com"`},
		{"http://app.example.com:8080", `write "https://app.example.com:8080"`},
		{"https://localhost:5000", `refuses loopback origin "https://localhost:5000"`},
		{"https://dev.localhost", `refuses loopback origin`},
		{"https://127.0.0.2", `refuses loopback origin`},
		{"https://[::1]:5000", `refuses loopback origin`},
		{"*", `environment production refuses origin "*"`},
	} {
		err := provisionOnly(t, &Handler{Origins: []string{tc.origin}, Environment: production})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v\nwant it to contain %s", tc.origin, err, tc.want)
		}
	}
	if err := provisionOnly(t, &Handler{Origins: []string{"https://app.example.com", "https://*.example.com"}, Environment: production}); err != nil {
		t.Errorf("https origins refused in production: %v", err)
	}
}

func TestProductionFromAPPENVAppliesWithoutConfig(t *testing.T) {
	withEnv(t, map[string]string{"APP_ENV": "production"})
	err := provisionOnly(t, &Handler{Origins: []string{"http://localhost:5000"}})
	if err == nil || !strings.Contains(err.Error(), "environment production refuses") {
		t.Errorf("error %v", err)
	}
}

func TestOtherStagesAcceptLocalOrigins(t *testing.T) {
	for _, env := range []string{development, staging, ""} {
		if err := provisionOnly(t, &Handler{Origins: []string{"http://localhost:5000"}, Environment: env}); err != nil {
			t.Errorf("%q: %v", env, err)
		}
	}
}

func TestUnknownEnvironmentSaysWhereItCameFrom(t *testing.T) {
	withEnv(t, map[string]string{"APP_ENV": "prod"})
	err := provisionOnly(t, &Handler{Origins: []string{"https://a.example.com"}})
	if err == nil || !strings.Contains(err.Error(), `environment "prod" (from APP_ENV) is not one of development, staging, production`) {
		t.Errorf("error %v", err)
	}
}

func TestAnyLoopbackPortAllowsTheLoopbackFamilyOnAnyPort(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{AnyLoopbackPort: true, Environment: development})
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"http://localhost:5173", true},
		{"https://localhost:3000", true},
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:5000", true},
		{"http://localhost", true},
		{"https://127.0.0.1", true},
		{"http://LOCALHOST:5173", true},
		{"http://localhost:65535", true},
		{"http://localhost:65536", false},
		{"http://localhost:05173", false},
		{"http://localhost:", false},
		{"http://localhost:0", false},
		{"http://localhost.evil.com", false},
		{"http://localhost:5173.evil.com", false},
		{"http://localhostx:5173", false},
		{"http://127.0.0.10:80", false},
		{"http://127.0.0.1.evil.com", false},
		{"http://[::1]x", false},
		{"http://192.168.1.10:5173", false},
		{"ws://localhost:5173", false},
	} {
		if _, got := h.origins.allow(tc.origin); got != tc.want {
			t.Errorf("allow(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}

func TestAnyLoopbackPortIsRefusedOutsideDevelopment(t *testing.T) {
	for _, env := range []string{"", staging, production} {
		err := provisionOnly(t, &Handler{Origins: []string{"https://app.example.com"}, AnyLoopbackPort: true, Environment: env})
		if err == nil || !strings.Contains(err.Error(), "any_loopback_port is for environment development only") {
			t.Errorf("%q: error %v", env, err)
		}
	}
}
