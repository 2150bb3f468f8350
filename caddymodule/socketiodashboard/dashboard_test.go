package socketiodashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
	"github.com/flaskedge/flaskedge/internal/security"
)

// provision provisions and validates a module as a config load does and
// cleans it up when the test ends.
func provision(t *testing.T, m interface {
	caddy.Provisioner
	caddy.Validator
}) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	require.NoError(t, m.Provision(ctx))
	require.NoError(t, m.Validate())
	if c, ok := m.(caddy.CleanerUpper); ok {
		t.Cleanup(func() { _ = c.Cleanup() })
	}
}

// proxy is a socketio_proxy of the running config on enginePath, with
// one worker (never dialled) and a namespace rule.
func proxy(t *testing.T, enginePath, worker string) *socketioproxy.Handler {
	t.Helper()
	p := &socketioproxy.Handler{
		Path:       enginePath,
		Upstreams:  []string{worker},
		Namespaces: map[string]*socketioproxy.NamespaceRule{"/admin": {Access: socketioproxy.AccessRole, Roles: []string{"admin"}}},
	}
	provision(t, p)
	return p
}

// dashboard is a provisioned dashboard whose log the test reads.
func dashboard(t *testing.T, h *Handler) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	provision(t, h)
	core, logs := observer.New(zap.WarnLevel)
	h.logger = zap.New(core)
	return h, logs
}

// request makes a request as the edge's authentication leaves it: the
// verified user in the {http.auth.user.*} placeholders, when there is one.
func request(method, target, userID string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	repl := caddy.NewReplacer()
	if userID != "" {
		repl.Set("http.auth.user.id", userID)
		repl.Set("http.auth.user.role", "admin")
	}
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
}

func serve(h *Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		panic(err)
	}
	return w
}

func TestDashboardServesThePageAndItsFilesUnderItsPath(t *testing.T) {
	h, _ := dashboard(t, &Handler{})
	page := serve(h, request("GET", "/_edge/dashboard/", "root"))
	assert.Equal(t, http.StatusOK, page.Code)
	assert.Equal(t, "text/html; charset=utf-8", page.Header().Get("Content-Type"))
	assert.Contains(t, page.Body.String(), `<script src="dashboard.js" defer></script>`)
	assert.Contains(t, page.Header().Get("Content-Security-Policy"), "script-src 'self'")
	assert.Equal(t, "no-store", page.Header().Get("Cache-Control"))
	for path, typ := range map[string]string{"/_edge/dashboard/dashboard.js": "text/javascript", "/_edge/dashboard/dashboard.css": "text/css"} {
		res := serve(h, request("GET", path, "root"))
		assert.Equal(t, http.StatusOK, res.Code, path)
		assert.Contains(t, res.Header().Get("Content-Type"), typ)
		assert.NotEmpty(t, res.Body.String(), path)
	}
	head := serve(h, request("HEAD", "/_edge/dashboard/", "root"))
	assert.Equal(t, http.StatusOK, head.Code)
	assert.Empty(t, head.Body.String())

	res := serve(h, request("GET", "/_edge/dashboard?x=1", "root"))
	assert.Equal(t, http.StatusMovedPermanently, res.Code)
	assert.Equal(t, "/_edge/dashboard/?x=1", res.Header().Get("Location"))
	assert.Equal(t, http.StatusNotFound, serve(h, request("GET", "/_edge/dashboard/nope", "root")).Code)
	res = serve(h, request("POST", "/_edge/dashboard/", "root"))
	assert.Equal(t, http.StatusMethodNotAllowed, res.Code)
	assert.Equal(t, "GET, HEAD", res.Header().Get("Allow"))
	// Paths that only start like the dashboard's are the app's.
	assert.Equal(t, http.StatusTeapot, serve(h, request("GET", "/_edge/dashboards", "root")).Code)
	assert.Equal(t, http.StatusTeapot, serve(h, request("GET", "/", "root")).Code)

	ops, _ := dashboard(t, &Handler{Path: "/ops/"})
	assert.Equal(t, http.StatusOK, serve(ops, request("GET", "/ops/", "root")).Code)
	assert.Equal(t, http.StatusTeapot, serve(ops, request("GET", "/_edge/dashboard/", "root")).Code)
}

// The data are the snapshot of the socketio_proxy on engineio_path, never
// another path's, with the edge's refusals and security events.
func TestDashboardDataShowTheSelectedProxyAndTheEdgesEvents(t *testing.T) {
	proxy(t, "/dash-a/", "127.0.0.1:59201")
	proxy(t, "/dash-b/", "127.0.0.1:59202")
	h, logs := dashboard(t, &Handler{EngineIOPath: "/dash-a/"})
	security.LogClient(zap.NewNop(), "edge_cors", security.OriginRefused, "preflight refused",
		security.Client{IP: "198.51.100.7", Origin: "https://evil.example"}, security.Fields{})

	res := serve(h, request("GET", "/_edge/dashboard/data.json", "root"))
	require.Equal(t, http.StatusOK, res.Code)
	assert.Equal(t, "application/json", res.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", res.Header().Get("Cache-Control"))
	// The keys dashboard.js reads.
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(res.Body.Bytes(), &raw))
	for _, key := range []string{"time", "path", "serving", "sessions", "upstreams", "messages", "bytes", "refusals", "namespaces", "live_namespaces", "events", "recovery"} {
		assert.Contains(t, raw, key)
	}
	var recovery map[string]float64
	require.NoError(t, json.Unmarshal(raw["recovery"], &recovery))
	for _, key := range recoveryKeys(t) {
		assert.Contains(t, recovery, key, "data.json's recovery")
	}
	var data Data
	require.NoError(t, json.Unmarshal(res.Body.Bytes(), &data))
	assert.True(t, data.Serving)
	assert.Equal(t, "/dash-a/", data.Path)
	require.Len(t, data.Upstreams, 1)
	assert.Equal(t, "127.0.0.1:59201", data.Upstreams[0].Address)
	assert.True(t, data.Upstreams[0].Healthy)
	assert.Equal(t, []string{"admin"}, data.Namespaces["/admin"].Roles)
	for _, reason := range security.Reasons {
		assert.Contains(t, data.Refusals, reason)
	}
	require.NotEmpty(t, data.Events)
	assert.Equal(t, security.OriginRefused, data.Events[0].Event)
	assert.Equal(t, "https://evil.example", data.Events[0].Origin)
	assert.Zero(t, logs.Len(), "nothing to warn about: %v", logs.All())
}

// recoveryKeys are the JSON names of the snapshot's recovery member.
func recoveryKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	rt := reflect.TypeFor[socketioproxy.RecoveryCounts]()
	for i := range rt.NumField() {
		keys = append(keys, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	require.Len(t, keys, 7)
	return keys
}

// The page has a Recovery panel with a figure for every member of the
// snapshot's recovery, and dashboard.js fills each from the data: a
// member added to socketioproxy.RecoveryCounts and not shown fails here.
// (test/browser/dashboard_test.go sees the panel render in Chromium.)
func TestDashboardRecoveryPanelShowsEveryRecoveryFigure(t *testing.T) {
	h, _ := dashboard(t, &Handler{})
	page := serve(h, request("GET", "/_edge/dashboard/", "root")).Body.String()
	script := serve(h, request("GET", "/_edge/dashboard/dashboard.js", "root")).Body.String()
	assert.Contains(t, page, `<section id="recovery-section"`)
	assert.Contains(t, page, `<h2 id="recovery-title">Recovery`)
	for _, key := range recoveryKeys(t) {
		id := "recovery-" + strings.TrimSuffix(key, "_seconds")
		assert.Contains(t, page, `id="`+id+`"`, "no element for recovery.%s", key)
		assert.Regexp(t, `\b`+key+`\b|"`+key+`"`, script, "dashboard.js does not read recovery.%s", key)
	}
	assert.Contains(t, script, "renderRecovery(d.recovery)")
}

// A dashboard pointed at a path no socketio_proxy serves says so, on the
// page and once in the log.
func TestDashboardOfAPathNobodyServesSaysSo(t *testing.T) {
	h, logs := dashboard(t, &Handler{EngineIOPath: "/dash-nobody/"})
	for range 2 {
		var data Data
		res := serve(h, request("GET", "/_edge/dashboard/data.json", "root"))
		require.NoError(t, json.Unmarshal(res.Body.Bytes(), &data))
		assert.False(t, data.Serving)
		assert.Empty(t, data.Upstreams)
	}
	require.Equal(t, 1, logs.FilterMessageSnippet("engineio_path").Len(), "%v", logs.All())
}

// The handler checks no role, but says once when nothing in front of it
// verified a user: the dashboard is then public.
func TestDashboardWarnsOnceWhenNoAuthenticationIsInFront(t *testing.T) {
	h, logs := dashboard(t, &Handler{})
	assert.Equal(t, http.StatusOK, serve(h, request("GET", "/_edge/dashboard/", "root")).Code)
	assert.Zero(t, logs.Len())
	for range 3 {
		assert.Equal(t, http.StatusOK, serve(h, request("GET", "/_edge/dashboard/", "")).Code)
	}
	warnings := logs.FilterMessageSnippet("without a verified user")
	require.Equal(t, 1, warnings.Len(), "%v", logs.All())
	assert.Contains(t, warnings.All()[0].Message, "require role admin")
}

// The stream sends a sample at once and every interval after, and ends
// when the config that serves it is cleaned up, so the browser reconnects
// to the next one.
func TestDashboardEventsStreamUntilTheConfigGoes(t *testing.T) {
	defer func(d time.Duration) { streamInterval = d }(streamInterval)
	streamInterval = 20 * time.Millisecond
	proxy(t, "/dash-stream/", "127.0.0.1:59203")
	h, _ := dashboard(t, &Handler{EngineIOPath: "/dash-stream/"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "root")
		_ = h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)), nil)
	}))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/_edge/dashboard/events")
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	lines := bufio.NewScanner(res.Body)
	lines.Buffer(nil, 1<<20)
	samples := 0
	for samples < 3 && lines.Scan() {
		if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
			var d Data
			require.NoError(t, json.Unmarshal([]byte(data), &d))
			assert.False(t, d.Time.IsZero())
			assert.True(t, d.Serving)
			assert.Len(t, d.Upstreams, 1)
			samples++
		}
	}
	require.Equal(t, 3, samples)

	require.NoError(t, h.Cleanup())
	done := make(chan struct{})
	go func() {
		for lines.Scan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived its config")
	}
}

func TestDashboardPathsAreCheckedAtLoad(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{Path: "/socket.io/dash/"}, `overlaps the Engine.IO path "/socket.io/"`},
		{Handler{Path: "/app/", EngineIOPath: "/app/socket.io/"}, "overlaps"},
		{Handler{Path: "/"}, "must be a prefix of its own"},
		{Handler{Path: "/_edge/dashboard"}, "must be a prefix of its own that starts and ends with a slash"},
		{Handler{Path: "/_edge/dashboard/*"}, "must be a prefix"},
		{Handler{Path: "/a?b/"}, "must be a prefix"},
		{Handler{EngineIOPath: "socket.io"}, `engineio_path "socket.io" must start and end with a slash`},
		{Handler{Path: "/ops/", EngineIOPath: "/ws/"}, ""},
	} {
		h := tc.h
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		require.NoError(t, h.Provision(ctx))
		err := h.Validate()
		if tc.want == "" {
			assert.NoError(t, err, "%+v", tc.h)
		} else if assert.Error(t, err, "%+v", tc.h) {
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "socketio_dashboard: "), err.Error())
		}
		_ = h.Cleanup()
		cancel()
	}
}
