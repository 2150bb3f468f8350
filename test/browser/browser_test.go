// Package browser runs edge_cors in front of the real Flask-SocketIO app
// and asks a real browser (Debian's Chromium, driven by playwright-core
// through driver.mjs) what it makes of the answers. Only a browser
// decides whether a CORS response is acceptable: two
// Access-Control-Allow-Origin lines, a missing Allow-Credentials or a
// 204 the spec does not accept fail there and nowhere else.
package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

type driverResult struct {
	Pages []struct {
		URL    string `json:"url"`
		Result struct {
			Fetch struct {
				OK           bool           `json:"ok"`
				Error        string         `json:"error"`
				LoginStatus  int            `json:"loginStatus"`
				WhoamiStatus int            `json:"whoamiStatus"`
				Whoami       map[string]any `json:"whoami"`
			} `json:"fetch"`
			Polling   socketResult `json:"polling"`
			WebSocket socketResult `json:"websocket"`
		} `json:"result"`
		Responses []struct {
			Method string   `json:"method"`
			URL    string   `json:"url"`
			Status int      `json:"status"`
			ACAO   []string `json:"acao"`
		} `json:"responses"`
		Console []string `json:"console"`
	} `json:"pages"`
}

type socketResult struct {
	OK        bool           `json:"ok"`
	Transport string         `json:"transport"`
	Ack       map[string]any `json:"ack"`
	Error     string         `json:"error"`
}

// runBrowser loads each page in one fresh Chromium profile and returns
// what driver.mjs saw.
func runBrowser(t *testing.T, edge string, pages ...string) driverResult {
	t.Helper()
	screenshot := os.Getenv("BROWSER_SCREENSHOT") // to look at; never committed
	if screenshot == "" {
		screenshot = filepath.Join(t.TempDir(), "page.png")
	}
	cfg := map[string]any{
		"chromium":    testenv.Chromium,
		"userDataDir": t.TempDir(),
		"edge":        edge,
		"pages":       pages,
		"screenshot":  screenshot,
	}
	var res driverResult
	testenv.RunNodeScript(t, "test/browser/driver.mjs", cfg, 2*time.Minute, &res)
	if len(res.Pages) != len(pages) {
		t.Fatalf("driver.mjs ran %d pages, want %d", len(res.Pages), len(pages))
	}
	return res
}

// A page on http://127.0.0.1:PAGE (allowed) and one on
// http://localhost:OTHER (not allowed) talk to the edge on
// http://127.0.0.1:EDGE: edge_cors, flask_session, socketio_proxy and
// reverse_proxy in front of a real Flask-SocketIO worker.
//
// The worker runs with CORS_ALLOWED_ORIGINS=*, python-engineio's most
// permissive setting: it puts its own Access-Control-Allow-Origin and
// Allow-Credentials on every Engine.IO response (the Flask routes put
// none) and would accept a WebSocket from any page, so whatever the
// browser sees of origins is the edge's doing alone.
//
// The allowed page is cross-origin but same-site with the edge (both
// 127.0.0.1): the app's session cookie is SameSite=Lax, which a browser
// never stores from, nor sends to, a cross-site fetch.
func TestBrowserCrossOriginThroughTheEdge(t *testing.T) {
	testenv.RequireBrowser(t)
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{
		Name: "w1",
		Env:  map[string]string{"CORS_ALLOWED_ORIGINS": "*"},
	})
	allowedPort, otherPort := testenv.ServePage(t, "test/browser/page.html"), testenv.ServePage(t, "test/browser/page.html")
	allowed := fmt.Sprintf("http://127.0.0.1:%d", allowedPort)
	other := fmt.Sprintf("http://localhost:%d", otherPort)
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	edge_cors %[2]s {
		credentials
	}
	flask_session {
		secret_key %[3]s
	}
	socketio_proxy %[4]s
	reverse_proxy %[4]s
}
`, edgeAddr, allowed, worker.SecretKey, worker.Addr)), edgeAddr)
	edgeURL := "http://" + edgeAddr

	res := runBrowser(t, edgeURL, allowed+"/", other+"/")

	t.Run("allowed origin", func(t *testing.T) {
		p := res.Pages[0]
		f := p.Result.Fetch
		if !f.OK || f.LoginStatus != 200 || f.WhoamiStatus != 200 || f.Whoami["id"] != "alice" {
			t.Errorf("credentialed fetch: %+v; want login 200 and whoami 200 as alice (the cookie went both ways)", f)
		}
		for name, s := range map[string]socketResult{"polling": p.Result.Polling, "websocket": p.Result.WebSocket} {
			if !s.OK || s.Transport != name || s.Ack["data"] != "hello" || s.Ack["worker"] != "w1" {
				t.Errorf("Socket.IO over %s: %+v; want connected and echoed by w1", name, s)
			}
		}
		// Chromium accepted every response, which it would not have with
		// two ACAO lines; check the wire as well.
		polls := 0
		for _, r := range p.Responses {
			if len(r.ACAO) != 1 || r.ACAO[0] != allowed {
				t.Errorf("%s %s: %d, Access-Control-Allow-Origin %q; want exactly %q", r.Method, r.URL, r.Status, r.ACAO, allowed)
			}
			if strings.Contains(r.URL, "/socket.io/") && strings.Contains(r.URL, "transport=polling") {
				polls++
			}
		}
		if polls == 0 {
			t.Errorf("no polling response seen from the edge: %+v", p.Responses)
		}
		if n := strings.Count(worker.Output(), " connect namespace=/ sid="); n < 2 {
			t.Errorf("worker logged %d connects, want 2:\n%s", n, worker.Output())
		}
		if !strings.Contains(worker.Output(), "user=alice") {
			t.Errorf("the Socket.IO connections did not carry alice's session:\n%s", worker.Output())
		}
	})

	t.Run("disallowed origin", func(t *testing.T) {
		p := res.Pages[1]
		if p.Result.Fetch.OK {
			t.Errorf("the browser let a page of %s read the app: %+v", other, p.Result.Fetch)
		}
		if p.Result.Polling.OK || p.Result.WebSocket.OK {
			t.Errorf("Socket.IO connected from %s: polling %+v, websocket %+v", other, p.Result.Polling, p.Result.WebSocket)
		}
		// Chromium reports no response event for what CORS blocked, but
		// says in the console what it refused and why.
		for _, r := range p.Responses {
			if len(r.ACAO) != 0 {
				t.Errorf("%s %s: Access-Control-Allow-Origin %q reached a foreign page", r.Method, r.URL, r.ACAO)
			}
		}
		console := strings.Join(p.Console, "\n")
		for _, want := range []string{
			"Access to fetch at '" + edgeURL + "/login' from origin '" + other + "' has been blocked by CORS policy: Response to preflight request doesn't pass access control check",
			"Access to XMLHttpRequest at '" + edgeURL + "/socket.io/?EIO=4&transport=polling",
			"WebSocket connection to 'ws://" + edgeAddr + "/socket.io/?EIO=4&transport=websocket' failed: Error during WebSocket handshake: Unexpected response code: 403",
		} {
			if !strings.Contains(console, want) {
				t.Errorf("the browser did not report %q; its console:\n%s", want, console)
			}
		}
		// The worker logs every Socket.IO connect: the two are the
		// allowed page's, none came from the foreign one.
		if n := strings.Count(worker.Output(), " connect namespace=/ sid="); n != 2 {
			t.Errorf("worker logged %d connects, want only the allowed page's 2:\n%s", n, worker.Output())
		}
		for _, want := range []string{
			`"reason":"Engine.IO handshake refused: origin not allowed by origins (explicit list)","remote_ip":"127.0.0.1","module":"edge_cors","origin":"` + other + `"`,
			`"reason":"WebSocket upgrade refused: origin not allowed by origins (explicit list)","remote_ip":"127.0.0.1","module":"edge_cors","origin":"` + other + `"`,
			`"reason":"preflight refused: origin not allowed by origins (explicit list)","remote_ip":"127.0.0.1","module":"edge_cors","origin":"` + other + `"`,
		} {
			if !strings.Contains(edge.Output(), want) {
				t.Errorf("edge log lacks the security event %s", want)
			}
		}
	})
	if t.Failed() {
		t.Logf("browser saw: %+v", res)
	}
}
