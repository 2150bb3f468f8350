// Package client runs the browser client that socketio_client serves
// in real Chromium (Debian's, driven by playwright-core
// through bridge.mjs) against the real stack: two Flask-SocketIO workers
// behind the edge with edge_cors, flask_session, namespace rules and rate
// limits, and pages served from other origins. The page records every
// state a client goes through (window.__states); the tests assert on
// those, as a page's own code would see them.
package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// bridge is a running bridge.mjs: Chromium, driven one command at a time.
type bridge struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Scanner
}

func startBridge(t *testing.T) *bridge {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"chromium": testenv.Chromium})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	root := testenv.RepoRoot(t)
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "test", "client", "bridge.mjs"), string(cfg))
	cmd.Dir = root
	// Chromium runs in node's process group, killed whole at the end, on
	// timeout, and with node if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("bridge.mjs: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		cancel()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("bridge.mjs stderr:\n%s", stderr.String())
		}
	})
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	return &bridge{t: t, in: in, out: sc}
}

// do runs one command and decodes its value into v (when not nil).
func (b *bridge) do(cmd map[string]any, v any) error {
	line, _ := json.Marshal(cmd)
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		return err
	}
	if !b.out.Scan() {
		return fmt.Errorf("bridge.mjs ended: %v", b.out.Err())
	}
	var answer struct {
		OK    bool            `json:"ok"`
		Value json.RawMessage `json:"value"`
		Error string          `json:"error"`
	}
	if err := json.Unmarshal(b.out.Bytes(), &answer); err != nil {
		return fmt.Errorf("bridge.mjs printed %q: %v", b.out.Bytes(), err)
	}
	if !answer.OK {
		return fmt.Errorf("%s", answer.Error)
	}
	if v != nil {
		return json.Unmarshal(answer.Value, v)
	}
	return nil
}

// page is one browser page (its own cookie jar) on some origin.
type page struct {
	b    *bridge
	name string
}

func (b *bridge) open(t *testing.T, name, url string) *page {
	t.Helper()
	p := &page{b: b, name: name}
	if err := b.do(map[string]any{"op": "open", "page": name, "url": url}, nil); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	var ready any
	if err := b.do(map[string]any{"op": "wait", "page": name, "expr": "window.__ready", "timeout": 10000}, &ready); err != nil || ready != true {
		t.Fatalf("page %s did not load the client module: %v %v\n%s", url, ready, err, p.console(t))
	}
	return p
}

func (p *page) eval(t *testing.T, expr string, v any) {
	t.Helper()
	if err := p.b.do(map[string]any{"op": "eval", "page": p.name, "expr": expr}, v); err != nil {
		t.Fatalf("%s: %s: %v\n%s", p.name, expr, err, p.console(t))
	}
}

// state is one entry of window.__states[client].
type state struct {
	State      string  `json:"state"`
	Category   string  `json:"category"`
	Message    string  `json:"message"`
	Action     string  `json:"action"`
	Delay      float64 `json:"delay"`
	RetryAfter *int    `json:"retryAfter"`
	Recovered  *bool   `json:"recovered"` // in connected only
	T          float64 `json:"t"`         // ms since the page loaded
}

// waitState waits until client's latest state is want (and, when given,
// of that error category), and returns every state it went through.
func (p *page) waitState(t *testing.T, client, want, category string, timeout time.Duration) []state {
	t.Helper()
	expr := fmt.Sprintf(`(() => { const s = (window.__states[%q] || []).at(-1); return s && s.state === %q && (%q === "" || s.category === %q); })()`,
		client, want, category, category)
	if err := p.b.do(map[string]any{"op": "wait", "page": p.name, "expr": expr, "timeout": timeout.Milliseconds()}, nil); err != nil {
		t.Fatalf("%s: client %s never reached %s %s: %v\nstates: %+v\n%s", p.name, client, want, category, err, p.states(t, client), p.console(t))
	}
	return p.states(t, client)
}

func (p *page) states(t *testing.T, client string) []state {
	t.Helper()
	var s []state
	if err := p.b.do(map[string]any{"op": "eval", "page": p.name, "expr": fmt.Sprintf("window.__states[%q] || []", client)}, &s); err != nil {
		t.Fatalf("%s: states of %s: %v", p.name, client, err)
	}
	return s
}

func (p *page) console(t *testing.T) string {
	var lines []string
	_ = p.b.do(map[string]any{"op": "console", "page": p.name}, &lines)
	return strings.Join(lines, "\n")
}

// screenshot saves the page to $CLIENT_SCREENSHOTS (to look at; never
// committed), else to the test's temporary directory.
func (p *page) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("CLIENT_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := p.b.do(map[string]any{"op": "screenshot", "page": p.name, "path": filepath.Join(dir, name+".png")}, nil); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
}

func names(states []state) string {
	var s []string
	for _, st := range states {
		s = append(s, st.State)
	}
	return strings.Join(s, " → ")
}

// The stack: workers w1 and w2 (one secret key), one Caddy with four
// sites in front of them, each with the browser client at
// /socket.io-edge/ (socketio_client) and edge_cors allowing the page origin
// http://127.0.0.1:PAGE with credentials (same-site with the edge, so
// Flask's SameSite=Lax cookie flows): the first with `namespace /admin
// role admin`, the second with `rate_limit connect 2/20s`, the third
// dropping every WebSocket upgrade (as some corporate proxies do), the
// fourth in front of workers w3 and w4 of its own. A second page server
// on http://localhost:OTHER is an origin nobody allowed.
func TestBrowserClient(t *testing.T) {
	testenv.RequireBrowser(t)
	w1 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	w2 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w2", SecretKey: w1.SecretKey})
	w3 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w3", SecretKey: w1.SecretKey})
	w4 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w4", SecretKey: w1.SecretKey})
	workers := map[string]*testenv.FlaskWorker{"w1": w1, "w2": w2, "w3": w3, "w4": w4}
	allowedPort, otherPort := testenv.ServePage(t, "test/client/page.html"), testenv.ServePage(t, "test/client/page.html")
	allowed := fmt.Sprintf("http://127.0.0.1:%d", allowedPort)
	other := fmt.Sprintf("http://localhost:%d", otherPort)
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	limitedAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	noWSAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ownAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
(app) {
	bind 127.0.0.1
	edge_cors %[3]s {
		credentials
		environment development
	}
	flask_session {
		secret_key %[4]s
	}
	reverse_proxy %[5]s %[6]s
	socketio_client /socket.io-edge/
}
http://%[1]s {
	import app
	socketio_proxy %[5]s %[6]s {
		namespace /admin role admin
	}
}
http://%[2]s {
	import app
	socketio_proxy %[5]s %[6]s {
		rate_limit connect 2/20s
	}
}
http://%[7]s {
	import app
	route {
		@upgrade header Upgrade websocket
		abort @upgrade
		socketio_proxy %[5]s %[6]s
	}
}
http://%[8]s {
	import app
	socketio_proxy %[9]s %[10]s
}
`, edgeAddr, limitedAddr, allowed, w1.SecretKey, w1.Addr, w2.Addr, noWSAddr, ownAddr, w3.Addr, w4.Addr)),
		edgeAddr, limitedAddr, noWSAddr, ownAddr)
	edge, limited, noWS, own := "http://"+edgeAddr, "http://"+limitedAddr, "http://"+noWSAddr, "http://"+ownAddr
	b := startBridge(t)

	// The allowed page stays open: the last subtest kills its worker.
	home := b.open(t, "home", allowed+"/?edge="+edge)
	home.eval(t, `startClient("main", { withCredentials: true })`, nil)

	t.Run("allowed origin reaches connected", func(t *testing.T) {
		states := home.waitState(t, "main", "connected", "", 20*time.Second)
		if states[0].State != "connecting" {
			t.Errorf("states %s; want connecting first", names(states))
		}
		var ack map[string]any
		home.eval(t, `echo("main")`, &ack)
		if ack["data"] != "hi" {
			t.Errorf("echo through the client's socket: %v", ack)
		}
		home.screenshot(t, "connected")
	})

	t.Run("disallowed origin reaches cors_error naming its origin", func(t *testing.T) {
		p := b.open(t, "foreign", other+"/?edge="+edge)
		p.eval(t, `startClient("main", { withCredentials: true })`, nil)
		states := p.waitState(t, "main", "cors_error", "origin_not_allowed", 20*time.Second)
		last := states[len(states)-1]
		if !strings.Contains(last.Message, "This page's origin, "+other+", is not allowed") ||
			!strings.Contains(last.Message, "origins (explicit list)") {
			t.Errorf("message %q; want it to name %s and where the allowed origins come from", last.Message, other)
		}
		if !strings.Contains(last.Action, "Add "+other+" to edge_cors") {
			t.Errorf("action %q; want it to say where to add %s", last.Action, other)
		}
		var shown string
		p.eval(t, `document.querySelector(".client .msg").textContent`, &shown)
		if !strings.Contains(shown, other) {
			t.Errorf("the page shows %q; want the message naming %s", shown, other)
		}
		p.screenshot(t, "cors_error")
	})

	t.Run("a plain user opening /admin reaches auth_required", func(t *testing.T) {
		p := b.open(t, "admin", allowed+"/?edge="+edge)
		p.eval(t, `startClient("admin", { namespace: "/admin", withCredentials: true })`, nil)
		states := p.waitState(t, "admin", "auth_required", "not_logged_in", 20*time.Second)
		if m := states[len(states)-1].Message; !strings.Contains(m, "logged-in users") {
			t.Errorf("anonymous: message %q", m)
		}
		var status int
		p.eval(t, `login("bob", "user")`, &status)
		if status != 200 {
			t.Fatalf("login as a plain user: %d", status)
		}
		p.eval(t, `__clients.admin.retry().then(() => true)`, nil)
		states = p.waitState(t, "admin", "auth_required", "role_missing", 20*time.Second)
		last := states[len(states)-1]
		if !strings.Contains(last.Message, "requires the role admin") || !strings.Contains(last.Action, "Log in as a user with the role admin") {
			t.Errorf("plain user: %+v", last)
		}
		p.screenshot(t, "auth_required")
		// Logging in as an admin and retrying is all it takes.
		p.eval(t, `login("carol", "admin")`, &status)
		p.eval(t, `__clients.admin.retry().then(() => true)`, nil)
		p.waitState(t, "admin", "connected", "", 20*time.Second)
	})

	t.Run("retry() after a login opens a new session as the new user", func(t *testing.T) {
		p := b.open(t, "relogin", allowed+"/?edge="+edge)
		p.eval(t, `startClient("main", { withCredentials: true })`, nil)
		p.waitState(t, "main", "connected", "", 20*time.Second)
		var before, after string
		p.eval(t, `__clients.main.socket.io.engine.id`, &before)
		var status int
		p.eval(t, `login("erin", "admin")`, &status)
		if status != 200 {
			t.Fatalf("login: %d", status)
		}
		p.eval(t, `__clients.main.retry().then(() => true)`, nil)
		p.waitState(t, "main", "connected", "", 20*time.Second)
		p.eval(t, `__clients.main.socket.io.engine.id`, &after)
		if before == "" || before == after {
			t.Errorf("Engine.IO session %q before the login, %q after; want a new one", before, after)
		}
	})

	t.Run("a rate-limited client waits for Retry-After", func(t *testing.T) {
		p := b.open(t, "limited", allowed+"/?edge="+limited)
		for _, c := range []string{"a", "b"} {
			p.eval(t, fmt.Sprintf(`startClient(%q)`, c), nil)
			p.waitState(t, c, "connected", "", 20*time.Second)
		}
		p.eval(t, `startClient("c")`, nil)
		states := p.waitState(t, "c", "suspended", "rate_limited", 20*time.Second)
		suspended := states[len(states)-1]
		p.screenshot(t, "rate_limited")
		if suspended.RetryAfter == nil || *suspended.RetryAfter < 1 || *suspended.RetryAfter > 10 {
			t.Fatalf("suspended %+v; want the Retry-After of a 2/20s limit, 1 to 10 s", suspended)
		}
		wait := float64(*suspended.RetryAfter) * 1000
		if suspended.Delay < wait || suspended.Delay > wait*1.1+1 {
			t.Errorf("reported delay %.0f ms; want Retry-After (%.0f ms) plus at most 10%%", suspended.Delay, wait)
		}
		if !strings.Contains(suspended.Message, fmt.Sprintf("wait %d s", *suspended.RetryAfter)) {
			t.Errorf("message %q", suspended.Message)
		}
		states = p.waitState(t, "c", "connected", "", time.Duration(wait)*time.Millisecond+20*time.Second)
		connected := states[len(states)-1]
		if waited := connected.T - suspended.T; waited < wait {
			t.Errorf("connected %.0f ms after the 429; want at least Retry-After, %.0f ms", waited, wait)
		}
		t.Logf("Retry-After %d s; reported delay %.0f ms; connected %.0f ms after the 429; states %s",
			*suspended.RetryAfter, suspended.Delay, connected.T-suspended.T, names(states))
	})

	t.Run("with WebSockets blocked the client falls back to polling", func(t *testing.T) {
		p := b.open(t, "nows", allowed+"/?edge="+noWS)
		p.eval(t, `startClient("fb")`, nil)
		states := p.waitState(t, "fb", "connected", "", 30*time.Second)
		if names(states) != "connecting → reconnecting → connected" || states[1].Category != "transport_failed" {
			t.Errorf("states %s (%s); want connecting → reconnecting (transport_failed) → connected", names(states), states[1].Category)
		}
		var rung int
		p.eval(t, `__clients.fb.rung`, &rung)
		if rung != 1 {
			t.Errorf("on rung %d of the transport ladder; want 1, the first fallback", rung)
		}
		var transport string
		p.eval(t, `__clients.fb.socket.io.engine.transport.name`, &transport)
		if transport != "polling" {
			t.Errorf("connected over %q; want polling, the ladder's next rung", transport)
		}
		var ack map[string]any
		p.eval(t, `echo("fb")`, &ack)
		if ack["data"] != "hi" {
			t.Errorf("echo over the fallback: %v", ack)
		}
		t.Logf("connected over %s %.0f ms after the first attempt; states %s; reconnecting said %q",
			transport, states[len(states)-1].T-states[0].T, names(states), states[1].Message)
	})

	t.Run("a background tab waits to reconnect until it is shown", func(t *testing.T) {
		p := b.open(t, "tab", allowed+"/?edge="+own)
		p.eval(t, `startClient("bg")`, nil)
		p.waitState(t, "bg", "connected", "", 20*time.Second)
		var ack map[string]any
		p.eval(t, `echo("bg")`, &ack)
		before, _ := ack["worker"].(string)
		w, ok := workers[before]
		if !ok || (before != "w3" && before != "w4") {
			t.Fatalf("echo answered by %q; want w3 or w4", before)
		}
		// Headless Chromium never hides a page; the page's own view of
		// its visibility is what the client reads, so that is what is
		// switched, with the event a browser fires.
		p.eval(t, `(() => {
			window.__visibility = "hidden";
			Object.defineProperty(document, "visibilityState", { configurable: true, get: () => window.__visibility });
			Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__visibility === "hidden" });
			document.dispatchEvent(new Event("visibilitychange"));
			return true;
		})()`, nil)
		seen := len(p.states(t, "bg"))
		w.Kill()
		states := p.waitState(t, "bg", "suspended", "background", 20*time.Second)
		suspended := states[len(states)-1]
		// Hidden for longer than the first reconnection delays: a client
		// that did not wait would be connected to the other worker by now.
		var hiddenUntil float64
		p.eval(t, `performance.now() + 2500`, &hiddenUntil)
		if err := p.b.do(map[string]any{"op": "wait", "page": p.name, "expr": fmt.Sprintf("performance.now() > %f", hiddenUntil), "timeout": 10000}, nil); err != nil {
			t.Fatal(err)
		}
		if after := p.states(t, "bg")[seen:]; names(after) != "suspended" {
			t.Fatalf("while hidden: %s; want suspended only", names(after))
		}
		var shown float64
		p.eval(t, `(() => { window.__visibility = "visible"; document.dispatchEvent(new Event("visibilitychange")); return performance.now(); })()`, &shown)
		states = p.waitState(t, "bg", "connected", "", 20*time.Second)
		after := states[seen:]
		if names(after) != "suspended → reconnecting → connected" {
			t.Errorf("after the kill: %s; want suspended → reconnecting → connected", names(after))
		}
		connected := after[len(after)-1]
		if took := connected.T - shown; took > 2000 {
			t.Errorf("connected %.0f ms after the tab was shown; want at once, not after a backoff", took)
		}
		p.eval(t, `echo("bg")`, &ack)
		if ack["worker"] == before {
			t.Errorf("still on %s after it was killed", before)
		}
		t.Logf("killed %s while hidden; suspended %.0f ms, reconnected %.0f ms after being shown, now on %v",
			before, shown-suspended.T, connected.T-shown, ack["worker"])
	})

	t.Run("killing the worker shows reconnecting then connected on the other", func(t *testing.T) {
		var ack map[string]any
		home.eval(t, `echo("main")`, &ack)
		before, _ := ack["worker"].(string)
		w, ok := workers[before]
		if !ok {
			t.Fatalf("echo answered by %q", before)
		}
		seen := len(home.states(t, "main"))
		killed := time.Now()
		w.Kill()
		home.waitState(t, "main", "reconnecting", "", 20*time.Second)
		states := home.waitState(t, "main", "connected", "", 30*time.Second)
		took := time.Since(killed)
		after := states[seen:]
		if names(after) != "reconnecting → connected" {
			t.Errorf("after the kill: %s; want reconnecting → connected", names(after))
		}
		if after[0].Category != "worker_gone" {
			t.Errorf("reconnecting with %q; want worker_gone", after[0].Category)
		}
		home.eval(t, `echo("main")`, &ack)
		if ack["worker"] == before {
			t.Errorf("still on %s after it was killed", before)
		}
		home.screenshot(t, "after_kill")
		t.Logf("killed %s; back on %v after %v (reconnect delay %.0f ms)", before, ack["worker"], took.Round(time.Millisecond), after[0].Delay)
	})
}
