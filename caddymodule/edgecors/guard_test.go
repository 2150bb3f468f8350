package edgecors

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func handshake(target, origin string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

// A long-polling handshake is a simple GET: the browser sends it to any
// origin, and the worker creates the session before CORS hides the
// answer from the page. The edge must refuse it first.
func TestEngineIOPollingHandshakeFromDisallowedOriginIs403BeforeTheUpstream(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, Credentials: true})
	app := &appHandler{}
	rec := serve(t, h, app, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling&t=Pabc", "https://evil.example.net"))
	if rec.Code != http.StatusForbidden || app.reached {
		t.Fatalf("status=%d reached=%v; want 403 before the app", rec.Code, app.reached)
	}
	if got := accessControlHeaders(rec.Header()); len(got) != 0 {
		t.Errorf("refusal carries CORS headers: %v", got)
	}
	if got := rec.Header().Get("Vary"); got != "Origin" {
		t.Errorf("Vary = %q, want Origin", got)
	}
	assertEvent(t, logs, "Engine.IO handshake refused: origin not allowed by origins (explicit list)", "https://evil.example.net")
}

// A WebSocket-only client (transports: ['websocket']) handshakes with an
// upgrade; the event says which of the two it was.
func TestEngineIOWebSocketHandshakeFromDisallowedOriginIs403(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	app := &appHandler{}
	rec := serve(t, h, app, websocketRequest("http://api.example.com/socket.io/?EIO=4&transport=websocket", "https://evil.example.net"))
	if rec.Code != http.StatusForbidden || app.reached {
		t.Fatalf("status=%d reached=%v; want 403 before the app", rec.Code, app.reached)
	}
	assertEvent(t, logs, "WebSocket upgrade refused: origin not allowed by origins (explicit list)", "https://evil.example.net")
}

// "null" is what sandboxed iframes and file: pages send; even "*" must
// not let them open a session.
func TestEngineIOHandshakeAndUpgradeFromNullOriginAre403EvenUnderStar(t *testing.T) {
	for _, origins := range [][]string{{"https://app.example.com"}, {"*"}} {
		h, logs := newTestHandler(t, &Handler{Origins: origins})
		app := &appHandler{}
		rec := serve(t, h, app, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling", "null"))
		if rec.Code != http.StatusForbidden || app.reached {
			t.Fatalf("origins %q: handshake status=%d reached=%v; want 403", origins, rec.Code, app.reached)
		}
		assertEvent(t, logs, `Engine.IO handshake refused: Origin "null" is never allowed`, "null")

		app = &appHandler{}
		if rec := serve(t, h, app, websocketRequest("http://api.example.com/chat", "null")); rec.Code != http.StatusForbidden || app.reached {
			t.Fatalf("origins %q: upgrade status=%d reached=%v; want 403", origins, rec.Code, app.reached)
		}
	}
}

func TestEngineIOHandshakeFromAllowedOriginSameOriginOrNoOriginPasses(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	for _, origin := range []string{"https://app.example.com", "http://api.example.com", ""} {
		app := &appHandler{}
		rec := serve(t, h, app, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling", origin))
		if !app.reached || rec.Code != http.StatusOK {
			t.Errorf("Origin %q: status=%d reached=%v; want it passed to the app", origin, rec.Code, app.reached)
		}
	}
	if logs.FilterLoggerName("flaskedge.security").Len() != 0 {
		t.Errorf("events for allowed handshakes: %v", logs.All())
	}
}

// A request of an existing session is guarded too: a page on any site
// can make a browser POST a Socket.IO packet to a sid, with its cookies.
// Other paths are ordinary requests, which get no CORS headers but are
// not refused.
func TestEngineIORequestsOfASessionFromDisallowedOriginsAre403(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	for i, method := range []string{http.MethodGet, http.MethodPost} {
		if i > 0 {
			logs.TakeAll()
		}
		app := &appHandler{}
		r := handshake("http://api.example.com/socket.io/?EIO=4&transport=polling&sid=abc", "https://evil.example.net")
		r.Method = method
		if rec := serve(t, h, app, r); rec.Code != http.StatusForbidden || app.reached {
			t.Errorf("%s with a sid: status=%d reached=%v; want 403", method, rec.Code, app.reached)
		}
		assertEvent(t, logs, "Engine.IO request of a session refused: origin not allowed by origins (explicit list)", "https://evil.example.net")
	}
	for _, target := range []string{
		"http://api.example.com/api/whoami?EIO=4",
		"http://api.example.com/socket.io?EIO=4&transport=polling", // not under /socket.io/: Flask's 404
	} {
		app := &appHandler{}
		rec := serve(t, h, app, handshake(target, "https://evil.example.net"))
		if !app.reached || len(accessControlHeaders(rec.Header())) != 0 {
			t.Errorf("%s: reached=%v headers=%v; want passed on without CORS headers", target, app.reached, accessControlHeaders(rec.Header()))
		}
	}
	for _, origin := range []string{"https://app.example.com", "http://api.example.com", ""} {
		app := &appHandler{}
		serve(t, h, app, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling&sid=abc", origin))
		if !app.reached {
			t.Errorf("a request of a session from %q was refused", origin)
		}
	}
}

// The edge must read the query as python-engineio's parse_qs will:
// an encoded "sid" is a sid, a blank one is not.
func TestIsEngineIOHandshakeReadsTheQueryAsTheWorkerDoes(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	for _, tc := range []struct {
		target string
		want   bool
	}{
		{"/socket.io/?EIO=4&transport=polling", true},
		{"/socket.io/?EIO=4&transport=websocket", true},
		{"/socket.io/", true}, // no EIO: the worker refuses it, the edge need not tell
		{"/socket.io/?EIO=4&transport=polling&sid=abc", false},
		{"/socket.io/?sid=abc&EIO=4", false},
		{"/socket.io/?EIO=4&%73id=abc", false},
		{"/socket.io/?EIO=4&s%69D=abc", true}, // keys are case-sensitive
		{"/socket.io/?EIO=4&sid=", true},      // parse_qs drops blank values
		{"/socket.io/?EIO=4&sid", true},       // and pairs without '='
		{"/socket.io/?EIO=4&sid+=abc", true},  // "sid " is another key
		{"/socket.io/?EIO=4;sid=abc", true},   // ';' does not separate
		{"/socket.io/?EIO=4&sid=%", false},
		{"/socket.io/?EIO=4&%7", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://api.example.com"+tc.target, nil)
		if got := h.isEngineIOHandshake(r); got != tc.want {
			t.Errorf("%s: handshake = %v, want %v", tc.target, got, tc.want)
		}
	}
}

func TestEngineIOPathIsConfigurable(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, EngineIOPath: "/realtime/"})
	app := &appHandler{}
	if rec := serve(t, h, app, handshake("http://api.example.com/realtime/?EIO=4&transport=polling", "https://evil.example.net")); rec.Code != http.StatusForbidden || app.reached {
		t.Errorf("/realtime/: status=%d reached=%v; want 403", rec.Code, app.reached)
	}
	app = &appHandler{}
	serve(t, h, app, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling", "https://evil.example.net"))
	if !app.reached {
		t.Error("/socket.io/ is no longer the Engine.IO path, yet it was guarded")
	}
}

func TestEngineIOPathMustBeAPrefixEndingInSlash(t *testing.T) {
	err := provisionOnly(t, &Handler{Origins: []string{"https://a.com"}, EngineIOPath: "/socket.io"})
	if err == nil || err.Error() != `edge_cors: engineio_path "/socket.io" must start and end with "/", as in "engineio_path /socket.io/"` {
		t.Errorf("error %v", err)
	}
}

func TestRequireOriginRefusesUpgradesAndHandshakesWithoutOrigin(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, RequireOrigin: true})
	app := &appHandler{}
	if rec := serve(t, h, app, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling", "")); rec.Code != http.StatusForbidden || app.reached {
		t.Fatalf("handshake: status=%d reached=%v; want 403", rec.Code, app.reached)
	}
	assertEvent(t, logs, "Engine.IO handshake refused: no Origin and require_origin is on", "")
	app = &appHandler{}
	if rec := serve(t, h, app, websocketRequest("http://api.example.com/socket.io/?EIO=4&transport=websocket", "")); rec.Code != http.StatusForbidden || app.reached {
		t.Fatalf("upgrade: status=%d reached=%v; want 403", rec.Code, app.reached)
	}

	// Everything else without an Origin is an ordinary request.
	for _, r := range []*http.Request{
		handshake("http://api.example.com/api/whoami", ""),
		handshake("http://api.example.com/socket.io/?EIO=4&transport=polling&sid=abc", ""),
		handshake("http://api.example.com/socket.io/?EIO=4&transport=polling", "https://app.example.com"),
	} {
		app := &appHandler{}
		if serve(t, h, app, r); !app.reached {
			t.Errorf("%s (Origin %q) was refused", r.URL, r.Header.Get("Origin"))
		}
	}
}

// With the guard off, nothing is refused: the switch covers both kinds.
func TestGuardOffLetsForeignHandshakesThrough(t *testing.T) {
	off := false
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, WebSocketOriginGuard: &off, RequireOrigin: true})
	for _, origin := range []string{"https://evil.example.net", ""} {
		app := &appHandler{}
		if serve(t, h, app, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling", origin)); !app.reached {
			t.Errorf("Origin %q: guard off, yet the handshake was refused", origin)
		}
	}
}

// The event names the source of the allowed set, so an operator knows
// whether to fix a list, an environment variable or the stage.
func TestRefusalEventsNameTheAllowedSetsSource(t *testing.T) {
	withEnv(t, map[string]string{"APP_ENV": "development", "APP_HOST": "0.0.0.0", "APP_PORT": "8000"})
	h, logs := newTestHandler(t, &Handler{
		Origins:         []string{"https://app.example.com"},
		OriginsFromEnv:  &OriginsFromEnv{HostVar: "APP_HOST", PortVar: "APP_PORT"},
		AnyLoopbackPort: true,
	})
	serve(t, h, &appHandler{}, handshake("http://api.example.com/socket.io/?EIO=4&transport=polling", "https://evil.example.net"))
	assertEvent(t, logs, "Engine.IO handshake refused: origin not allowed by origins (explicit list) + origins_from_env (APP_HOST, APP_PORT) + any_loopback_port (development profile); environment development", "https://evil.example.net")

	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{OriginsFromEnv: &OriginsFromEnv{PublicURLVar: "PUBLIC_URL"}}, "origins_from_env (FLASK_HOST, FLASK_PORT, PUBLIC_URL); environment development"},
		{Handler{Origins: []string{"https://a.com"}, Environment: production}, "origins (explicit list); environment production"},
	} {
		if err := provisionOnly(t, &tc.h); err != nil {
			t.Fatal(err)
		}
		if tc.h.source != tc.want {
			t.Errorf("source = %q, want %q", tc.h.source, tc.want)
		}
	}
}

func privateNetworkPreflight() *http.Request {
	r := preflight("https://app.example.com", "GET", "")
	r.Header.Set("Access-Control-Request-Private-Network", "true")
	return r
}

func TestPrivateNetworkPreflightIs403UnlessOptedIn(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	rec := serve(t, h, &appHandler{}, privateNetworkPreflight())
	if rec.Code != http.StatusForbidden || len(accessControlHeaders(rec.Header())) != 0 {
		t.Fatalf("status=%d headers=%v; want 403 and none", rec.Code, accessControlHeaders(rec.Header()))
	}
	assertEvent(t, logs, "preflight refused: Private Network Access requested and allow_private_network is off", "https://app.example.com")
}

func TestPrivateNetworkPreflightIsGrantedWhenOptedIn(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, AllowPrivateNetwork: true})
	rec := serve(t, h, &appHandler{}, privateNetworkPreflight())
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status = %d, want 204", rec.Code)
	}
	assertHeaders(t, accessControlHeaders(rec.Header()), map[string][]string{
		"Access-Control-Allow-Origin":          {"https://app.example.com"},
		"Access-Control-Allow-Methods":         {"GET"},
		"Access-Control-Allow-Private-Network": {"true"},
		"Access-Control-Expose-Headers":        {"Retry-After"},
	})
	if got := rec.Header()["Vary"]; len(got) != 1 || got[0] != "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network" {
		t.Errorf("Vary = %q", got)
	}

	// Opting in grants nothing to an origin that is not allowed.
	r := privateNetworkPreflight()
	r.Header.Set("Origin", "https://evil.example.net")
	if rec := serve(t, h, &appHandler{}, r); rec.Code != http.StatusForbidden {
		t.Errorf("foreign origin: status = %d, want 403", rec.Code)
	}
	// And an ordinary preflight is answered without the grant.
	rec = serve(t, h, &appHandler{}, preflight("https://app.example.com", "PUT", ""))
	if _, ok := rec.Header()["Access-Control-Allow-Private-Network"]; rec.Code != http.StatusNoContent || ok {
		t.Errorf("plain preflight: status=%d, Private Network granted=%v", rec.Code, ok)
	}
}
