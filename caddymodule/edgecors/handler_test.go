package edgecors

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flaskedge/flaskedge/internal/security"
)

// newTestHandler provisions and validates h as Caddy would, with its
// logs captured.
func newTestHandler(t testing.TB, h *Handler) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	core, logs := observer.New(zap.DebugLevel)
	h.logger = zap.New(core)
	h.security = zap.New(core).Named(security.LoggerName)
	return h, logs
}

// appHandler stands in for Flask behind reverse_proxy: it sets CORS
// headers of its own (as flask-cors or python-engineio would) and a
// Vary, and records whether it was reached.
type appHandler struct{ reached bool }

func (a *appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	a.reached = true
	w.Header().Add("Access-Control-Allow-Origin", "*")
	w.Header().Add("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	w.Header()["access-control-expose-headers"] = []string{"X-Secret"} // not canonical: still the app's
	w.Header().Set("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"ok":true}`)
	return nil
}

func serve(t testing.TB, h *Handler, next caddyhttp.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return rec
}

func preflight(origin, method, headers string) *http.Request {
	r := httptest.NewRequest(http.MethodOptions, "http://api.example.com/socket.io/?EIO=4&transport=polling", nil)
	r.Header.Set("Origin", origin)
	r.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		r.Header.Set("Access-Control-Request-Headers", headers)
	}
	return r
}

func accessControlHeaders(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			out[k] = v
		}
	}
	return out
}

func TestPreflightFromAllowedOriginIs204WithTheEdgesAnswer(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{
		Origins:     []string{"https://app.example.com"},
		Credentials: true,
		MaxAge:      caddy.Duration(600e9),
	})
	app := &appHandler{}
	rec := serve(t, h, app, preflight("https://app.example.com", "PUT", "content-type,x-csrftoken"))

	if rec.Code != http.StatusNoContent {
		t.Fatalf("status = %d, want 204", rec.Code)
	}
	if app.reached {
		t.Error("the preflight reached the next handler")
	}
	want := map[string][]string{
		"Access-Control-Allow-Origin":      {"https://app.example.com"},
		"Access-Control-Allow-Methods":     {"PUT"},
		"Access-Control-Allow-Headers":     {"content-type,x-csrftoken"},
		"Access-Control-Allow-Credentials": {"true"},
		"Access-Control-Max-Age":           {"600"},
		"Access-Control-Expose-Headers":    {"Retry-After"},
	}
	assertHeaders(t, accessControlHeaders(rec.Header()), want)
	if got := rec.Header()["Vary"]; len(got) != 1 || got[0] != "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" {
		t.Errorf("Vary = %q", got)
	}
	if _, ok := rec.Header()["Access-Control-Allow-Private-Network"]; ok {
		t.Error("Private Network Access is granted; it should not be")
	}
}

func TestPreflightFromDisallowedOriginIs403(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	app := &appHandler{}
	rec := serve(t, h, app, preflight("https://evil.example.net", "POST", "content-type"))

	if rec.Code != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", rec.Code)
	}
	if app.reached {
		t.Error("the refused preflight reached the next handler")
	}
	if got := accessControlHeaders(rec.Header()); len(got) != 0 {
		t.Errorf("refused preflight carries CORS headers: %v", got)
	}
	assertEvent(t, logs, "preflight refused: origin not allowed by origins (explicit list)", "https://evil.example.net")
}

func TestPreflightForMethodNotAllowedIs403(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, AllowedMethods: []string{"PUT"}})
	rec := serve(t, h, &appHandler{}, preflight("https://app.example.com", "DELETE", ""))
	if rec.Code != http.StatusForbidden || len(accessControlHeaders(rec.Header())) != 0 {
		t.Fatalf("status = %d, headers %v; want 403 and none", rec.Code, accessControlHeaders(rec.Header()))
	}
	assertEvent(t, logs, `preflight refused: method not allowed: "DELETE"`, "https://app.example.com")
}

func TestPreflightForHeaderNotAllowedIs403(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	rec := serve(t, h, &appHandler{}, preflight("https://app.example.com", "POST", "content-type, x-api-key"))
	if rec.Code != http.StatusForbidden || len(accessControlHeaders(rec.Header())) != 0 {
		t.Fatalf("status = %d, headers %v; want 403 and none", rec.Code, accessControlHeaders(rec.Header()))
	}
	assertEvent(t, logs, `preflight refused: header not allowed: "x-api-key"`, "https://app.example.com")
}

// The defaults must let fetch() send JSON with a CSRF token and a PATCH.
func TestPreflightWithDefaultsAllowsFetchWithJSON(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"http://localhost:5000"}})
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		rec := serve(t, h, &appHandler{}, preflight("http://localhost:5000", m, "content-type,x-csrftoken,X-Requested-With"))
		if rec.Code != http.StatusNoContent {
			t.Errorf("%s: status = %d, want 204", m, rec.Code)
		}
	}
}

// The browser never consults Access-Control-Allow-Methods for GET,
// HEAD and POST, so refusing them would only break a preflight caused
// by a header.
func TestPreflightForSafelistedMethodIsAllowedWhateverTheList(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, AllowedMethods: []string{"PUT"}})
	rec := serve(t, h, &appHandler{}, preflight("https://app.example.com", "GET", "x-requested-with"))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status = %d, want 204", rec.Code)
	}
}

func TestResponseToAllowedOriginHasExactlyOneAllowOriginAndMergedVary(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{
		Origins:       []string{"https://*.example.com"},
		Credentials:   true,
		ExposeHeaders: []string{"X-Request-Id", "X-Total"},
	})
	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/items", nil)
	r.Header.Set("Origin", "https://app.example.com")
	rec := serve(t, h, &appHandler{}, r)

	if rec.Code != http.StatusOK || rec.Body.String() != `{"ok":true}` {
		t.Fatalf("status %d body %q: the app's response was not passed on", rec.Code, rec.Body)
	}
	assertHeaders(t, accessControlHeaders(rec.Header()), map[string][]string{
		"Access-Control-Allow-Origin":      {"https://app.example.com"},
		"Access-Control-Allow-Credentials": {"true"},
		"Access-Control-Expose-Headers":    {"Retry-After, X-Request-Id, X-Total"},
	})
	if got := rec.Header()["Vary"]; len(got) != 1 || got[0] != "Accept-Encoding, Origin" {
		t.Errorf("Vary = %q, want one line \"Accept-Encoding, Origin\"", got)
	}
}

// socketio_proxy answers a handshake over its rate limit with 429 and
// Retry-After; the browser client can only wait as long as it says if
// the header is exposed, so it is, without being configured, and once.
func TestRetryAfterOfA429IsExposedToAllowedOrigins(t *testing.T) {
	tooMany := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		return nil
	})
	for _, tc := range []struct {
		expose []string
		want   string
	}{
		{nil, "Retry-After"},
		{[]string{"retry-after", "X-Request-Id"}, "Retry-After, X-Request-Id"},
	} {
		h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, ExposeHeaders: tc.expose})
		r := httptest.NewRequest(http.MethodGet, "http://api.example.com/socket.io/?EIO=4&transport=polling", nil)
		r.Header.Set("Origin", "https://app.example.com")
		rec := serve(t, h, tooMany, r)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "7" {
			t.Fatalf("status %d, Retry-After %q: the 429 was not passed on", rec.Code, rec.Header().Get("Retry-After"))
		}
		if got := rec.Header()["Access-Control-Expose-Headers"]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("expose_headers %q: Access-Control-Expose-Headers = %q, want %q", tc.expose, got, tc.want)
		}
	}
}

func TestVaryAlreadyNamingOriginIsLeftAsItIs(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header()["Vary"] = []string{"Accept-Encoding", "origin"}
		w.WriteHeader(http.StatusOK)
		return nil
	})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Origin", "https://app.example.com")
	rec := serve(t, h, next, r)
	if got := rec.Header()["Vary"]; len(got) != 2 || got[0] != "Accept-Encoding" || got[1] != "origin" {
		t.Errorf("Vary = %q, want it unchanged", got)
	}
}

func TestResponseToDisallowedOriginHasNoCORSHeadersAndIsOtherwiseUntouched(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	app := &appHandler{}
	r := httptest.NewRequest(http.MethodPost, "http://api.example.com/items", strings.NewReader("x"))
	r.Header.Set("Origin", "https://evil.example.net")
	rec := serve(t, h, app, r)

	if !app.reached || rec.Code != http.StatusOK || rec.Body.String() != `{"ok":true}` {
		t.Fatalf("reached=%v status=%d body=%q: the request should pass through", app.reached, rec.Code, rec.Body)
	}
	if got := accessControlHeaders(rec.Header()); len(got) != 0 {
		t.Errorf("the app re-opened what the edge closed: %v", got)
	}
	if got := rec.Header().Get("Vary"); got != "Accept-Encoding, Origin" {
		t.Errorf("Vary = %q", got)
	}
	if logs.Len() != 0 {
		t.Errorf("an ordinary refused origin should not log at all: %v", logs.All())
	}
}

func TestResponseWithoutOriginHasTheAppsCORSHeadersRemoved(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	rec := serve(t, h, &appHandler{}, httptest.NewRequest(http.MethodGet, "/", nil))
	if got := accessControlHeaders(rec.Header()); len(got) != 0 {
		t.Errorf("CORS headers without an Origin: %v", got)
	}
	if got := rec.Header().Get("Vary"); got != "Accept-Encoding, Origin" {
		t.Errorf("Vary = %q", got)
	}
}

// A page served through the edge calling its own host is not a CORS
// request, even when its origin is not listed.
func TestSameOriginRequestPassesThroughWithoutCORSHeaders(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	app := &appHandler{}
	r := httptest.NewRequest(http.MethodOptions, "http://flask.internal:8080/api", nil)
	r.Header.Set("Origin", "http://flask.internal:8080")
	r.Header.Set("Access-Control-Request-Method", "PUT")
	rec := serve(t, h, app, r)
	if !app.reached || rec.Code != http.StatusOK {
		t.Fatalf("reached=%v status=%d: a same-origin OPTIONS is the app's to answer", app.reached, rec.Code)
	}
	if got := accessControlHeaders(rec.Header()); len(got) != 0 {
		t.Errorf("same-origin response carries CORS headers: %v", got)
	}

	ws := websocketRequest("http://flask.internal:8080/socket.io/?EIO=4&transport=websocket", "http://FLASK.internal:8080")
	app = &appHandler{}
	serve(t, h, app, ws)
	if !app.reached {
		t.Error("a same-origin WebSocket upgrade was refused")
	}
}

func websocketRequest(target, origin string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func TestWebSocketUpgradeFromForeignOriginIs403(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	app := &appHandler{}
	rec := serve(t, h, app, websocketRequest("http://api.example.com/socket.io/?EIO=4&transport=websocket", "https://evil.example.net"))
	if rec.Code != http.StatusForbidden || app.reached {
		t.Fatalf("status=%d reached=%v; want 403 before the app", rec.Code, app.reached)
	}
	assertEvent(t, logs, "WebSocket upgrade refused: origin not allowed by origins (explicit list)", "https://evil.example.net")

	// HTTP/2 extended CONNECT (RFC 8441) is the same request by another road.
	r := httptest.NewRequest(http.MethodConnect, "https://api.example.com/socket.io/", nil)
	r.ProtoMajor = 2
	r.Header.Set(":protocol", "websocket")
	r.Header.Set("Origin", "https://evil.example.net")
	app = &appHandler{}
	if rec := serve(t, h, app, r); rec.Code != http.StatusForbidden || app.reached {
		t.Fatalf("extended CONNECT: status=%d reached=%v; want 403 before the app", rec.Code, app.reached)
	}
}

func TestWebSocketUpgradeFromAllowedOrWithoutOriginPasses(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	for _, origin := range []string{"https://app.example.com", ""} {
		app := &appHandler{}
		serve(t, h, app, websocketRequest("http://api.example.com/socket.io/", origin))
		if !app.reached {
			t.Errorf("Origin %q: upgrade refused", origin)
		}
	}
}

func TestWebSocketOriginGuardOffLetsForeignUpgradesThrough(t *testing.T) {
	off := false
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, WebSocketOriginGuard: &off})
	app := &appHandler{}
	serve(t, h, app, websocketRequest("http://api.example.com/socket.io/", "https://evil.example.net"))
	if !app.reached {
		t.Error("guard off, yet the upgrade was refused")
	}
}

// A real WebSocket handshake through the wrapped ResponseWriter: the
// upgrader must be able to hijack, and a foreign page must not get in.
func TestWebSocketThroughTheHandlerHijacksAndEchoes(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return err
		}
		return c.WriteMessage(mt, msg)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeHTTP(w, r, next)
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket.io/?EIO=4&transport=websocket"

	c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://app.example.com"}})
	if err != nil {
		t.Fatalf("allowed origin: dial: %v", err)
	}
	defer c.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "2probe" {
		t.Fatalf("echo: %q, %v", msg, err)
	}

	_, resp, err = websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example.net"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err=%v resp=%v; want a 403 handshake failure", err, resp)
	}
}

// A streaming response (Socket.IO long-polling, server-sent events)
// flushes before writing: the CORS headers must be on the wire already.
func TestFlushBeforeWriteSendsTheCORSHeaders(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if err := http.NewResponseController(w).Flush(); err != nil {
			return err
		}
		w.Header().Set("Access-Control-Allow-Origin", "*") // too late to matter
		_, err := io.WriteString(w, "data: 1\n\n")
		return err
	})
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	r.Header.Set("Origin", "https://app.example.com")
	rec := serve(t, h, next, r)
	if !rec.Flushed {
		t.Fatal("not flushed")
	}
	if got := rec.Result().Header["Access-Control-Allow-Origin"]; len(got) != 1 || got[0] != "https://app.example.com" {
		t.Errorf("ACAO on the wire = %q", got)
	}
}

// When the next handler fails before writing (reverse_proxy with the
// app down), Caddy writes the error response on the same header map:
// it must carry the CORS headers, or the page sees a CORS failure
// instead of the 502.
func TestErrorFromNextHandlerStillCarriesCORSHeaders(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused"))
	})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Origin", "https://app.example.com")
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, r, next); err == nil {
		t.Fatal("the error was swallowed")
	}
	if got := rec.Header()["Access-Control-Allow-Origin"]; len(got) != 1 || got[0] != "https://app.example.com" {
		t.Errorf("ACAO = %q", got)
	}
}

func TestAnyOriginAnswersWithTheLiteralStar(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"*"}})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Origin", "https://whoever.test")
	rec := serve(t, h, &appHandler{}, r)
	if got := rec.Header()["Access-Control-Allow-Origin"]; len(got) != 1 || got[0] != "*" {
		t.Errorf("ACAO = %q", got)
	}
	if _, ok := rec.Header()["Access-Control-Allow-Credentials"]; ok {
		t.Error("credentials granted to any origin")
	}
}

func TestUppercaseOriginIsEchoedAsSent(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"http://localhost:5000"}})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Origin", "http://LOCALHOST:5000")
	rec := serve(t, h, &appHandler{}, r)
	if got := rec.Header()["Access-Control-Allow-Origin"]; len(got) != 1 || got[0] != "http://LOCALHOST:5000" {
		t.Errorf("ACAO = %q", got)
	}
}

func assertHeaders(t *testing.T, got, want map[string][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("headers = %v\nwant      %v", got, want)
		return
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			t.Errorf("%s = %q, want %q", k, g, w)
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("%s = %q, want %q", k, g, w)
			}
		}
	}
}

// assertEvent checks that exactly one security event was logged, on
// the security logger, with the reason and origin given.
func assertEvent(t *testing.T, logs *observer.ObservedLogs, reason, origin string) {
	t.Helper()
	events := logs.FilterLoggerName(security.LoggerName).FilterMessage("security event").All()
	if len(events) != 1 {
		t.Errorf("want one security event, got %d: %v", len(events), logs.All())
		return
	}
	f := events[0].ContextMap()
	if _, ok := f["origin"]; !ok && origin == "" {
		f["origin"] = "" // logged only when there is one
	}
	if f["event"] != string(security.OriginRefused) || f["reason"] != reason || f["origin"] != origin || f["module"] != "edge_cors" {
		t.Errorf("security event = %v\nwant event %q, reason %q, origin %q", f, security.OriginRefused, reason, origin)
	}
}

// Every request edge_cors turns away counts once as
// caddy_socketio_refusals_total{reason="origin"}; what it lets through
// does not count, and Provision registers the counter in the config's
// registry.
func TestRefusalsCountAsOrigin(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Origins: []string{"https://app.example.com"}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := false
	for _, f := range families {
		registered = registered || f.GetName() == "caddy_socketio_refusals_total"
	}
	if !registered {
		t.Error("caddy_socketio_refusals_total is not in the config's registry")
	}

	for _, tt := range []struct {
		name    string
		r       *http.Request
		refused bool
	}{
		{"upgrade from a foreign origin", websocketRequest("http://api.example.com/socket.io/?EIO=4&transport=websocket", "https://evil.example.net"), true},
		{"upgrade from Origin null", websocketRequest("http://api.example.com/socket.io/?EIO=4&transport=websocket", "null"), true},
		{"preflight from a foreign origin", preflight("https://evil.example.net", "POST", ""), true},
		{"preflight for a method not allowed", preflight("https://app.example.com", "TRACE", ""), true},
		{"upgrade from the allowed origin", websocketRequest("http://api.example.com/socket.io/?EIO=4&transport=websocket", "https://app.example.com"), false},
		{"preflight from the allowed origin", preflight("https://app.example.com", "POST", "content-type"), false},
	} {
		before := security.RefusalCounts()[security.ReasonOrigin]
		serve(t, h, &appHandler{}, tt.r)
		want := uint64(0)
		if tt.refused {
			want = 1
		}
		if got := security.RefusalCounts()[security.ReasonOrigin] - before; got != want {
			t.Errorf("%s: refusals_total{reason=\"origin\"} moved by %d, want %d", tt.name, got, want)
		}
	}
}
