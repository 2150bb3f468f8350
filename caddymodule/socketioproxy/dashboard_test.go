package socketioproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/security"
)

// dashboardHandler is a handler with the dashboard at /_edge/dashboard
// for roles, and a worker registered in the process's state.
func dashboardHandler(t *testing.T, roles ...string) *Handler {
	t.Helper()
	h := &Handler{
		Path:       DefaultPath,
		Dashboard:  &Dashboard{Path: "/_edge/dashboard/", Roles: roles},
		Namespaces: map[string]*NamespaceRule{"/admin": {Access: AccessRole, Roles: []string{"admin"}}},
		security:   zap.NewNop(),
		sessions:   loadRegistry(),
	}
	h.Dashboard.provision()
	require.NoError(t, h.Dashboard.validate(h.Path))
	st := loadUpstreamState("127.0.0.1:59999")
	t.Cleanup(func() {
		h.Dashboard.cleanup()
		_, _ = registries.Delete(registryKey)
		_, _ = upstreamStates.Delete(st.addr)
	})
	return h
}

// request makes a request as flask_session leaves it: the verified user id
// and roles in the {http.auth.user.*} placeholders.
func request(method, target, userID, roles string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	repl := caddy.NewReplacer()
	if userID != "" {
		repl.Set("http.auth.user.id", userID)
		repl.Set("http.auth.user.role", roles)
	}
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
}

func serve(h *Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	_ = h.ServeHTTP(w, r, next)
	return w
}

func TestDashboardAsksAnonymousVisitorsToLogIn(t *testing.T) {
	h := dashboardHandler(t)
	page := serve(h, request("GET", "/_edge/dashboard/", "", ""))
	assert.Equal(t, http.StatusUnauthorized, page.Code)
	assert.Equal(t, "text/html; charset=utf-8", page.Header().Get("Content-Type"))
	assert.Contains(t, page.Body.String(), "Log in to see the dashboard")
	assert.Contains(t, page.Body.String(), "role admin")
	assert.NotContains(t, page.Body.String(), "upstreams", "no figures on the refusal page")

	for _, path := range []string{"/_edge/dashboard/data.json", "/_edge/dashboard/events"} {
		res := serve(h, request("GET", path, "", ""))
		assert.Equal(t, http.StatusUnauthorized, res.Code, path)
		assert.JSONEq(t, `{"error":"Log in to see the dashboard","message":"This dashboard is for users with the role admin. You are not logged in: log in to the application, then reload this page."}`,
			res.Body.String(), path)
	}
}

func TestDashboardRefusesAUserWithoutTheRoleWith403AndAnEvent(t *testing.T) {
	h := dashboardHandler(t)
	r := request("GET", "/_edge/dashboard/", "alice", "user,administrator")
	r.RemoteAddr = "192.0.2.44:4000"
	page := serve(h, r)
	assert.Equal(t, http.StatusForbidden, page.Code)
	assert.Contains(t, page.Body.String(), "This dashboard needs the role admin")
	assert.Contains(t, page.Body.String(), "You are logged in as alice")

	ev := security.Recent()[0]
	assert.Equal(t, security.RoleDenied, ev.Event)
	assert.Equal(t, "alice", ev.UserID)
	assert.Equal(t, "192.0.2.44", ev.RemoteIP)
	assert.Equal(t, "dashboard requires the role admin", ev.Reason)

	res := serve(h, request("GET", "/_edge/dashboard/data.json", "alice", "user"))
	assert.Equal(t, http.StatusForbidden, res.Code)
	assert.Equal(t, "application/json", res.Header().Get("Content-Type"))
}

func TestDashboardServesItsRolesThePageAndData(t *testing.T) {
	h := dashboardHandler(t, "ops", "admin")
	for _, roles := range []string{"admin", "user,ops"} {
		page := serve(h, request("GET", "/_edge/dashboard/", "root", roles))
		assert.Equal(t, http.StatusOK, page.Code, roles)
		assert.Contains(t, page.Body.String(), `<script src="dashboard.js" defer></script>`)
		assert.Contains(t, page.Header().Get("Content-Security-Policy"), "script-src 'self'")
		assert.Equal(t, "no-store", page.Header().Get("Cache-Control"))
	}
	// The page's code and style hold no data and style the refusal pages.
	for path, typ := range map[string]string{"/_edge/dashboard/dashboard.js": "text/javascript", "/_edge/dashboard/dashboard.css": "text/css"} {
		res := serve(h, request("GET", path, "", ""))
		assert.Equal(t, http.StatusOK, res.Code, path)
		assert.Contains(t, res.Header().Get("Content-Type"), typ)
	}
	res := serve(h, request("GET", "/_edge/dashboard?x=1", "root", "admin"))
	assert.Equal(t, http.StatusMovedPermanently, res.Code)
	assert.Equal(t, "/_edge/dashboard/?x=1", res.Header().Get("Location"))
	assert.Equal(t, http.StatusNotFound, serve(h, request("GET", "/_edge/dashboard/nope", "root", "admin")).Code)
	assert.Equal(t, http.StatusMethodNotAllowed, serve(h, request("POST", "/_edge/dashboard/", "root", "admin")).Code)
	// Paths that only start like the dashboard's are the app's.
	assert.Equal(t, http.StatusTeapot, serve(h, request("GET", "/_edge/dashboards", "root", "admin")).Code)
	assert.Equal(t, http.StatusTeapot, serve(h, request("GET", "/", "root", "admin")).Code)
}

func TestDashboardDataHasTheWorkersCountersAndEvents(t *testing.T) {
	h := dashboardHandler(t)
	st := loadUpstreamState("127.0.0.1:59999")
	defer upstreamStates.Delete(st.addr)
	h.sessions.opened("s1", st, time.Minute, time.Now())
	h.sessions.relayStarted("s1", st, time.Now())
	h.sessions.opened("s2", st, time.Minute, time.Now())
	defer h.sessions.closed("s1")
	defer h.sessions.closed("s2")
	metrics.handshakes.WithLabelValues(st.addr, "websocket").Inc()
	security.LogClient(zap.NewNop(), "edge_cors", security.OriginRefused, "preflight refused", security.Client{IP: "198.51.100.7", Origin: "https://evil.example"}, security.Fields{})

	res := serve(h, request("GET", "/_edge/dashboard/data.json", "root", "admin"))
	require.Equal(t, http.StatusOK, res.Code)
	assert.Equal(t, "application/json", res.Header().Get("Content-Type"))
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(res.Body.Bytes(), &raw))
	for _, key := range []string{"time", "sessions", "upstreams", "messages", "bytes", "refusals", "namespaces", "events"} {
		assert.Contains(t, raw, key)
	}
	var data DashboardData
	require.NoError(t, json.Unmarshal(res.Body.Bytes(), &data))

	var up *DashboardUpstream
	for i := range data.Upstreams {
		if data.Upstreams[i].Address == st.addr {
			up = &data.Upstreams[i]
		}
	}
	require.NotNil(t, up, "%+v", data.Upstreams)
	assert.Equal(t, 2, up.Sessions)
	assert.Equal(t, 1, up.WebSocket)
	assert.Equal(t, 1, up.Polling)
	assert.True(t, up.Healthy)
	assert.GreaterOrEqual(t, up.Handshakes.WebSocket, uint64(1))
	assert.GreaterOrEqual(t, data.Sessions.Total, uint64(2))
	assert.Equal(t, data.Sessions.Total, data.Sessions.Polling+data.Sessions.WebSocket)
	for _, reason := range security.Reasons {
		assert.Contains(t, data.Refusals, reason)
	}
	for _, dir := range []string{fromClient, fromUpstream} {
		assert.Contains(t, data.Messages, dir)
		assert.Contains(t, data.Bytes, dir)
	}
	assert.Equal(t, []string{"admin"}, data.Namespaces["/admin"].Roles)
	require.NotEmpty(t, data.Events)
	assert.Equal(t, security.OriginRefused, data.Events[0].Event)
	assert.Equal(t, "https://evil.example", data.Events[0].Origin)
	assert.NotContains(t, res.Body.String(), "Cookie")
}

// The stream sends a sample at once and every interval after, and ends
// when the config that serves it is cleaned up, so the browser reconnects
// to the next one.
func TestDashboardEventsStreamUntilTheConfigGoes(t *testing.T) {
	defer func(d time.Duration) { dashboardInterval = d }(dashboardInterval)
	dashboardInterval = 20 * time.Millisecond
	h := dashboardHandler(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "root")
		repl.Set("http.auth.user.role", "admin")
		h.serveDashboard(w, r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)))
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
			var d DashboardData
			require.NoError(t, json.Unmarshal([]byte(data), &d))
			assert.False(t, d.Time.IsZero())
			samples++
		}
	}
	require.Equal(t, 3, samples)

	h.Dashboard.cleanup()
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

func TestDashboardPathMustNotOverlapTheEngineIOPath(t *testing.T) {
	for path, want := range map[string]string{
		"/socket.io":      "overlaps the Engine.IO path",
		"/socket.io/dash": "overlaps the Engine.IO path",
		"/":               "needs a path other than /",
		"/a?b":            "must be a path",
		"/_edge/dash":     "",
	} {
		d := &Dashboard{Path: path}
		d.provision()
		err := d.validate(DefaultPath)
		if want == "" {
			assert.NoError(t, err, path)
		} else if assert.Error(t, err, path) {
			assert.Contains(t, err.Error(), want, path)
		}
		d.cleanup()
	}
	d := &Dashboard{Path: "/app"}
	d.provision()
	assert.ErrorContains(t, d.validate("/app/socket.io/"), "overlaps")
}
