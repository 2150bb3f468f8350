package socketioproxy_test

// Fifth round of attacks, on what the last commits changed: the
// X-Forwarded-* headers to the worker (headers.go upstreamHeader), the
// worker's packets read by socketio.ReadWorker, the seats, the dashboard.
// Each test fails while the edge lets the attack through.

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
	"github.com/flaskedge/flaskedge/internal/testenv"
)

// fakeWorker is an Engine.IO worker that opens every session (on polling
// or WebSocket) and records the headers of each request it gets.
type fakeWorker struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

const fakeOpen = `0{"sid":"abcdefghij0123456789","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}`

func startFakeWorker(t *testing.T) *fakeWorker {
	t.Helper()
	f := &fakeWorker{}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Header.Clone())
		f.mu.Unlock()
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.WriteMessage(websocket.TextMessage, []byte(fakeOpen))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = w.Write([]byte(fakeOpen))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeWorker) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeWorker) last() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		return nil
	}
	return f.seen[len(f.seen)-1]
}

// wsgiEnviron folds headers into the WSGI environ as eventlet's wsgi.py
// (0.33, get_environ) does: the name upper-cased with '-' as '_', and
// several headers of one name joined with ','. Werkzeug's ProxyFix then
// reads the last x_for entries of HTTP_X_FORWARDED_FOR, and likewise
// HTTP_X_FORWARDED_PROTO, _HOST, _PORT and _PREFIX.
func wsgiEnviron(h http.Header) map[string][]string {
	env := map[string][]string{}
	for k, vv := range h {
		key := "HTTP_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		env[key] = append(env[key], vv...)
	}
	return env
}

// A client the server does not trust sends the headers by which a proxy
// vouches for a request, in every spelling eventlet folds into the same
// environ key. upstreamHeader replaced X-Forwarded-For, -Proto and -Host
// but passed X-Forwarded-Port and X-Forwarded-Prefix on from anyone:
// Werkzeug's ProxyFix (x_port, x_prefix) makes them SERVER_PORT and
// SCRIPT_NAME, so url_for(_external=True) builds the attacker's URLs.
// (The underscore spellings, X_Forwarded_For and so on, which eventlet
// would join to the edge's value with ',' and ProxyFix would read last,
// are held: Caddy 2.11 drops every header with an underscore by default.)
//
//	GET /socket.io/?EIO=4&transport=polling
//	X-Forwarded-Port: 8443
//	X-Forwarded-Prefix: /evil
//	X_Forwarded_For: 6.6.6.6   X_Forwarded_Host: evil.example
//	worker environ: HTTP_X_FORWARDED_PORT=8443, HTTP_X_FORWARDED_PREFIX=/evil
func TestAttack5UnderscoreForwardedHeadersReachTheWorker(t *testing.T) {
	worker := startFakeWorker(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
	}
}
`, addr, worker.addr())), addr)
	_ = edge
	spoof := map[string]string{
		"X_Forwarded_For":    "6.6.6.6",
		"X_Forwarded_Host":   "evil.example",
		"X_Forwarded_Proto":  "https",
		"X-Forwarded-Port":   "8443",
		"X-Forwarded-Prefix": "/evil",
		"X_Forwarded_Prefix": "/evil2",
		"Forwarded":          "for=6.6.6.6;host=evil.example",
		"X-Real-Ip":          "6.6.6.6",
	}
	check := func(transport string, h http.Header) {
		t.Helper()
		require.NotNil(t, h, transport)
		env := wsgiEnviron(h)
		assert.Equal(t, []string{"127.0.0.1"}, env["HTTP_X_FORWARDED_FOR"], "%s: the worker sees a forged client address", transport)
		assert.Equal(t, []string{addr}, env["HTTP_X_FORWARDED_HOST"], "%s: the worker sees a forged host", transport)
		assert.Equal(t, []string{"http"}, env["HTTP_X_FORWARDED_PROTO"], "%s: the worker sees a forged scheme", transport)
		for _, k := range []string{"HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED"} {
			assert.Empty(t, env[k], "%s: %s from an untrusted client reaches the worker", transport, k)
		}
	}

	status, body := atkDo(t, "GET", "http://"+addr, "/socket.io/?EIO=4&transport=polling", "", spoof)
	require.Equal(t, 200, status, body)
	check("polling", worker.last())

	hdr := http.Header{}
	for k, v := range spoof {
		hdr[k] = []string{v} // as written, not canonicalized
	}
	ws, status, err := atkDial(t, addr, "/socket.io/?EIO=4&transport=websocket", hdr)
	require.NoError(t, err, status)
	require.NotEmpty(t, ws.next("0{", 5*time.Second))
	check("websocket", worker.last())
}

// The connect rate is keyed by Caddy's client_ip: a client the server
// does not trust cannot take a fresh bucket per handshake by sending
// another X-Forwarded-For (in any spelling), X-Real-IP or Forwarded each
// time. Held.
func TestAttack5SpoofedForwardedForDoesNotDodgeTheConnectRate(t *testing.T) {
	worker := startFakeWorker(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
		rate_limit connect 3/m
	}
}
`, addr, worker.addr())), addr)
	refused := 0
	for i := range 8 {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		status, _ := atkDo(t, "GET", "http://"+addr, "/socket.io/?EIO=4&transport=polling", "", map[string]string{
			"X-Forwarded-For": ip, "X-Real-Ip": ip, "Forwarded": "for=" + ip, "X_Forwarded_For": ip,
		})
		if status == http.StatusTooManyRequests {
			refused++
		}
	}
	assert.Equal(t, 5, refused, "8 handshakes from one address under 3/m, each with another forged X-Forwarded-For")
}

// The Caddyfile substitutes {$VAR} before it reads the tokens: a
// sticky_secret with a space or a line break in the environment (a
// passphrase, a secret file read with a trailing line) becomes several
// tokens, and the error that refuses the config (printed by caddy run,
// adapt and reload, returned by the admin API) quoted the second of them,
// part of the secret: "sticky_secret takes one value, got also "horse"",
// "unknown subdirective "batterystaple99"".
func TestAttack5StickySecretSplitByTheCaddyfileIsNotEchoed(t *testing.T) {
	for _, secret := range []string{"correct horse battery staple", "correcthorse1234\nbatterystaple99"} {
		t.Setenv("ATK5_STICKY_SECRET", secret)
		_, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(`:8080 {
	socketio_proxy 127.0.0.1:5001 {
		sticky_secret {$ATK5_STICKY_SECRET}
	}
}
`), nil)
		require.Error(t, err, "%q", secret)
		for _, part := range strings.Fields(secret) {
			assert.NotContains(t, err.Error(), part, "the error quotes part of the sticky_secret")
		}
	}
}

// rawRequest writes one HTTP/1.1 request on a fresh connection; when
// hangUp, it closes the connection at once, before any answer, and
// otherwise returns the status line.
func rawRequest(t *testing.T, addr, request string, hangUp bool) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte(request))
	require.NoError(t, err)
	if hangUp {
		return ""
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line)
}

// upstreamSessions reads the admin API's live sessions per worker.
func upstreamSessions(t *testing.T, edge *testenv.Edge) map[string]int {
	t.Helper()
	res, err := http.Get("http://" + edge.AdminAddr + "/socketio/upstreams")
	require.NoError(t, err)
	defer res.Body.Close()
	var ups []struct {
		Address  string
		Sessions int
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&ups))
	out := map[string]int{}
	for _, u := range ups {
		out[u.Address] = u.Sessions
	}
	return out
}

// Handshakes that fail at every step (refused by the worker on either
// transport, WebSocket-only handshakes whose client upgrade fails after
// the worker opened the session, clients that hang up mid-handshake,
// handshakes moved off a worker that cannot be dialled, upgrades of a sid
// the worker forgot) must each give back the seat they took on their
// worker. A leaked seat is invisible in the admin API (which counts the
// registry) but not to least_sessions: once the floods hit worker a alone,
// a reload adds worker b and ten new sessions must split evenly; every
// seat a kept sends one more of them to b. Held.
func TestAttack5FailedHandshakesGiveBackTheirSeats(t *testing.T) {
	env := map[string]string{"PING_INTERVAL": "1", "PING_TIMEOUT": "1", "CORS_ALLOWED_ORIGINS": atkAllowed}
	a := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "a", SecretKey: atkSecret, Env: env})
	b := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "b", SecretKey: atkSecret, Env: env})
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(to string) testenv.EdgeConfig {
		return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
		lb_policy least_sessions
		fail_duration 200ms
	}
}
`, addr, to))
	}
	edge := testenv.StartEdge(t, cfg(a.Addr+" "+dead), addr)
	base := "http://" + addr
	badVersion := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 12\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	wsHangUp := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	pollHangUp := "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	for i := range 15 {
		// The worker opens the session; the client's upgrade then fails.
		status := rawRequest(t, addr, badVersion, false)
		assert.NotContains(t, status, " 101 ", "round %d", i)
		// Refused by the worker, on either transport.
		st, body := atkDo(t, "GET", base, "/socket.io/?EIO=4&transport=polling", "", map[string]string{"Origin": atkForeign})
		assert.Equal(t, 400, st, body)
		_, st, err := atkDial(t, addr, "/socket.io/?EIO=4&transport=websocket", http.Header{"Origin": {atkForeign}})
		assert.Error(t, err)
		assert.Equal(t, 400, st)
		// Hung up mid-handshake.
		rawRequest(t, addr, wsHangUp, true)
		rawRequest(t, addr, pollHangUp, true)
		// An upgrade of a sid the worker has forgotten.
		p, st, body := atkOpen(t, base, "/socket.io/", "")
		require.Equal(t, 200, st, body)
		p.post("1")
		_, _, err = atkDial(t, addr, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid, nil)
		assert.Error(t, err)
		// Let the dead worker come back into rotation now and then, so
		// that handshakes are moved off it.
		if i%5 == 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	waitRegistryEmpty(t, edge)

	edge.Reload(t, cfg(a.Addr+" "+b.Addr))
	for range 10 {
		_, st, body := atkOpen(t, base, "/socket.io/", "")
		require.Equal(t, 200, st, body)
	}
	got := upstreamSessions(t, edge)
	assert.InDelta(t, 5, got[a.Addr], 1, "least_sessions after the floods: %v (a kept seats the floods took)", got)
	assert.InDelta(t, 5, got[b.Addr], 1, "%v", got)
}

// A long-poll GET is checked with the policy of the config that received
// it (call.pol), not the policy of the moment, which WebSocket relays
// follow (policySlot). A reload that takes a namespace from a user acts
// on her polling session only at its next request: the GET the worker
// holds across the reload still relays, when the worker answers it (up
// to pingInterval later), the data of the namespace she may no longer
// use.
//
//	config 1: namespace /admin role admin           (/ open to all)
//	bob (user), polling: 40, join room r; a GET waits at the worker
//	reload, config 2: also namespace / role admin
//	ada (admin): broadcast to room r
//	bob's waiting GET: 42["broadcast",{"room":"r","data":"for-room-r",...}]
func TestAttack5PollHeldAcrossAReloadRelaysAWithdrawnNamespace(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace /admin role admin")
	bob := testenv.Login(t, s.worker.URL(), "bob", "user")
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")

	p, status, body := atkOpen(t, s.url(), "/socket.io/", bob)
	require.Equal(t, 200, status, body)
	p.post("40")
	require.NotEmpty(t, p.until("40", 3))
	p.post(`421["join","r"]`)
	require.NotEmpty(t, p.until("431", 3))

	waiting := make(chan string, 1)
	go func() {
		_, body := atkDo(t, "GET", s.url(), "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "", p.header)
		waiting <- body
	}()
	// The GET must reach the worker before the reload.
	time.Sleep(500 * time.Millisecond)
	s.edge.Reload(t, s.config("namespace /admin role admin\n\t\tnamespace / role admin"))

	a, status, body := atkOpen(t, s.url(), "/socket.io/", ada)
	require.Equal(t, 200, status, body)
	a.post("40")
	require.NotEmpty(t, a.until("40", 3))
	a.post(`422["broadcast",{"room":"r","data":"for-room-r"}]`)
	require.NotEmpty(t, a.until("432", 3), "the broadcast was sent")

	select {
	case got := <-waiting:
		assert.NotContains(t, got, "for-room-r", "bob's poll, held across the reload, relays data of / which the new config gives admins only")
	case <-time.After(30 * time.Second):
		t.Fatal("bob's poll never returned")
	}
}

// Behind a trusted proxy that appends the address it saw (as Caddy,
// nginx's $proxy_add_x_forwarded_for and HAProxy do), a client sends its
// own X-Forwarded-For first. Caddy's client_ip, which the connect rate and
// max_requests_per_ip key on, is the leftmost entry unless the server sets
// trusted_proxies_strict: every handshake then has a bucket of its own.
// With trusted_proxies_strict (the rightmost untrusted entry) it holds.
//
//	servers { trusted_proxies static 127.0.0.1/32 }
//	proxy -> edge: X-Forwarded-For: 198.51.100.<i>, 203.0.113.7
//	rate_limit connect 3/m: none of 8 refused
func TestAttack5ForwardedForThroughATrustedProxyDodgesTheConnectRate(t *testing.T) {
	worker := startFakeWorker(t)
	for _, strict := range []bool{true, false} {
		t.Run(fmt.Sprintf("trusted_proxies_strict=%v", strict), func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			option := ""
			if strict {
				option = "trusted_proxies_strict"
			}
			path := filepath.Join(t.TempDir(), "Caddyfile")
			require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`{
	admin {$EDGE_ADMIN}
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/32
		%s
	}
}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
		rate_limit connect 3/m
	}
}
`, option, addr, worker.addr())), 0o600))
			testenv.StartEdgeFile(t, path, nil, addr)
			refused := 0
			for i := range 8 {
				status, _ := atkDo(t, "GET", "http://"+addr, "/socket.io/?EIO=4&transport=polling", "", map[string]string{
					"X-Forwarded-For": fmt.Sprintf("198.51.100.%d, 203.0.113.7", i+1),
				})
				if status == http.StatusTooManyRequests {
					refused++
				}
			}
			assert.Equal(t, 5, refused, "8 handshakes of client 203.0.113.7 under 3/m, each with another forged X-Forwarded-For before the proxy's entry")
		})
	}
}

// "No client may connect to a namespace under" the denial prefix: on
// polling the edge refuses it whatever the rules, but the WebSocket
// filter reads a CONNECT whole only when the policy has namespace rules.
// Without rules a client's CONNECT to a marker namespace of its own
// making reaches the worker as it was, and the worker's answer comes back
// through the edge's denial decoding: the client chooses the namespace,
// message and data of a CONNECT_ERROR the edge turns it into (and, with
// an app that accepts every namespace, is connected to the marker
// namespace). A forged marker that decodes is too long for the peek and
// is read whole (held); a short one is not:
//
//	ws: 40/.flaskedge-denied/x,{}
//	worker -> client: 44/.flaskedge-denied/x,"Unable to connect"
func TestAttack5MarkerNamespaceConnectOnWebSocketWithoutRules(t *testing.T) {
	s := startAtkStack(t, nil, "", "")
	ws, status, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err, status)
	require.NotEmpty(t, ws.next("0{", 5*time.Second))
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"n":"/admin","m":"forged","d":{"reason":"x"}}`))
	ws.send(t, "40/.flaskedge-denied/"+forged+",")
	got := ws.next("44", 5*time.Second)
	require.NotEmpty(t, got, "no CONNECT_ERROR at all")
	assert.NotContains(t, got, "forged", "the client made the edge decode a denial marker of its own: %s", got)
	assert.Contains(t, got, "reserved", "the edge's own refusal of a reserved namespace: %s", got)

	// A marker namespace short enough for the 32-byte peek is decided
	// there, and without rules a CONNECT is not read further: it
	// reaches the worker, which answers "Unable to connect" (an app
	// with namespaces='*' connects it), instead of the edge's refusal.
	ws.send(t, "40/.flaskedge-denied/x,{}")
	got = ws.next("44", 5*time.Second)
	require.NotEmpty(t, got, "no CONNECT_ERROR at all")
	assert.Contains(t, got, "reserved", "a CONNECT to a namespace under the denial prefix reached the worker: %s", got)
}

// The connect rate and max_requests_per_ip key on the client's address as
// written: a client on IPv6, which every ISP hands a /64 or more, takes a
// fresh bucket per handshake by using another address of its own prefix.
// (Shown through a trusted proxy with trusted_proxies_strict, which
// names the client's address; a client on IPv6 does it directly.)
//
//	proxy -> edge: X-Forwarded-For: 2001:db8:1:2::<i>
//	rate_limit connect 3/m: none of 8 refused
func TestAttack5IPv6AddressesOfOnePrefixDodgeTheConnectRate(t *testing.T) {
	worker := startFakeWorker(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	path := filepath.Join(t.TempDir(), "Caddyfile")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`{
	admin {$EDGE_ADMIN}
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/32
		trusted_proxies_strict
	}
}
http://%s {
	bind 127.0.0.1
	socketio_proxy {
		to %s
		rate_limit connect 3/m
	}
}
`, addr, worker.addr())), 0o600))
	testenv.StartEdgeFile(t, path, nil, addr)
	refused := 0
	for i := range 8 {
		status, _ := atkDo(t, "GET", "http://"+addr, "/socket.io/?EIO=4&transport=polling", "", map[string]string{
			"X-Forwarded-For": fmt.Sprintf("2001:db8:1:2::%x", i+1),
		})
		if status == http.StatusTooManyRequests {
			refused++
		}
	}
	assert.Equal(t, 5, refused, "8 handshakes from one IPv6 /64 under 3/m")
}

// A polling POST is checked with the policy of the config that received
// it, when its body has arrived: a client that trickles the body of a
// CONNECT across a reload has it checked against the old rules, and the
// worker runs the app's connect handler for a namespace the new config
// refuses it.
//
//	config 1: namespace /admin role admin           (/ open to all)
//	bob (user): handshake; POST "4" ... reload (namespace / role admin) ... "0"
//	worker: connect namespace=/ user=bob
func TestAttack5PostTrickledAcrossAReloadConnectsAWithdrawnNamespace(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace /admin role admin")
	bob := testenv.Login(t, s.worker.URL(), "bob", "user")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", bob)
	require.Equal(t, 200, status, body)

	conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST /socket.io/?EIO=4&transport=polling&sid=" + p.sid + " HTTP/1.1\r\nHost: " + s.addr +
		"\r\nCookie: " + bob + "\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 2\r\n\r\n4"))
	require.NoError(t, err)
	s.edge.Reload(t, s.config("namespace /admin role admin\n\t\tnamespace / role admin"))
	// The reload closes the old config's idle connections: a poll sent on
	// one as it closes gets EOF (failed once on a loaded machine).
	atkClient.CloseIdleConnections()
	_, err = conn.Write([]byte("0"))
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	t.Logf("POST: %s", strings.TrimSpace(line))

	got := p.until("4", 3)
	assert.True(t, strings.HasPrefix(got, "44"), "bob was not refused / after the reload: %q", got)
	assert.Zero(t, atkCount(s.worker, "connect namespace=/ ", "user=bob"),
		"the worker connected bob to /, which the config in force gives admins only")
}

// craftedWorker is a worker that, as soon as a session opens (on polling,
// at its first long-poll; on WebSocket, after the open packet), sends
// the data packets of msgs, with binary attachments, then the sentinel
// 42["sentinel"].
type craftedWorker struct {
	srv *httptest.Server
}

// crafted is one worker message: text, then binary attachments.
type crafted struct {
	text        string
	attachments [][]byte
}

func startCraftedWorker(t *testing.T, msgs []crafted) *craftedWorker {
	t.Helper()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	var mu sync.Mutex
	sent := map[string]bool{}
	f := &craftedWorker{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.WriteMessage(websocket.TextMessage, []byte(fakeOpen))
			for _, m := range msgs {
				_ = c.WriteMessage(websocket.TextMessage, []byte(m.text))
				for _, a := range m.attachments {
					_ = c.WriteMessage(websocket.BinaryMessage, a)
				}
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte(`42["sentinel"]`))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		sid := r.URL.Query().Get("sid")
		switch {
		case sid == "":
			_, _ = w.Write([]byte(fakeOpen))
		case r.Method == http.MethodPost:
			_, _ = w.Write([]byte("ok"))
		default:
			mu.Lock()
			first := !sent[sid]
			sent[sid] = true
			mu.Unlock()
			if !first {
				_, _ = w.Write([]byte("6"))
				return
			}
			var parts []string
			for _, m := range msgs {
				parts = append(parts, m.text)
				for _, a := range m.attachments {
					parts = append(parts, "b"+base64.StdEncoding.EncodeToString(a))
				}
			}
			parts = append(parts, `42["sentinel"]`)
			_, _ = w.Write([]byte(strings.Join(parts, "\x1e")))
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// The worker's data for namespaces the session's user may not use, read
// with socketio.ReadWorker through the 32-byte peek on WebSocket and
// whole on polling: namespaces that end just before, at and past the
// peek, far past it, with ack ids, binary events and their attachments.
// None of it reaches a user without the role; the sentinel on / does.
// Held.
func TestAttack5WorkerDataForRefusedNamespacesNeverReachesTheClient(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: atkSecret})
	bob := testenv.Login(t, login.URL(), "bob", "user")
	var msgs []crafted
	for _, n := range []int{1, 20, 25, 26, 27, 28, 29, 30, 31, 32, 40, 300} {
		ns := "/" + strings.Repeat("n", n)
		msgs = append(msgs,
			crafted{text: "42" + ns + `,["leak-event"]`},
			crafted{text: "43" + ns + `,7["leak-ack"]`},
			crafted{text: "451-" + ns + `,["leak-bin",{"_placeholder":true,"num":0}]`, attachments: [][]byte{[]byte("LEAK-ATTACHMENT")}},
			crafted{text: "4612-" + ns + `,9[` + strings.Repeat(`{"_placeholder":true,"num":0},`, 11) + `{"_placeholder":true,"num":11}]`,
				attachments: func() (a [][]byte) {
					for range 12 {
						a = append(a, []byte("LEAK-ATTACHMENT"))
					}
					return
				}()},
		)
	}
	worker := startCraftedWorker(t, msgs)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	flask_session {
		secret_key %s
	}
	socketio_proxy {
		to %s
		namespace / public
		namespace * role admin
	}
}
`, addr, atkSecret, strings.TrimPrefix(worker.srv.URL, "http://"))), addr)

	// WebSocket.
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, res, err := d.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", http.Header{"Cookie": {bob}})
	require.NoError(t, err)
	res.Body.Close()
	defer conn.Close()
	var got []string
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		mt, m, err := conn.ReadMessage()
		require.NoError(t, err, "websocket, after %q", got)
		if mt == websocket.BinaryMessage {
			got = append(got, "binary:"+string(m))
			continue
		}
		got = append(got, string(m))
		if string(m) == `42["sentinel"]` {
			break
		}
	}
	all := strings.Join(got, "\n")
	assert.NotContains(t, all, "leak", "websocket")
	assert.NotContains(t, all, "LEAK", "websocket")
	assert.Contains(t, all, "41/n,", "websocket: the client is told the namespace is not its")

	// Polling.
	p, status, body := atkOpen(t, "http://"+addr, "/socket.io/", bob)
	require.Equal(t, 200, status, body)
	status, body = atkDo(t, "GET", "http://"+addr, "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "", p.header)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, `42["sentinel"]`, "polling")
	assert.Contains(t, body, "41/"+strings.Repeat("n", 300)+",", "polling: the client is told the namespace is not its")
	assert.NotContains(t, body, "leak", "polling")
	assert.NotContains(t, body, base64.StdEncoding.EncodeToString([]byte("LEAK-ATTACHMENT")), "polling")
}

// namespaceWorker is a worker that connects every namespace a client
// asks for (python-socketio's namespaces='*'), on polling: each CONNECT
// POSTed is answered, at the next long-poll, with the CONNECT reply as
// python-socketio encodes it; DISCONNECTs POSTed are recorded.
type namespaceWorker struct {
	srv         *httptest.Server
	mu          sync.Mutex
	queue       []string
	disconnects []string
	closed      bool
}

func startNamespaceWorker(t *testing.T) *namespaceWorker {
	t.Helper()
	f := &namespaceWorker{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		if r.URL.Query().Get("sid") == "" {
			_, _ = w.Write([]byte(fakeOpen))
			return
		}
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			f.mu.Lock()
			for p := range strings.SplitSeq(string(b), "\x1e") {
				if ns, ok := strings.CutPrefix(p, "40"); ok {
					ns, _, _ = strings.Cut(ns, ",")
					f.queue = append(f.queue, "40"+ns+`,{"sid":"nsSID"}`)
				}
				if ns, ok := strings.CutPrefix(p, "41"); ok {
					ns, _, _ = strings.Cut(ns, ",")
					f.disconnects = append(f.disconnects, ns)
				}
				if p == "1" {
					f.closed = true
				}
			}
			f.mu.Unlock()
			_, _ = w.Write([]byte("ok"))
			return
		}
		f.mu.Lock()
		q := f.queue
		f.queue = nil
		f.mu.Unlock()
		if len(q) == 0 {
			q = []string{"6"}
		}
		_, _ = w.Write([]byte(strings.Join(q, "\x1e")))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// wasClosed reports whether the worker got the Engine.IO close packet.
func (f *namespaceWorker) wasClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *namespaceWorker) disconnected(ns string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.disconnects, ns)
}

// Without namespace rules, a polling response streams through
// pollWatcher, which follows the namespaces the worker connects from the
// first 256 bytes of each packet: the CONNECT reply of a longer namespace
// is not recorded. A reload that then adds a rule the user fails never
// withdraws that namespace: the worker keeps the client connected (the
// app's rooms, presence and handlers go on) and the client is not told,
// where a shorter namespace gets its DISCONNECT both ways at the next
// long-poll.
//
//	no rules; bob (user), polling: 40/<300 x n>,   <- 40/<300 x n>,{"sid":...}
//	reload: namespace * role admin
//	next long-poll: no 41/<300 x n>, ; the worker gets no DISCONNECT
func TestAttack5LongNamespaceConnectedOnPollingIsNeverWithdrawn(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: atkSecret})
	bob := testenv.Login(t, login.URL(), "bob", "user")
	worker := startNamespaceWorker(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(rules string) testenv.EdgeConfig {
		return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	flask_session {
		secret_key %s
	}
	socketio_proxy {
		to %s
		%s
	}
}
`, addr, atkSecret, strings.TrimPrefix(worker.srv.URL, "http://"), rules))
	}
	edge := testenv.StartEdge(t, cfg(""), addr)
	short, long := "/short", "/"+strings.Repeat("n", 300)
	p, status, body := atkOpen(t, "http://"+addr, "/socket.io/", bob)
	require.Equal(t, 200, status, body)
	status, _ = p.post("40" + short + ",\x1e40" + long + ",")
	require.Equal(t, 200, status)
	require.NotEmpty(t, p.until("40"+long+",", 3), "the worker connected bob to the long namespace")

	edge.Reload(t, cfg("namespace * role admin"))
	status, body = atkDo(t, "GET", "http://"+addr, "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "", p.header)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, "41"+short+",", "the short namespace is withdrawn: the probe works")
	assert.Contains(t, body, "41"+long+",", "the long namespace is not withdrawn from bob")
	assert.True(t, worker.disconnected(long), "the worker never gets the long namespace's DISCONNECT")
}

// The registry remembers at most 32 namespaces per session
// (maxNamespacesPerSession); withdrawal takes only those it remembers.
// With an app that connects every namespace, a client first connects 32
// namespaces of no value, then the one that matters: when a reload (or
// a role taken away) withdraws them all, the last is never withdrawn, and
// the worker keeps the client in it. So a session past the cap ends at
// its first withdrawal: the worker and the client get the close packet.
//
//	no rules; bob (user), polling: 40/pad0, ... 40/pad31, 40/x
//	reload: namespace * role admin
//	next long-poll: 41/pad0, ... 41/pad31, but no 41/x,   (the hole)
//	now:            1, and the worker gets 1
func TestAttack5NamespacePastTheSessionCapIsNeverWithdrawn(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: atkSecret})
	bob := testenv.Login(t, login.URL(), "bob", "user")
	worker := startNamespaceWorker(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := func(rules string) testenv.EdgeConfig {
		return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	flask_session {
		secret_key %s
	}
	socketio_proxy {
		to %s
		%s
	}
}
`, addr, atkSecret, strings.TrimPrefix(worker.srv.URL, "http://"), rules))
	}
	edge := testenv.StartEdge(t, cfg(""), addr)
	p, status, body := atkOpen(t, "http://"+addr, "/socket.io/", bob)
	require.Equal(t, 200, status, body)
	var connects []string
	for i := range 32 {
		connects = append(connects, fmt.Sprintf("40/pad%d,", i))
	}
	connects = append(connects, "40/x,")
	status, _ = p.post(strings.Join(connects, "\x1e"))
	require.Equal(t, 200, status)
	require.NotEmpty(t, p.until("40/x,", 3), "the worker connected bob to /x")

	edge.Reload(t, cfg("namespace * role admin"))
	status, body = atkDo(t, "GET", "http://"+addr, "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "", p.header)
	require.Equal(t, 200, status, body)
	assert.Equal(t, "1", body, "bob's session, holding /x past the registry's 32 namespaces, ends")
	assert.True(t, worker.wasClosed(), "the worker ends bob's session, and with it /x")
}
