package edgecors

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func on() *bool { v := true; return &v }

func diagnoseRequest(origin, query string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://edge.example.com/socket.io-edge/diagnose"+query, nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	r.Header.Set("Cookie", "session=.eJyrVkrOzytJzSvRL0gsKlayUlBKzs8rSc0rUdJRyk0tLk5MTwUAm8oJjw.ZmZmZg.c2lnbmF0dXJl")
	return r
}

func decodeDiagnosis(t *testing.T, rec *httptest.ResponseRecorder) diagnosis {
	t.Helper()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var d diagnosis
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return d
}

// A page on a refused origin cannot read any answer of the edge's, so
// the diagnosis must be readable by every origin, without credentials,
// and must say which origin was asked about, why it is refused and
// where the allowed ones come from, with the fix.
func TestDiagnoseSaysWhyAnOriginIsRefusedAndWhereToAddIt(t *testing.T) {
	withEnv(t, map[string]string{"FLASK_HOST": "127.0.0.1", "FLASK_PORT": "5000", "FLASK_SECRET_KEY": "s3cr3t-never-shown"})
	h, logs := newTestHandler(t, &Handler{
		Origins:        []string{"https://app.example.com"},
		OriginsFromEnv: &OriginsFromEnv{},
		Credentials:    true,
		Environment:    "development",
	})
	app := &appHandler{}
	rec := serve(t, h, app, diagnoseRequest("http://evil.example.net:8000", ""))
	if app.reached {
		t.Error("the diagnosis went on to the app")
	}
	assertHeaders(t, accessControlHeaders(rec.Header()), map[string][]string{"Access-Control-Allow-Origin": {"*"}})
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Vary") != "Origin" {
		t.Errorf("Cache-Control %q, Vary %q; want no-store and Origin", rec.Header().Get("Cache-Control"), rec.Header().Get("Vary"))
	}
	d := decodeDiagnosis(t, rec)
	if d.Allowed || d.Origin != "http://evil.example.net:8000" || !d.Credentials || d.Environment != "development" {
		t.Errorf("diagnosis %+v", d)
	}
	for _, want := range []string{"http://evil.example.net:8000 is not allowed", "origins (explicit list) + origins_from_env (FLASK_HOST, FLASK_PORT)"} {
		if !strings.Contains(d.Reason, want) {
			t.Errorf("reason %q lacks %q", d.Reason, want)
		}
	}
	for _, want := range []string{"Add http://evil.example.net:8000 to edge_cors", "origins_from_env reads (FLASK_HOST, FLASK_PORT)"} {
		if !strings.Contains(d.Fix, want) {
			t.Errorf("fix %q lacks %q", d.Fix, want)
		}
	}
	if len(d.Sources) != 2 || d.Sources[0].Source != "origins" || d.Sources[0].Origins[0] != "https://app.example.com" ||
		d.Sources[1].Source != "origins_from_env" || strings.Join(d.Sources[1].Vars, " ") != "FLASK_HOST FLASK_PORT" ||
		len(d.Sources[1].Origins) != 6 {
		t.Errorf("sources %+v", d.Sources)
	}
	if body := rec.Body.String(); strings.Contains(body, "s3cr3t") || strings.Contains(body, "eJyr") {
		t.Errorf("the diagnosis shows a secret or the cookie: %s", body)
	}
	if logs.Len() != 0 {
		t.Errorf("a diagnosis is not a refusal and logs nothing: %v", logs.All())
	}
}

func TestDiagnoseNamesTheSourceThatAllowsAnOrigin(t *testing.T) {
	withEnv(t, map[string]string{"FLASK_PORT": "8000"})
	h, _ := newTestHandler(t, &Handler{
		Origins:         []string{"https://app.example.com"},
		OriginsFromEnv:  &OriginsFromEnv{},
		AnyLoopbackPort: true,
		Environment:     "development",
	})
	for _, tc := range []struct{ origin, query, by string }{
		{"https://app.example.com", "", "origins"},
		{"https://elsewhere.example", "?origin=http://127.0.0.1:8000", "origins_from_env"},
		{"", "?origin=" + "http://localhost:5173", "any_loopback_port"},
		{"http://edge.example.com", "", "same_origin"},
	} {
		d := decodeDiagnosis(t, serve(t, h, &appHandler{}, diagnoseRequest(tc.origin, tc.query)))
		if !d.Allowed || d.AllowedBy != tc.by {
			t.Errorf("%s%s: %+v; want allowed by %s", tc.origin, tc.query, d, tc.by)
		}
	}
}

func TestDiagnoseExplainsTheCommonMistakes(t *testing.T) {
	for _, tc := range []struct {
		name, env, origin string
		reason, fix       string
		allowedLoopback   bool
		listed            string
	}{
		{"another port of an allowed host", "development", "http://localhost:5173",
			"http://localhost:5000 is allowed: the scheme and port are part of the origin", "add any_loopback_port", false, "http://localhost:5000"},
		{"http in production", "production", "http://app.example.com",
			"environment production refuses http:// origins", "allow https://app.example.com", false, "https://app.example.com"},
		{"a path", "staging", "https://app.example.com/",
			"has a path", "", false, "https://app.example.com"},
		{"null", "staging", "null",
			`Origin "null"`, "Serve the page over http(s)", false, "https://app.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestHandler(t, &Handler{Origins: []string{tc.listed}, Environment: tc.env, Diagnostics: on()})
			d := decodeDiagnosis(t, serve(t, h, &appHandler{}, diagnoseRequest("", "?origin="+tc.origin)))
			if d.Allowed || !strings.Contains(d.Reason, tc.reason) || !strings.Contains(d.Fix, tc.fix) {
				t.Errorf("%+v\nwant reason containing %q and fix containing %q", d, tc.reason, tc.fix)
			}
		})
	}
}

// Production reveals its origin list to nobody unless the operator says
// so; development and staging help by default.
func TestDiagnosticsAreOnInDevelopmentAndStagingOnly(t *testing.T) {
	off := false
	for _, tc := range []struct {
		env    string
		set    *bool
		wantOn bool
	}{
		{"development", nil, true},
		{"staging", nil, true},
		{"production", nil, false},
		{"", nil, false},
		{"production", on(), true},
		{"development", &off, false},
	} {
		h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, Environment: tc.env, Diagnostics: tc.set})
		app := &appHandler{}
		rec := serve(t, h, app, diagnoseRequest("https://evil.example.net", ""))
		if app.reached == tc.wantOn {
			t.Errorf("environment %q, diagnostics %v: diagnosis served = %v, want %v", tc.env, tc.set, !app.reached, tc.wantOn)
		}
		// Off, the path is just another public one.
		if got := rec.Header()["Access-Control-Allow-Origin"]; len(got) != 1 || got[0] != "*" {
			t.Errorf("environment %q: Access-Control-Allow-Origin %q, want *", tc.env, got)
		}
	}
}

// The browser client (socketio_proxy's client_path) must load on a page
// the edge refuses, or it could not say why; what it serves there is
// public, so it goes out with * and never with credentials, whatever
// the app or the handler behind set.
func TestClientPathIsPublicForEveryOriginWithoutCredentials(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, Credentials: true})
	for _, origin := range []string{"https://evil.example.net", "https://app.example.com", ""} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			app := &appHandler{}
			r := httptest.NewRequest(method, "http://edge.example.com/socket.io-edge/client.js", nil)
			if origin != "" {
				r.Header.Set("Origin", origin)
			}
			rec := serve(t, h, app, r)
			if !app.reached || rec.Code != http.StatusOK {
				t.Fatalf("%s from %q: reached=%v status %d", method, origin, app.reached, rec.Code)
			}
			assertHeaders(t, accessControlHeaders(rec.Header()), map[string][]string{"Access-Control-Allow-Origin": {"*"}})
		}
	}
	if logs.Len() != 0 {
		t.Errorf("logged %v", logs.All())
	}
}

// Only reading is public: a POST there from a refused origin, or a
// WebSocket upgrade, is treated as anywhere else.
func TestClientPathOpensOnlyGETAndHEAD(t *testing.T) {
	h, logs := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	r := httptest.NewRequest(http.MethodPost, "http://edge.example.com/socket.io-edge/client.js", nil)
	r.Header.Set("Origin", "https://evil.example.net")
	rec := serve(t, h, &appHandler{}, r)
	if got := accessControlHeaders(rec.Header()); len(got) != 0 {
		t.Errorf("POST from a refused origin got %v", got)
	}
	up := httptest.NewRequest(http.MethodGet, "http://edge.example.com/socket.io-edge/x", nil)
	up.Header.Set("Origin", "https://evil.example.net")
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("a WebSocket upgrade from a refused origin under client_path reached the next handler")
		return nil
	})
	if rec := serve(t, h, next, up); rec.Code != http.StatusForbidden {
		t.Errorf("upgrade: status %d, want 403", rec.Code)
	}
	assertEvent(t, logs, "WebSocket upgrade refused: origin not allowed by origins (explicit list)", "https://evil.example.net")
}

func TestClientPathMustNotOverlapTheEngineIOPath(t *testing.T) {
	for _, p := range []string{"/socket.io/", "/socket.io/client/", "client/", "/"} {
		err := provisionOnly(t, &Handler{Origins: []string{"https://app.example.com"}, ClientPath: p})
		if err == nil || !strings.Contains(err.Error(), "client_path") {
			t.Errorf("client_path %q: %v; want an error naming client_path", p, err)
		}
	}
}
