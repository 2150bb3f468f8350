package flasksession

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/caddytls" // the CA pool sources

	"github.com/flaskedge/flaskedge/internal/flaskcookie"
)

const (
	testSecret = "whoami-test-secret"
	testEpoch  = 1700000000
)

// signCookie writes a Flask session cookie for payload (compact JSON),
// signed at testEpoch, as SecureCookieSessionInterface does.
func signCookie(t testing.TB, payload string) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	ts := make([]byte, 8)
	binary.BigEndian.PutUint64(ts, testEpoch)
	for len(ts) > 1 && ts[0] == 0 {
		ts = ts[1:]
	}
	signed := b64([]byte(payload)) + "." + b64(ts)
	m := hmac.New(sha1.New, flaskcookie.DeriveKey([]byte(testSecret)))
	m.Write([]byte(signed))
	return signed + "." + b64(m.Sum(nil))
}

// userCookie is the session of a Flask-Login user whose cookie says role.
func userCookie(t testing.TB, id, role string) string {
	return signCookie(t, fmt.Sprintf(`{"_user_id":%q,"role":%q}`, id, role))
}

// whoamiApp is a stand-in for the app's whoami endpoint: it answers with
// answer(r), counts requests and keeps the last one.
type whoamiApp struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	last     *http.Request
	answer   func(w http.ResponseWriter, r *http.Request)
}

func startWhoamiApp(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *whoamiApp {
	t.Helper()
	app := &whoamiApp{answer: answer}
	app.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app.requests.Add(1)
		app.mu.Lock()
		app.last = r
		app.mu.Unlock()
		app.answer(w, r)
	}))
	t.Cleanup(app.Close)
	return app
}

// answerJSON answers every request with status and body.
func answerJSON(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// testClock is the provider's clock in these tests; advance moves it.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// withWhoami provisions a provider that asks wc, cleans it up at the end
// of the test, and gives it a clock that starts at testEpoch.
func withWhoami(t *testing.T, fs FlaskSession, wc Whoami) (*FlaskSession, *testClock) {
	t.Helper()
	fs.SecretKeys = []string{testSecret}
	fs.Whoami = &wc
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := fs.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Cleanup() })
	if err := fs.Validate(); err != nil {
		t.Fatal(err)
	}
	clock := new(testClock)
	old := now
	now = func() time.Time { return time.Unix(testEpoch, clock.offset.Load()) }
	t.Cleanup(func() { now = old })
	return &fs, clock
}

func authenticate(t *testing.T, fs *FlaskSession, cookie string) (caddyauth.User, bool, error) {
	t.Helper()
	return fs.Authenticate(httptest.NewRecorder(), requestWithCookie(cookie))
}

func TestWhoamiRoleReplacesTheCookieRole(t *testing.T) {
	app := startWhoamiApp(t, answerJSON(200, `{"id":"alice","role":"admin","worker":"w1"}`))
	cookie := userCookie(t, "alice", "user")

	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}})
	r := requestWithCookie(cookie)
	user, ok, err := fs.Authenticate(httptest.NewRecorder(), r)
	if err != nil || !ok || user.ID != "alice" || user.Metadata["role"] != "admin" || user.Metadata["session"] != "valid" {
		t.Fatalf("user %+v ok=%v err=%v, want alice as admin", user, ok, err)
	}
	if got := r.Header.Get("X-Auth-Role"); got != "admin" {
		t.Fatalf("identity header X-Auth-Role %q, want the app's admin", got)
	}

	// require decides on the app's role, not the cookie's.
	strict, _ := withWhoami(t, FlaskSession{Require: &Require{Roles: []string{"user"}}}, Whoami{URLs: []string{app.URL}, TTL: caddy.Duration(time.Minute)})
	if _, ok, _ := authenticate(t, strict, cookie); ok {
		t.Fatal("require role user passed on the cookie's role; the app says admin")
	}
}

func TestWhoamiForwardsOnlyTheSessionCookie(t *testing.T) {
	app := startWhoamiApp(t, answerJSON(200, `{"id":"alice","role":"admin"}`))
	cookie := userCookie(t, "alice", "user")
	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL + "/api/whoami?x=1"}})

	r := httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil)
	r.Header.Set("Cookie", "theme=dark; session="+cookie+"; remember_token=r")
	for name, value := range map[string]string{
		"Authorization": "Bearer t", "X-Auth-User-Id": "mallory", "X-Auth-Role": "admin",
		"X-Forwarded-For": "10.0.0.1", "Origin": "http://evil.example", "User-Agent": "browser", "Accept-Language": "fr",
	} {
		r.Header.Set(name, value)
	}
	if _, _, err := fs.Authenticate(httptest.NewRecorder(), r); err != nil {
		t.Fatal(err)
	}
	got := app.last
	if got.Method != http.MethodGet || got.URL.RequestURI() != "/api/whoami?x=1" {
		t.Fatalf("subrequest %s %s", got.Method, got.URL)
	}
	want := http.Header{
		"Cookie":          {"session=" + cookie},
		"Accept":          {"application/json"},
		"User-Agent":      {"flaskedge-whoami"},
		"Accept-Encoding": {"gzip"}, // Go's transport
	}
	if fmt.Sprint(got.Header) != fmt.Sprint(want) {
		t.Fatalf("subrequest headers\n%v\nwant only\n%v", got.Header, want)
	}
}

func TestWhoamiAnswersAreCachedForTheTTL(t *testing.T) {
	role := atomic.Value{}
	role.Store("admin")
	app := startWhoamiApp(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":"alice","role":%q}`, role.Load())
	})
	fs, clock := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}, TTL: caddy.Duration(30 * time.Second)})
	cookie := userCookie(t, "alice", "user")

	for range 3 {
		if user, _, err := authenticate(t, fs, cookie); err != nil || user.Metadata["role"] != "admin" {
			t.Fatalf("%+v %v", user, err)
		}
	}
	if n := app.requests.Load(); n != 1 {
		t.Fatalf("%d subrequests for one session, want 1 (then hits)", n)
	}

	role.Store("user") // demoted in the app's database
	clock.advance(29 * time.Second)
	if user, _, _ := authenticate(t, fs, cookie); user.Metadata["role"] != "admin" || app.requests.Load() != 1 {
		t.Fatalf("within the TTL: role %q after %d subrequests, want the cached admin", user.Metadata["role"], app.requests.Load())
	}
	clock.advance(time.Second)
	if user, _, _ := authenticate(t, fs, cookie); user.Metadata["role"] != "user" || app.requests.Load() != 2 {
		t.Fatalf("at the TTL: role %q after %d subrequests, want the app's new role from a second lookup", user.Metadata["role"], app.requests.Load())
	}
}

func TestWhoamiRefusalsAreCachedForTheNegativeTTL(t *testing.T) {
	status := atomic.Int64{}
	status.Store(401)
	app := startWhoamiApp(t, func(w http.ResponseWriter, r *http.Request) {
		if status.Load() == 401 {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"id":null,"role":null}`)
			return
		}
		fmt.Fprint(w, `{"id":"alice","role":"user"}`)
	})
	fs, clock := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}, NegativeTTL: caddy.Duration(5 * time.Second)})
	cookie := userCookie(t, "alice", "admin")
	r := spoofed(cookie)

	user, ok, err := fs.Authenticate(httptest.NewRecorder(), r)
	if err != nil || !ok || user.ID != "" || user.Metadata["session"] != "invalid" || user.Metadata["role"] != "" {
		t.Fatalf("a session the app refuses: %+v ok=%v err=%v, want anonymous", user, ok, err)
	}
	if len(r.Header) != 1 { // Cookie only: the spoofed identity headers are gone
		t.Fatalf("headers after a refusal: %v", r.Header)
	}

	status.Store(200) // re-enabled
	clock.advance(4 * time.Second)
	if user, _, _ := authenticate(t, fs, cookie); user.ID != "" || app.requests.Load() != 1 {
		t.Fatalf("within the negative TTL: %+v after %d subrequests", user, app.requests.Load())
	}
	clock.advance(time.Second)
	if user, _, _ := authenticate(t, fs, cookie); user.ID != "alice" || user.Metadata["role"] != "user" || app.requests.Load() != 2 {
		t.Fatalf("after the negative TTL: %+v after %d subrequests", user, app.requests.Load())
	}
}

func TestWhoamiIsNotAskedWithoutAUser(t *testing.T) {
	app := startWhoamiApp(t, answerJSON(200, `{"id":"alice","role":"admin"}`))
	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}})

	for name, cookie := range map[string]string{
		"no cookie":                 "",
		"forged cookie":             userCookie(t, "alice", "admin")[:40] + "x.y.z",
		"anonymous, role in cookie": signCookie(t, `{"csrf_token":"c","role":"admin"}`),
	} {
		user, ok, err := authenticate(t, fs, cookie)
		if err != nil || !ok || user.ID != "" || user.Metadata["role"] != "" {
			t.Errorf("%s: %+v ok=%v err=%v, want anonymous without a role", name, user, ok, err)
		}
	}
	if n := app.requests.Load(); n != 0 {
		t.Fatalf("%d subrequests for sessions without a user", n)
	}
}

func TestWhoamiCollapsesConcurrentMissesIntoOneSubrequest(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	app := startWhoamiApp(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, `{"id":"alice","role":"admin"}`)
	})
	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}})
	cookie := userCookie(t, "alice", "user")

	const clients = 50
	var wg sync.WaitGroup
	roles := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			user, _, err := authenticate(t, fs, cookie)
			if err != nil {
				t.Error(err)
			}
			roles[i] = user.Metadata["role"]
		})
	}
	<-arrived
	// Let the other 49 reach the lookup while the first subrequest is
	// held; each that does waits for it rather than asking again.
	for range 1000 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := app.requests.Load(); n != 1 {
		t.Fatalf("%d clients missing at once sent %d subrequests, want 1", clients, n)
	}
	if slices.ContainsFunc(roles, func(r string) bool { return r != "admin" }) {
		t.Fatalf("roles %q", roles)
	}
}

func TestWhoamiCacheIsBoundedLeastRecentlyUsedFirst(t *testing.T) {
	app := startWhoamiApp(t, func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("session")
		v, _ := flaskcookie.NewVerifier(flaskcookie.Options{SecretKeys: [][]byte{[]byte(testSecret)}, MaxAge: time.Hour})
		payload, _ := v.Verify(c.Value, time.Unix(testEpoch, 0))
		claims, _ := flaskcookie.Decode(payload, "_user_id", "role")
		fmt.Fprintf(w, `{"id":%q,"role":"user"}`, claims.UserID)
	})
	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}, CacheSize: 2})
	a, b, c := userCookie(t, "a", "x"), userCookie(t, "b", "x"), userCookie(t, "c", "x")

	for _, step := range []struct {
		cookie string
		total  int64
	}{
		{a, 1}, {b, 2}, {a, 2}, // a is now the most recently used
		{c, 3},         // evicts b
		{a, 3}, {c, 3}, // still cached
		{b, 4}, // asked again
	} {
		if user, _, err := authenticate(t, fs, step.cookie); err != nil || user.Metadata["role"] != "user" {
			t.Fatalf("%+v %v", user, err)
		}
		if n := app.requests.Load(); n != step.total {
			t.Fatalf("after the session of %q: %d subrequests, want %d", step.cookie[:12], n, step.total)
		}
	}
	if n := fs.whoami.cache.Len(); n != 2 {
		t.Fatalf("cache holds %d answers, bound is 2", n)
	}
}

// serveThroughCaddyAuth runs the provider inside Caddy's authentication
// handler, as the directive does, and reports what the client got.
func serveThroughCaddyAuth(t *testing.T, fs *FlaskSession, cookie string) (status int, body string, nextRan bool, err error, repl *caddy.Replacer) {
	t.Helper()
	auth := caddyauth.Authentication{Providers: map[string]caddyauth.Authenticator{"flask_session": fs}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := auth.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	auth.Providers = map[string]caddyauth.Authenticator{"flask_session": fs}
	repl = caddy.NewReplacer()
	r := requestWithCookie(cookie)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	err = auth.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		nextRan = true
		return nil
	}))
	return w.Code, w.Body.String(), nextRan, err, repl
}

func TestWhoamiFailuresFailClosedWith503(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	tests := []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request)
		url    string // instead of the app
		reason string
	}{
		{name: "unreachable", url: dead.URL, reason: "unreachable"},
		{name: "timeout", answer: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}, reason: "no answer within 100ms"},
		{name: "500", answer: answerJSON(500, `{"error":"db down"}`), reason: "answered 500 Internal Server Error"},
		{name: "502", answer: answerJSON(502, ``), reason: "answered 502"},
		{name: "404", answer: answerJSON(404, `not found`), reason: "answered 404"},
		{name: "redirect to a login page", answer: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/login?next=/api/whoami", http.StatusFound)
		}, reason: "a redirect"},
		{name: "not JSON", answer: answerJSON(200, `<html>hello</html>`), reason: "not a JSON object"},
		{name: "truncated JSON", answer: answerJSON(200, `{"id":"alice","role":"adm`), reason: "not JSON"},
		{name: "JSON list", answer: answerJSON(200, `["alice","admin"]`), reason: "not a JSON object"},
		{name: "no id", answer: answerJSON(200, `{"role":"admin"}`), reason: `no "id"`},
		{name: "id an object", answer: answerJSON(200, `{"id":{"n":1},"role":"admin"}`), reason: `"id" is an object`},
		{name: "role a number", answer: answerJSON(200, `{"id":"alice","role":1}`), reason: `"role" is a number`},
		{name: "roles with a number", answer: answerJSON(200, `{"id":"alice","roles":["a",1]}`), reason: `"roles" is a list with a non-string`},
		{name: "huge answer", answer: answerJSON(200, `{"id":"alice","role":"`+strings.Repeat("a", maxWhoamiBody)+`"}`), reason: "answer over 65536 bytes"},
	}
	cookie := userCookie(t, "alice", "admin")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				u = startWhoamiApp(t, tt.answer).URL
			}
			fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{u}, Timeout: caddy.Duration(100 * time.Millisecond)})
			status, body, nextRan, err, repl := serveThroughCaddyAuth(t, fs, cookie)
			if status != http.StatusServiceUnavailable || nextRan {
				t.Fatalf("client got %d (next handler ran: %v), want 503 and nothing forwarded", status, nextRan)
			}
			if !strings.Contains(body, "cannot check this session") {
				t.Errorf("body %q", body)
			}
			// caddyauth turns every failure into its 401 error; the
			// client already has the 503. The error says why.
			var he caddyhttp.HandlerError
			if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
				t.Errorf("caddyauth returned %v", err)
			}
			msg, _ := repl.GetString("http.auth.flask_session.error")
			if !strings.Contains(msg, "whoami lookup failed, answered 503") || !strings.Contains(msg, tt.reason) || !strings.Contains(msg, "GET "+u) {
				t.Errorf("provider error %q should name the endpoint and say %q", msg, tt.reason)
			}
			if strings.Contains(msg, cookie) || strings.Contains(msg, testSecret) {
				t.Errorf("provider error %q holds the cookie or the secret", msg)
			}
		})
	}
}

func TestWhoamiFailuresAreNotCached(t *testing.T) {
	up := atomic.Bool{}
	app := startWhoamiApp(t, func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, `{"id":"alice","role":"admin"}`)
	})
	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}})
	cookie := userCookie(t, "alice", "user")
	if _, ok, err := authenticate(t, fs, cookie); ok || err == nil {
		t.Fatalf("ok=%v err=%v while the app is down", ok, err)
	}
	up.Store(true)
	if user, ok, err := authenticate(t, fs, cookie); !ok || err != nil || user.Metadata["role"] != "admin" {
		t.Fatalf("once the app is back: %+v ok=%v err=%v", user, ok, err)
	}
}

func TestWhoamiTriesEachURLInTurn(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	failing := startWhoamiApp(t, answerJSON(500, ``))
	app := startWhoamiApp(t, answerJSON(200, `{"id":"alice","role":"admin"}`))
	cookie := userCookie(t, "alice", "user")

	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{dead.URL, failing.URL, app.URL}})
	if user, _, err := authenticate(t, fs, cookie); err != nil || user.Metadata["role"] != "admin" {
		t.Fatalf("with the third URL answering: %+v %v", user, err)
	}

	fs, _ = withWhoami(t, FlaskSession{}, Whoami{URLs: []string{dead.URL, failing.URL}})
	_, _, err := authenticate(t, fs, cookie)
	if err == nil || !strings.Contains(err.Error(), "GET "+dead.URL+": unreachable") || !strings.Contains(err.Error(), "GET "+failing.URL+": answered 500") {
		t.Fatalf("with no URL answering: %v, want each URL's failure", err)
	}
}

func TestWhoamiIDMismatchIsAnonymousAndASecurityEvent(t *testing.T) {
	app := startWhoamiApp(t, answerJSON(200, `{"id":"bob","role":"admin"}`))
	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}})
	core, logs := observer.New(zap.InfoLevel)
	fs.whoami.security = zap.New(core)
	cookie := userCookie(t, "alice", "user")

	user, ok, err := authenticate(t, fs, cookie)
	if err != nil || !ok || user.ID != "" || user.Metadata["role"] != "" || user.Metadata["session"] != "invalid" {
		t.Fatalf("%+v ok=%v err=%v, want anonymous", user, ok, err)
	}
	authenticate(t, fs, cookie) // cached: no second event
	events := logs.FilterMessage("security event").All()
	if len(events) != 1 {
		t.Fatalf("%d security events, want 1", len(events))
	}
	fields := events[0].ContextMap()
	if fields["event"] != "cookie_invalid" || fields["user_id"] != "alice" || fields["module"] != "flask_session" ||
		!strings.Contains(fields["reason"].(string), `whoami answered for user "bob", the session is user "alice"`) {
		t.Fatalf("event %v", fields)
	}
	if strings.Contains(fmt.Sprint(fields), cookie) {
		t.Fatal("the security event holds the cookie")
	}
}

func TestParseWhoamiAnswers(t *testing.T) {
	tests := []struct {
		body    string
		roles   []string
		refused bool
	}{
		{`{"id":"7","role":"admin"}`, []string{"admin"}, false},
		{`{"id":7,"role":"admin"}`, []string{"admin"}, false}, // an integer id as str() prints it
		{`{"id":"7","roles":["admin","ops"]}`, []string{"admin", "ops"}, false},
		{`{"id":"7","roles":"ops"}`, []string{"ops"}, false},
		{`{"id":"7","role":"admin","roles":["ops","admin"]}`, []string{"admin", "ops"}, false},
		{`{"id":"7"}`, nil, false},
		{`{"id":"7","role":null,"worker":"w1"}`, nil, false},
		{` {"id":"7","role":[]} `, nil, false},
		{`{"id":null,"role":"admin"}`, nil, true},
		{`{"id":"8","role":"admin"}`, nil, true},
		{`{"id":"07","role":"admin"}`, nil, true},
	}
	for _, tt := range tests {
		a, err := parseWhoami([]byte(tt.body), "7")
		if err != nil {
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		if a.refused != tt.refused || !slices.Equal(a.roles, tt.roles) {
			t.Errorf("%s: refused=%v roles=%q, want %v %q", tt.body, a.refused, a.roles, tt.refused, tt.roles)
		}
	}
	for _, body := range []string{`{"id":7.5}`, `{"id":1e3}`, `{"id":true}`, `{"id":"7","role":{"a":1}}`, `{"id":"7","roles":[null]}`,
		// roles X-Auth-Role would not carry as the edge read them
		`{"id":"7","role":"user,admin"}`, `{"id":"7","roles":["ops","a\r\nb"]}`, `{"id":"7","role":" admin"}`,
		// read by encoding/json as U+FFFD: another role than the app's
		`{"id":"7","role":"\udc00"}`, `{"id":"7","roles":["a","\ud800x"]}`} {
		if _, err := parseWhoami([]byte(body), "7"); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
}

func TestWhoamiURLsFromPlaceholders(t *testing.T) {
	app := startWhoamiApp(t, answerJSON(200, `{"id":"alice","role":"admin"}`))
	t.Setenv("WHOAMI_TEST_URL", app.URL+"/api/whoami")
	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{"{env.WHOAMI_TEST_URL}"}})
	if user, _, err := authenticate(t, fs, userCookie(t, "alice", "user")); err != nil || user.Metadata["role"] != "admin" {
		t.Fatalf("%+v %v", user, err)
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for urls, want := range map[string]string{
		"{http.request.host}/whoami": "unrecognized placeholder",
		"{env.WHOAMI_TEST_UNSET}":    "{env.WHOAMI_TEST_UNSET} is empty",
		"ftp://127.0.0.1/whoami":     "not an absolute http(s) URL",
	} {
		fs := FlaskSession{SecretKeys: []string{testSecret}, Whoami: &Whoami{URLs: []string{urls}}}
		err := fs.Provision(ctx)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", urls, err, want)
		}
		_ = fs.Cleanup()
	}
}

// A reload provisions the new config before cleaning up the old one;
// with the same whoami settings the cache carries over.
func TestWhoamiCacheSurvivesAReload(t *testing.T) {
	app := startWhoamiApp(t, answerJSON(200, `{"id":"alice","role":"admin"}`))
	cookie := userCookie(t, "alice", "user")
	wc := Whoami{URLs: []string{app.URL}}

	old, _ := withWhoami(t, FlaskSession{}, wc)
	authenticate(t, old, cookie)
	reloaded, _ := withWhoami(t, FlaskSession{Require: &Require{Authenticated: true}}, wc)
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if user, _, err := authenticate(t, reloaded, cookie); err != nil || user.Metadata["role"] != "admin" || app.requests.Load() != 1 {
		t.Fatalf("after the reload: %+v %v, %d subrequests, want the cached answer", user, err, app.requests.Load())
	}

	changed := wc
	changed.TTL = caddy.Duration(time.Minute)
	other, _ := withWhoami(t, FlaskSession{}, changed)
	authenticate(t, other, cookie)
	if n := app.requests.Load(); n != 2 {
		t.Fatalf("a config with another TTL shared the cache (%d subrequests)", n)
	}

	_ = reloaded.Cleanup()
	if _, ok := whoamiPool.References(reloaded.whoami.poolKey); ok {
		t.Fatal("the cache outlived every config that used it")
	}
}

func TestWhoamiJSONSettingsAreChecked(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for want, wc := range map[string]Whoami{
		"whoami has no URL":          {},
		"whoami ttl -1s is negative": {URLs: []string{"http://a/w"}, TTL: caddy.Duration(-time.Second)},
		"cache_size -1 is negative":  {URLs: []string{"http://a/w"}, CacheSize: -1},
	} {
		fs := FlaskSession{SecretKeys: []string{testSecret}, Whoami: &wc}
		if err := fs.Provision(ctx); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", wc, err, want)
		}
		_ = fs.Cleanup()
	}
}

// An https whoami endpoint is trusted as whoami's TLS settings say, the
// same settings socketio_proxy takes: its CA verifies, the system's roots
// do not (fail closed), and an http URL beside TLS settings is refused.
func TestWhoamiOverHTTPSUsesTheConfiguredTrust(t *testing.T) {
	app := httptest.NewTLSServer(http.HandlerFunc(answerJSON(200, `{"id":"alice","role":"admin"}`)))
	t.Cleanup(app.Close)
	ca := base64.StdEncoding.EncodeToString(app.Certificate().Raw)
	trust := &reverseproxy.TLSConfig{CARaw: json.RawMessage(`{"provider":"inline","trusted_ca_certs":["` + ca + `"]}`)}
	cookie := userCookie(t, "alice", "user")

	fs, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}, TLS: trust})
	user, ok, err := authenticate(t, fs, cookie)
	if err != nil || !ok || user.Metadata["role"] != "admin" {
		t.Fatalf("user %+v ok=%v err=%v, want alice as admin from the https endpoint", user, ok, err)
	}

	untrusted, _ := withWhoami(t, FlaskSession{}, Whoami{URLs: []string{app.URL}, TTL: caddy.Duration(time.Minute)})
	if _, _, err := authenticate(t, untrusted, cookie); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("err %v, want a failed lookup naming the certificate error", err)
	}

	plain := FlaskSession{SecretKeys: []string{testSecret}, Whoami: &Whoami{URLs: []string{"http://127.0.0.1:5001/api/whoami"},
		TLS: &reverseproxy.TLSConfig{ServerName: "app.internal"}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err = plain.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "whoami URL http://127.0.0.1:5001/api/whoami is plain http but whoami has TLS settings; write it https://") {
		t.Fatalf("err %v, want the plain URL refused", err)
	}
}
