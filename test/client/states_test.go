package client

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// The states and categories TestBrowserClient does not reach, each in
// real Chromium against the real stack: workers w1 and w2 behind one
// Caddy with five sites, and a second Caddy the test stops.
//
//   - rules: `namespace /admin role admin` (a reserved namespace, the
//     app's own refusals, the app closing a connection, malformed packets)
//   - messages: `rate_limit messages 8/3s` (the message-rate close)
//   - nocreds: edge_cors without credentials (a page that sends cookies)
//   - teapot: answers 418 where the Engine.IO path should be
//   - the second Caddy: stopped under connected clients
func TestBrowserClientStates(t *testing.T) {
	testenv.RequireBrowser(t)
	w1 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	w2 := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w2", SecretKey: w1.SecretKey})
	allowed := fmt.Sprintf("http://127.0.0.1:%d", testenv.ServePage(t, "test/client/page.html"))
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	rulesAddr, messagesAddr, nocredsAddr, teapotAddr, doomedAddr := addr(), addr(), addr(), addr(), addr()
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
(site) {
	bind 127.0.0.1
	flask_session {
		secret_key %[1]s
	}
	socketio_client /socket.io-edge/
}
(cors) {
	edge_cors %[2]s {
		credentials
		environment development
	}
}
http://%[5]s {
	import site
	import cors
	socketio_proxy %[3]s %[4]s {
		namespace /admin role admin
	}
	reverse_proxy %[3]s %[4]s
}
http://%[6]s {
	import site
	import cors
	socketio_proxy %[3]s %[4]s {
		rate_limit messages 8/3s
	}
	reverse_proxy %[3]s %[4]s
}
http://%[7]s {
	import site
	edge_cors %[2]s {
		environment development
	}
	socketio_proxy %[3]s %[4]s
	reverse_proxy %[3]s %[4]s
}
http://%[8]s {
	import site
	import cors
	respond /socket.io/* "I'm a teapot" 418
	reverse_proxy %[3]s %[4]s
}
`, w1.SecretKey, allowed, w1.Addr, w2.Addr, rulesAddr, messagesAddr, nocredsAddr, teapotAddr)),
		rulesAddr, messagesAddr, nocredsAddr, teapotAddr)
	doomed := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	edge_cors %[2]s {
		environment development
	}
	socketio_client /socket.io-edge/
	socketio_proxy %[3]s %[4]s
}
`, doomedAddr, allowed, w1.Addr, w2.Addr)), doomedAddr)
	rules, messages, nocreds, teapot := "http://"+rulesAddr, "http://"+messagesAddr, "http://"+nocredsAddr, "http://"+teapotAddr
	b := startBridge(t)

	last := func(s []state) state { return s[len(s)-1] }

	t.Run("a namespace reserved by the edge is error reserved", func(t *testing.T) {
		p := b.open(t, "reserved", allowed+"/?edge="+rules)
		p.eval(t, `startClient("r", { namespace: "/.flaskedge-denied/x" })`, nil)
		s := last(p.waitState(t, "r", "error", "reserved", 20*time.Second))
		if !strings.Contains(s.Message, "reserved by the edge") {
			t.Errorf("message %q", s.Message)
		}
	})

	t.Run("a namespace the app refuses is error refused_by_app", func(t *testing.T) {
		p := b.open(t, "app", allowed+"/?edge="+rules)
		// python-socketio refuses a namespace it has no handler for with
		// CONNECT_ERROR "Unable to connect"; the edge has no rule for it.
		p.eval(t, `startClient("n", { namespace: "/nowhere" })`, nil)
		states := p.waitState(t, "n", "error", "refused_by_app", 20*time.Second)
		if s := last(states); s.Message != "The app refused the connection to /nowhere without saying why (an app that has no handler for /nowhere refuses it so)." {
			t.Errorf("message %q", s.Message)
		}
		if names(states) != "connecting → error" {
			t.Errorf("states %s; want connecting → error, no retry", names(states))
		}
	})

	t.Run("the app closing the connection is disconnected closed_by_server", func(t *testing.T) {
		p := b.open(t, "kick", allowed+"/?edge="+rules)
		p.eval(t, `startClient("k")`, nil)
		// A first connect is a new session: not recovered, and says so.
		if c := last(p.waitState(t, "k", "connected", "", 20*time.Second)); c.Recovered == nil || *c.Recovered {
			t.Errorf("first connected event: recovered %v; want false", c.Recovered)
		}
		var socketRecovered any
		p.eval(t, `__clients.k.socket.recovered ?? null`, &socketRecovered)
		if socketRecovered == true {
			t.Errorf("socket.recovered is true on a first connect")
		}
		p.eval(t, `__clients.k.socket.emit("kick"), true`, nil)
		states := p.waitState(t, "k", "disconnected", "closed_by_server", 20*time.Second)
		if s := last(states); !strings.Contains(s.Message, "The app closed this connection") {
			t.Errorf("message %q", s.Message)
		}
		// It stays so: the app meant it.
		p.eval(t, `new Promise((r) => setTimeout(() => r(true), 1500))`, nil)
		if got := names(p.states(t, "k")); got != "connecting → connected → disconnected" {
			t.Errorf("states %s; want no reconnection after the app closed it", got)
		}
	})

	for _, transport := range []string{"websocket", "polling"} {
		t.Run("a malformed packet over "+transport+" is error refused_by_edge, not retried", func(t *testing.T) {
			p := b.open(t, "malformed-"+transport, allowed+"/?edge="+rules)
			p.eval(t, fmt.Sprintf(`startClient("m", { transports: [[%q]] })`, transport), nil)
			p.waitState(t, "m", "connected", "", 20*time.Second)
			// A CONNECT python-socketio would read as one to /admin,
			// which the edge cannot read the same way.
			p.eval(t, `__clients.m.socket.io.engine.write('"0/admin,"'), true`, nil)
			states := p.waitState(t, "m", "error", "refused_by_edge", 20*time.Second)
			s := last(states)
			want := "malformed Socket.IO packet" // the 1008 close reason
			if transport == "polling" {
				want = "a request the edge could not read as Socket.IO" // 400 {"code":3}
			}
			if !strings.Contains(s.Message, "The edge closed the connection because this page sent") || !strings.Contains(s.Message, want) {
				t.Errorf("message %q; want it to say the edge closed it, and %q", s.Message, want)
			}
			if !strings.Contains(s.Action, "Not retrying") {
				t.Errorf("action %q", s.Action)
			}
			p.eval(t, `new Promise((r) => setTimeout(() => r(true), 1500))`, nil)
			if got := names(p.states(t, "m")); got != "connecting → connected → error" {
				t.Errorf("states %s; want no retry after the edge refused what the page sent", got)
			}
			p.screenshot(t, "refused_by_edge_"+transport)
		})
	}

	for _, transport := range []string{"websocket", "polling"} {
		t.Run("over the message rate on "+transport+" the client waits for the edge's time", func(t *testing.T) {
			p := b.open(t, "messages-"+transport, allowed+"/?edge="+messages)
			p.eval(t, fmt.Sprintf(`startClient("f", { transports: [[%q]] })`, transport), nil)
			p.waitState(t, "f", "connected", "", 20*time.Second)
			p.eval(t, `(() => { for (let i = 0; i < 30; i++) __clients.f.socket.emit("echo", i); return true; })()`, nil)
			states := p.waitState(t, "f", "suspended", "rate_limited", 20*time.Second)
			suspended := last(states)
			if suspended.RetryAfter == nil || *suspended.RetryAfter != 3 {
				t.Fatalf("suspended %+v; want the edge's wait, 3 s (the window of rate_limit messages 8/3s)", suspended)
			}
			if !strings.Contains(suspended.Message, "sent messages faster than the edge allows") || !strings.Contains(suspended.Message, "wait 3 s") {
				t.Errorf("message %q", suspended.Message)
			}
			if suspended.Delay < 3000 || suspended.Delay > 3000*1.1+1 {
				t.Errorf("reported delay %.0f ms; want 3000 ms plus at most 10%%", suspended.Delay)
			}
			if transport == "websocket" {
				p.screenshot(t, "rate_limited_messages")
			}
			states = p.waitState(t, "f", "connected", "", 20*time.Second)
			connected := last(states)
			if waited := connected.T - suspended.T; waited < 3000 {
				t.Errorf("connected again %.0f ms after the close; want at least the 3 s the edge asked", waited)
			}
			if got := names(states); got != "connecting → connected → suspended → reconnecting → connected" &&
				got != "connecting → connected → suspended → connected" {
				t.Errorf("states %s", got)
			}
			var ack map[string]any
			p.eval(t, `echo("f")`, &ack)
			if ack["data"] != "hi" {
				t.Errorf("echo after the wait: %v", ack)
			}
		})
	}

	t.Run("cookies to an edge without credentials is cors_error credentials_not_allowed", func(t *testing.T) {
		p := b.open(t, "nocreds", allowed+"/?edge="+nocreds)
		// Over polling, the transport CORS governs (a WebSocket has none).
		p.eval(t, `startClient("c", { withCredentials: true, transports: [["polling"]] })`, nil)
		s := last(p.waitState(t, "c", "cors_error", "credentials_not_allowed", 20*time.Second))
		if !strings.Contains(s.Message, "does not allow credentials") || !strings.Contains(s.Action, "Add credentials to edge_cors") {
			t.Errorf("%+v", s)
		}
		p.screenshot(t, "credentials_not_allowed")
	})

	t.Run("an answer the client cannot place is reconnecting unknown", func(t *testing.T) {
		p := b.open(t, "teapot", allowed+"/?edge="+teapot)
		p.eval(t, `startClient("u", { transports: [["polling"]] })`, nil)
		s := last(p.waitState(t, "u", "reconnecting", "unknown", 20*time.Second))
		if !strings.Contains(s.Message, "HTTP 418") {
			t.Errorf("message %q; want the status", s.Message)
		}
		p.eval(t, `__clients.u.close(), true`, nil)
		if s := p.states(t, "u"); last(s).State != "disconnected" || last(s).Category != "" {
			t.Errorf("after close(): %+v; want disconnected without an error", last(s))
		}
	})

	t.Run("the edge stopped is reconnecting edge_unreachable, and maxAttempts gives up", func(t *testing.T) {
		p := b.open(t, "doomed", allowed+"/?edge=http://"+doomedAddr)
		p.eval(t, `startClient("down")`, nil)
		p.eval(t, `startClient("gone", { maxAttempts: 3 })`, nil)
		p.waitState(t, "down", "connected", "", 20*time.Second)
		p.waitState(t, "gone", "connected", "", 20*time.Second)
		doomed.Kill()
		s := last(p.waitState(t, "down", "reconnecting", "edge_unreachable", 30*time.Second))
		if !strings.Contains(s.Message, "The edge at http://"+doomedAddr+" cannot be reached") {
			t.Errorf("message %q", s.Message)
		}
		p.screenshot(t, "edge_unreachable")
		states := p.waitState(t, "gone", "error", "gave_up", 30*time.Second)
		g := last(states)
		if !strings.HasPrefix(g.Message, "Gave up after 3 failed attempts to connect; the last one: The edge at") || !strings.Contains(g.Action, "retry()") {
			t.Errorf("%+v", g)
		}
		var tries int
		p.eval(t, `__clients.gone.tries`, &tries)
		if tries != 3 {
			t.Errorf("%d attempts made; want maxAttempts, 3", tries)
		}
		// Given up means no more attempts.
		p.eval(t, `new Promise((r) => setTimeout(() => r(true), 2500))`, nil)
		if after := p.states(t, "gone"); len(after) != len(states) {
			t.Errorf("states after giving up: %s", names(after[len(states):]))
		}
		p.eval(t, `__clients.gone.tries`, &tries)
		if tries != 3 {
			t.Errorf("%d attempts after giving up; want still 3", tries)
		}
	})
}
