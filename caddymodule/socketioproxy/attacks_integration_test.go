package socketioproxy_test

// Attacks on what issue 13 built (sealed, user- and origin-bound sids,
// the policy slot, role withdrawal), run against the real stack: a Flask-
// SocketIO worker behind an edge with edge_cors, flask_session,
// socketio_proxy and, as in examples/Caddyfile, a reverse_proxy to the
// same worker for the rest of the app. Each test names the attack it
// runs; each fails while the edge lets the attack through.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/sticky"
	"github.com/flaskedge/flaskedge/internal/testenv"
)

const (
	atkSecret  = "attack-flask-secret"
	atkAllowed = "http://allowed.example"
	atkForeign = "https://evil.example"
)

// atkStack is one worker behind one edge.
type atkStack struct {
	edge   *testenv.Edge
	addr   string
	worker *testenv.FlaskWorker
	// config renders the edge's Caddyfile with proxy as the extra lines
	// of the socketio_proxy block.
	config func(proxy string) testenv.EdgeConfig
}

func (s *atkStack) url() string { return "http://" + s.addr }

// startAtkStack starts a worker (env for its environment) behind an edge;
// session holds extra lines for flask_session, proxy for socketio_proxy.
func startAtkStack(t *testing.T, env map[string]string, session, proxy string) *atkStack {
	t.Helper()
	testenv.RequirePython(t)
	s := &atkStack{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	s.worker = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: atkSecret, Env: env})
	s.config = func(proxy string) testenv.EdgeConfig {
		return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	edge_cors {
		origins %[3]s
		credentials
	}
	flask_session {
		secret_key %[4]s
		%[5]s
	}
	socketio_proxy {
		to %[2]s
		%[6]s
	}
	reverse_proxy %[2]s
}
`, s.addr, s.worker.Addr, atkAllowed, atkSecret, session, proxy))
	}
	s.edge = testenv.StartEdge(t, s.config(proxy), s.addr)
	return s
}

var atkClient = &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// atkDo sends one request to base+target exactly as target is written
// (no cleaning of "//" or dot segments).
func atkDo(t *testing.T, method, base, target, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+"/", strings.NewReader(body))
	require.NoError(t, err)
	// An opaque URL is sent as written (in absolute form), without the
	// cleaning of "//", dot segments or escapes a parsed path gets.
	path, query, _ := strings.Cut(target, "?")
	req.URL.Opaque = "//" + req.URL.Host + path
	req.URL.RawQuery = query
	if body == "" {
		req.Body = nil
	} else {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := atkClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

var atkSID = regexp.MustCompile(`"sid":"([^"]+)"`)

// atkPoller is one polling session's requests through the edge.
type atkPoller struct {
	t      *testing.T
	base   string
	path   string // the Engine.IO path as sent, "/socket.io/" normally
	sid    string
	header map[string]string
}

// atkOpen opens a polling session at path with cookie ("" for none).
func atkOpen(t *testing.T, base, path, cookie string) (*atkPoller, int, string) {
	t.Helper()
	p := &atkPoller{t: t, base: base, path: path, header: map[string]string{}}
	if cookie != "" {
		p.header["Cookie"] = cookie
	}
	status, body := atkDo(t, "GET", base, path+"?EIO=4&transport=polling", "", p.header)
	if m := atkSID.FindStringSubmatch(body); status == 200 && m != nil {
		p.sid = m[1]
	}
	return p, status, body
}

func (p *atkPoller) post(body string) (int, string) {
	p.t.Helper()
	return atkDo(p.t, "POST", p.base, p.path+"?EIO=4&transport=polling&sid="+p.sid, body, p.header)
}

// until long-polls until a packet starting with prefix arrives (answering
// pings), and returns it; "" if none came within tries polls.
func (p *atkPoller) until(prefix string, tries int) string {
	p.t.Helper()
	for range tries {
		status, body := atkDo(p.t, "GET", p.base, p.path+"?EIO=4&transport=polling&sid="+p.sid, "", p.header)
		if status != 200 {
			return ""
		}
		for pkt := range strings.SplitSeq(body, "\x1e") {
			if pkt == "2" {
				p.post("3")
			}
			if strings.HasPrefix(pkt, prefix) {
				return pkt
			}
		}
	}
	return ""
}

// atkWS is a raw Engine.IO WebSocket client.
type atkWS struct {
	conn *websocket.Conn
	msgs chan string
}

// atkDial opens a WebSocket at target (path and query, as written) with
// header; it returns the dial error and HTTP status of a refusal.
// atkJoin logs user in, opens a WebSocket session with the cookie and
// connects it to namespace ns ("/" or "/admin"), checking each step.
func atkJoin(t *testing.T, s *atkStack, user, ns string) *atkWS {
	t.Helper()
	cookie := testenv.Login(t, s.worker.URL(), user, "user")
	ws, status, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket", http.Header{"Cookie": {cookie}})
	require.NoError(t, err, status)
	require.NotEmpty(t, ws.next("0{", 5*time.Second))
	if ns == "/" {
		ws.send(t, "40")
		require.True(t, strings.HasPrefix(ws.next("40", 5*time.Second), "40{"), user+" connects to /")
		return ws
	}
	ws.send(t, "40"+ns+",")
	require.True(t, strings.HasPrefix(ws.next("40"+ns+",", 5*time.Second), "40"+ns+",{"), user+" connects to "+ns)
	return ws
}

func atkDial(t *testing.T, addr, target string, header http.Header) (*atkWS, int, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, res, err := d.Dial("ws://"+addr+target, header)
	status := 0
	if res != nil {
		status = res.StatusCode
		res.Body.Close()
	}
	if err != nil {
		return nil, status, err
	}
	c := &atkWS{conn: conn, msgs: make(chan string, 64)}
	go func() {
		defer close(c.msgs)
		for {
			_, m, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if string(m) == "2" {
				_ = conn.WriteMessage(websocket.TextMessage, []byte("3"))
				continue
			}
			c.msgs <- string(m)
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c, status, nil
}

func (c *atkWS) send(t *testing.T, m string) {
	t.Helper()
	require.NoError(t, c.conn.WriteMessage(websocket.TextMessage, []byte(m)))
}

// next returns the next message starting with prefix within d, or "".
func (c *atkWS) next(prefix string, d time.Duration) string {
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return ""
			}
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-timeout:
			return ""
		}
	}
}

// atkCount counts the worker's log lines holding every one of parts.
func atkCount(w *testenv.FlaskWorker, parts ...string) int {
	n := 0
lines:
	for l := range strings.SplitSeq(w.Output(), "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

// HOLE. The edge decides "is this Engine.IO?" from r.URL.Path starting
// with /socket.io/, but the worker's HTTP server (Python's http.server,
// under eventlet) reduces a leading "//" to "/" before anything else.
// So "//socket.io/?EIO=4&..." is not Engine.IO to socketio_proxy, goes
// to the next handler (the reverse_proxy that serves the rest of the
// app, as in examples/Caddyfile), and opens a raw, unsealed worker
// session: no namespace rule, no seal, no user or origin binding, no
// max_payload, no rate limit, not counted by least_sessions. Here an
// anonymous client connects to "/", which the edge requires a login for,
// on polling (from a foreign Origin, which the guard lets through too)
// and on WebSocket.
//
//	curl --path-as-is 'http://EDGE//socket.io/?EIO=4&transport=polling'
//	  -> 0{"sid":"<20-char raw worker sid>",...}
//	curl --path-as-is -H 'Origin: https://evil.example' -d 40 'http://EDGE//socket.io/?EIO=4&transport=polling&sid=<raw>'
//	curl --path-as-is 'http://EDGE//socket.io/?EIO=4&transport=polling&sid=<raw>'  -> 40{"sid":...}
func TestAttackDoubleSlashPathReachesTheWorkerPastTheEdge(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace / authenticated\n\t\tmax_payload 1000")
	// The rule holds on the real path.
	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	require.True(t, strings.HasPrefix(p.until("4", 3), "44{"), "anonymous is denied / on /socket.io/")

	for _, path := range []string{"//socket.io/", "///socket.io/"} {
		p, status, body := atkOpen(t, s.url(), path, "")
		if status != 200 || p.sid == "" {
			continue // refused: what the edge should do
		}
		assert.Len(t, p.sid, 20+sticky.SealLength, "%s opened a session with an unsealed sid %q", path, p.sid)
		p.header["Origin"] = atkForeign
		status, body = p.post("40")
		assert.NotEqual(t, 200, status, "%s: a foreign Origin's POST on the session was accepted: %s", path, body)
		delete(p.header, "Origin")
		p.post("40")
		got := p.until("4", 2)
		assert.False(t, strings.HasPrefix(got, "40{"), "%s: anonymous connected to / past the rule: %q", path, got)
		// max_payload 1000 does not apply either.
		status, _ = p.post(`42["echo","` + strings.Repeat("x", 5000) + `"]`)
		assert.NotEqual(t, 200, status, "%s: a 5 kB body went past max_payload 1000", path)
	}

	ws, status, err := atkDial(t, s.addr, "//socket.io/?EIO=4&transport=websocket", nil)
	if err == nil {
		ws.send(t, "40")
		got := ws.next("4", 5*time.Second)
		assert.False(t, strings.HasPrefix(got, "40{"), "WebSocket at //socket.io/: anonymous connected to / past the rule: %q", got)
	} else {
		t.Logf("WebSocket at //socket.io/ refused: %d %v", status, err)
	}
	assert.Zero(t, atkCount(s.worker, "connect namespace=/ ", "user=-"), "the worker connected an anonymous client to /")
}

// STOPPED. Paths that are not under /socket.io/ for the edge and are not
// for the worker either (after its own decoding) reach the app, never
// Engine.IO: encoded slashes, case, dot segments before the prefix, a
// missing trailing slash.
func TestAttackPathsOutsideTheEngineIOPathNeverOpenAWorkerSession(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace / authenticated")
	for _, path := range []string{"/%2Fsocket.io/", "/Socket.io/", "/socket.io", "/./socket.io/", "/x/../socket.io/", "/%2e/socket.io/", "/socket.io%2F"} {
		_, status, body := atkOpen(t, s.url(), path, "")
		if status == 200 {
			// Only the edge may have answered: a sealed sid.
			m := atkSID.FindStringSubmatch(body)
			require.NotNil(t, m, "%s: %s", path, body)
			assert.Len(t, m[1], 20+sticky.SealLength, "%s opened an unsealed worker session: %s", path, body)
		}
	}
}

// HOLE. The edge tracks which namespaces a session is in to withdraw them
// when a role is withdrawn (whoami). A client's DISCONNECT of a
// namespace is recorded as the POST body is read, before the body is
// checked: a body whose later packet is malformed is refused (400) and
// never reaches the worker, but the edge has already forgotten the
// namespace. The session stays in /admin at the worker, and a role
// withdrawn in the app's database never takes it away.
//
//	POST /socket.io/?EIO=4&transport=polling&sid=S  (admin ada)  40/admin,
//	GET  ...&sid=S                                               -> 40/admin,{"sid":...}
//	POST ...&sid=S   body "41/admin,\x1e4x"                      -> 400
//	roles.json: ada -> user; wait whoami_ttl
//	GET  ...&sid=S   -> no 41/admin, (a ping after 25 s)
//	POST ...&sid=S   42/admin,1["stats"]  -> the worker answers 43/admin,1[...]
func TestAttackRefusedPollingBodyKeepsAWithdrawnNamespace(t *testing.T) {
	s, roles := startAtkWhoamiStack(t)
	for _, tc := range []struct {
		name  string
		trick func(p *atkPoller)
	}{
		{"control", func(*atkPoller) {}},
		{"DISCONNECT then a malformed packet", func(p *atkPoller) {
			status, body := p.post("41/admin,\x1e4x")
			require.Equal(t, 400, status, body)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			atkCheckWithdrawal(t, s, roles, tc.trick)
		})
	}
}

// HOLE. Same effect through the WebSocket upgrade: an upgrade of a
// polling session that fails (here a Sec-WebSocket-Version the edge's
// upgrader refuses after it has dialled the worker; a client dropping
// the upgrade before its probe does the same) makes the edge forget the
// session, namespaces included, while the worker's polling session lives
// on in /admin. socket.io-client falls back to polling on a failed
// upgrade, so this happens to honest clients too.
//
//	GET  /socket.io/?EIO=4&transport=websocket&sid=S  Connection: Upgrade, Upgrade: websocket,
//	     Sec-WebSocket-Version: 12, Sec-WebSocket-Key: ...   -> 400
//	then as above: the withdrawn role never takes /admin.
func TestAttackFailedUpgradeKeepsAWithdrawnNamespace(t *testing.T) {
	s, roles := startAtkWhoamiStack(t)
	for _, tc := range []struct {
		name  string
		trick func(p *atkPoller)
	}{
		{"bad Sec-WebSocket-Version", func(p *atkPoller) {
			req, err := http.NewRequest("GET", s.url()+"/socket.io/?EIO=4&transport=websocket&sid="+p.sid, nil)
			require.NoError(t, err)
			req.Header.Set("Cookie", p.header["Cookie"])
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "12")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			res, err := atkClient.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			require.NotEqual(t, 101, res.StatusCode)
		}},
		{"upgrade dropped before its probe", func(p *atkPoller) {
			ws, status, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid,
				http.Header{"Cookie": {p.header["Cookie"]}})
			require.NoError(t, err, status)
			ws.conn.Close()
			time.Sleep(500 * time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			atkCheckWithdrawal(t, s, roles, tc.trick)
		})
	}
}

// startAtkWhoamiStack is a stack whose roles come from the app's
// database (a roles file) through whoami with a 1 s TTL.
func startAtkWhoamiStack(t *testing.T) (*atkStack, string) {
	roles := filepath.Join(t.TempDir(), "roles.json")
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "admin"}`), 0o600))
	// A ping every 3 s ends a long-poll that has nothing else to say.
	env := map[string]string{"ROLES_FILE": roles, "PING_INTERVAL": "3", "PING_TIMEOUT": "5"}
	whoami := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "whoami", SecretKey: atkSecret, Env: env})
	s := startAtkStack(t, env, "whoami "+whoami.URL()+"/api/whoami\n\t\twhoami_ttl 1s", "namespace /admin role admin")
	return s, roles
}

// atkCheckWithdrawal: ada, an admin in the database, joins /admin on a
// polling session; trick runs; her role is withdrawn; within whoami_ttl
// and a long-poll the session must have lost /admin at the worker.
func atkCheckWithdrawal(t *testing.T, s *atkStack, roles string, trick func(p *atkPoller)) {
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "admin"}`), 0o600))
	time.Sleep(1500 * time.Millisecond) // past whoami_ttl
	ada := testenv.Login(t, s.worker.URL(), "ada", "user")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", ada)
	require.Equal(t, 200, status, body)
	status, body = p.post("40/admin,")
	require.Equal(t, 200, status, body)
	require.True(t, strings.HasPrefix(p.until("40/admin,", 3), "40/admin,{"), "ada is an admin in the database")

	trick(p)

	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	time.Sleep(1500 * time.Millisecond) // past whoami_ttl
	// The next long-poll carries the withdrawal at once.
	status, got := atkDo(t, "GET", s.url(), "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "", p.header)
	require.Equal(t, 200, status, got)
	assert.Contains(t, got, "41/admin,", "the withdrawn role did not take /admin from the session")
	// And the worker no longer serves her in /admin.
	status, body = p.post(`42/admin,7["stats"]`)
	if status == 200 {
		ack := p.until("43/admin,7", 1)
		assert.Empty(t, ack, "the worker still answers ada's /admin events after her role was withdrawn")
	}
}

// STOPPED (since 68e14d9). Two sites in one Caddyfile, each with its own
// socketio_proxy on the same path and sticky key: each enforces its own
// rules (site A `namespace / authenticated`, site B none).
func TestAttackTwoSitesShareOnePolicy(t *testing.T) {
	a, b, _, _, _ := startAtkTwoSites(t)
	connect := func(addr string) string {
		p, status, body := atkOpen(t, "http://"+addr, "/socket.io/", "")
		require.Equal(t, 200, status, body)
		p.post("40")
		return p.until("4", 3)
	}
	ra, rb := connect(a), connect(b)
	assert.True(t, strings.HasPrefix(ra, "44{"), "site A's rule `namespace / authenticated` is not enforced: %q", ra)
	assert.True(t, strings.HasPrefix(rb, "40{"), "site B has no rule, yet / is denied: %q", rb)
}

// startAtkTwoSites runs one edge with two sites in front of one worker:
// A with `namespace / authenticated` and `namespace /admin role admin`,
// B without rules; both socketio_proxy handlers have the default path
// and the same sticky key. It returns their addresses, the edge, the
// worker and the config.
func startAtkTwoSites(t *testing.T) (a, b string, edge *testenv.Edge, w *testenv.FlaskWorker, cfg func(n int) testenv.EdgeConfig) {
	testenv.RequirePython(t)
	w = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: atkSecret})
	a = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	b = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	// n varies the config (a header of site B), so that a reload is not
	// skipped as unchanged.
	cfg = func(n int) testenv.EdgeConfig {
		return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key %[4]s
	}
	socketio_proxy {
		to %[3]s
		sticky_secret attack-sticky-secret-one
		namespace / authenticated
		namespace /admin role admin
	}
}
http://%[2]s {
	bind 127.0.0.1
	header X-Config %[5]d
	flask_session {
		secret_key %[4]s
	}
	socketio_proxy {
		to %[3]s
		sticky_secret attack-sticky-secret-one
	}
}
`, a, b, w.Addr, atkSecret, n))
	}
	return a, b, testenv.StartEdge(t, cfg(0), a, b), w, cfg
}

// HOLE. Since 68e14d9 a handler's policy slot is found again after a
// reload by its ordinal among the handlers sharing its path and sticky
// key, counted in provisioning order. But Caddy provisions the servers
// of a config by ranging over a map (caddyhttp.App.Servers), so with two
// sites on two listeners the order, and hence which site's policy a
// live WebSocket follows, changes from one load to the next: after a
// reload of the very same Caddyfile, about one time in two, site A's
// live WebSocket follows site B's policy (no rules) and its CONNECT to
// /admin goes to the worker; site B's live sockets get A's rules.
//
//	two sites as in startAtkTwoSites; WS on A as uma (a plain user);
//	repeat: POST /load (same Caddyfile); on the live WS send 40/admin,
//	-> sometimes the worker's own 44/admin,{"message":"the /admin namespace
//	   requires the admin role; ..."} instead of the edge's CONNECT_ERROR.
func TestAttackReloadSwapsPoliciesBetweenSites(t *testing.T) {
	a, _, edge, w, cfg := startAtkTwoSites(t)
	uma := testenv.Login(t, w.URL(), "uma", "user")
	ws, status, err := atkDial(t, a, "/socket.io/?EIO=4&transport=websocket", http.Header{"Cookie": {uma}})
	require.NoError(t, err, status)
	require.NotEmpty(t, ws.next("0{", 5*time.Second))
	ws.send(t, "40")
	require.True(t, strings.HasPrefix(ws.next("40", 5*time.Second), "40{"))
	for i := range 40 {
		edge.Reload(t, cfg(i+1))
		ws.send(t, "40/admin,")
		reply := ws.next("4", 5*time.Second)
		if !assert.Contains(t, reply, "The /admin namespace requires the role admin.",
			"reload %d: site A's live WebSocket no longer follows site A's rules: %q", i+1, reply) {
			break
		}
	}
	assert.Zero(t, atkCount(w, "namespace=/admin"), "the worker saw a CONNECT to /admin")
}

// HOLE. The policy slot is keyed by the path and the sticky key, so a
// reload that also changes sticky_secret (a key rotation) leaves every
// live WebSocket on the old config's policy for good: the namespace
// rule the reload adds never applies to it, and the worker sees the
// CONNECT.
//
//	config 1: socketio_proxy { to W; sticky_secret <A> }
//	WS as uma, 40 -> 40{...}
//	reload:   socketio_proxy { to W; sticky_secret <B>; namespace /admin role admin }
//	on the live WS: 40/admin, -> the worker's own refusal (or, for an app
//	without its own check, a connection), never the edge's CONNECT_ERROR.
func TestAttackReloadRotatingStickySecretKeepsLiveWebSocketsOnOldRules(t *testing.T) {
	s := startAtkStack(t, nil, "", "sticky_secret attack-sticky-secret-one")
	ws := atkJoin(t, s, "uma", "/")

	s.edge.Reload(t, s.config("sticky_secret attack-sticky-secret-two\n\t\tnamespace /admin role admin"))
	ws.send(t, "40/admin,")
	reply := ws.next("4", 5*time.Second)
	assert.Contains(t, reply, "The /admin namespace requires the role admin.", "the edge did not apply the reloaded rule: %q", reply)
	assert.Zero(t, atkCount(s.worker, "namespace=/admin"), "the worker saw the CONNECT to /admin")
}

// STOPPED. A reload that changes nothing but adds the rule applies to the
// live WebSocket's next CONNECT (the control for the test above).
func TestAttackReloadAddingARuleReachesALiveWebSocket(t *testing.T) {
	s := startAtkStack(t, nil, "", "sticky_secret attack-sticky-secret-one")
	ws := atkJoin(t, s, "uma", "/")

	s.edge.Reload(t, s.config("sticky_secret attack-sticky-secret-one\n\t\tnamespace /admin role admin"))
	ws.send(t, "40/admin,")
	reply := ws.next("4", 5*time.Second)
	assert.Contains(t, reply, "The /admin namespace requires the role admin.", reply)
	assert.Zero(t, atkCount(s.worker, "namespace=/admin"), "the worker saw the CONNECT to /admin")
	ws.send(t, `421["echo","x"]`)
	assert.NotEmpty(t, ws.next("431", 5*time.Second), "/ keeps working")
}

// STOPPED. Sids the edge did not seal for this user, or that say
// anything else than one sid, never reach the worker: the raw worker
// sid, a truncated, extended or altered seal, repeated or encoded sid
// parameters in every order, a sid hidden behind ';', '%26' or '#'.
// Each request is a POST of "40" that would connect the session to "/"
// if the worker got it.
func TestAttackForgedSIDsAndQueryTricksNeverReachTheWorker(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace /admin role admin")
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", uma)
	require.Equal(t, 200, status, body)
	sid := p.sid
	raw := sid[:len(sid)-sticky.SealLength]
	flip := func(i int) string {
		c := byte('A')
		if sid[i] == 'A' {
			c = 'B'
		}
		return sid[:i] + string(c) + sid[i+1:]
	}
	for _, q := range []string{
		"sid=" + raw,
		"sid=" + sid[:len(sid)-1],
		"sid=" + sid + "A",
		"sid=" + flip(0),
		"sid=" + flip(len(raw)),
		"sid=" + flip(len(sid)-1),
		"sid=" + raw + strings.Repeat("A", sticky.SealLength),
		"sid=" + sid + "&sid=" + raw,
		"sid=" + raw + "&sid=" + sid,
		"si%64=" + raw + "&sid=" + sid,
		"sid=" + sid + "&%73id=" + raw,
		"sid=" + sid + "&sid",
		"sid=" + sid + "&sid=",
		"sid=" + sid + ";sid=" + raw,
		"sid=" + sid + "%26sid=" + raw,
		"sid=" + sid + "#&sid=" + raw,
		"sid=" + sid + "&x=#&sid=" + raw,
		"sid=" + sid + "&j=0",
		"sid=" + sid + "&EIO=3",
		"sid=" + sid + "&transport=websocket",
	} {
		target := "/socket.io/?EIO=4&transport=polling&" + q
		status, body := atkRaw(t, s.addr, "POST "+target+" HTTP/1.1\r\nHost: "+s.addr+"\r\nCookie: "+uma+
			"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n40")
		assert.Equal(t, 400, status, "%s: %s", q, body)
	}
	assert.Zero(t, atkCount(s.worker, "connect namespace=/ ", "user=uma"), "a forged request connected the session")
	// The genuine sid still works.
	status, body = p.post("40")
	require.Equal(t, 200, status, body)
	assert.NotEmpty(t, p.until("40{", 3))
}

// atkRaw writes one raw HTTP/1.1 request and returns the status and body.
func atkRaw(t *testing.T, addr, request string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, request)
	require.NoError(t, err)
	b, _ := io.ReadAll(c)
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	var status int
	_, _ = fmt.Sscanf(head, "HTTP/1.1 %d", &status)
	return status, body
}

// STOPPED. An admin's cookie on a plain user's WebSocket-only session
// (the upgrade carries the sid of the user's WS session, i.e. a second
// WebSocket on it), from no Origin, an allowed one and a foreign one, is
// refused before the worker; so is the user's own sid with no cookie
// (a logout) and with a cookie for the same user name signed with
// another key.
func TestAttackOtherIdentitiesOnAUsersSessionAreRefused(t *testing.T) {
	s := startAtkStack(t, nil, "", "namespace /admin role admin")
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	other := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "other", SecretKey: "another-key"})
	umaForeignKey := testenv.Login(t, other.URL(), "uma", "admin")

	p, status, body := atkOpen(t, s.url(), "/socket.io/", uma)
	require.Equal(t, 200, status, body)
	for _, cookie := range []string{ada, "", umaForeignKey} {
		for _, origin := range []string{"", atkAllowed, atkForeign} {
			h := http.Header{}
			if cookie != "" {
				h.Set("Cookie", cookie)
			}
			if origin != "" {
				h.Set("Origin", origin)
			}
			_, status, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid, h)
			require.Error(t, err)
			assert.Contains(t, []int{400, 403}, status, "cookie %.12q origin %q", cookie, origin)
			hp := map[string]string{}
			for k := range h {
				hp[k] = h.Get(k)
			}
			status, _ = atkDo(t, "POST", s.url(), "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "40/admin,", hp)
			assert.Contains(t, []int{400, 403}, status, "cookie %.12q origin %q", cookie, origin)
		}
	}
	assert.Zero(t, atkCount(s.worker, "namespace=/admin"), "the worker saw a CONNECT to /admin")
}

// STOPPED. Two POSTs (or two GETs) of one session in flight at once: the
// second is refused with 400 while the first is still waiting for its
// body, so a client cannot hold more than one body buffer per session.
func TestAttackOverlappingPostsOnOneSessionAreRefused(t *testing.T) {
	s := startAtkStack(t, nil, "", "")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	c, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 900000\r\n\r\n", p.sid, s.addr)
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	status, body = p.post("40")
	assert.Equal(t, 400, status, body)
}

// HOLE. On polling, a withdrawn role is acted on only when a long-poll
// GET arrives; POSTs are never checked. python-engineio needs no GET to
// keep a session alive (a POSTed pong answers each ping), so a client
// that stops polling keeps sending events to /admin, and the worker
// handles them, for as long as it likes after the role was withdrawn,
// well past whoami_ttl plus the check interval.
//
//	ada (admin in the database) joins /admin on polling; roles.json: ada -> user
//	wait 8 s (whoami_ttl 1 s + 5 s), POSTing only pongs ("3") every 2 s
//	POST ...&sid=S  42/admin,7["stats"]   -> 200 OK
//	GET  ...&sid=S  -> 41/admin,   GET -> 43/admin,7[{...}]: the worker
//	handled the /admin event after the withdrawal.
func TestAttackPollingPostsSkipTheRoleWithdrawal(t *testing.T) {
	s, roles := startAtkWhoamiStack(t)
	ada := testenv.Login(t, s.worker.URL(), "ada", "user")
	p, status, body := atkOpen(t, s.url(), "/socket.io/", ada)
	require.Equal(t, 200, status, body)
	p.post("40/admin,")
	require.True(t, strings.HasPrefix(p.until("40/admin,", 3), "40/admin,{"), "ada is an admin in the database")

	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	// whoami_ttl 1 s + the 5 s check interval + margin, keeping the
	// session alive with pongs alone (pingInterval is 3 s here): no GET.
	for range 4 {
		time.Sleep(2 * time.Second)
		status, body = p.post("3")
		require.Equal(t, 200, status, body)
	}
	status, body = p.post(`42/admin,7["stats"]`)
	t.Logf("POST of an /admin event 8 s after the withdrawal: %d %s", status, body)
	time.Sleep(500 * time.Millisecond)
	var got []string
	for range 2 {
		status, body := atkDo(t, "GET", s.url(), "/socket.io/?EIO=4&transport=polling&sid="+p.sid, "", p.header)
		if status != 200 {
			break
		}
		got = append(got, body)
		if strings.Contains(body, "43/admin,7") {
			break
		}
	}
	assert.NotContains(t, strings.Join(got, "|"), "43/admin,7", "the worker handled an /admin event sent after the role was withdrawn: %q", got)
}

// HOLE (minor). A reload that adds a rule withdraws the namespaces it now
// denies from polling sessions (at their next GET) and from logged-in
// WebSockets (within 5 s), but never from anonymous WebSockets, which
// watchRoles does not watch: an anonymous WebSocket connected to "/"
// before `namespace / authenticated` was added keeps using "/".
func TestAttackReloadRuleIsNotWithdrawnFromAnonymousWebSockets(t *testing.T) {
	s := startAtkStack(t, nil, "", "sticky_secret attack-sticky-secret-one")
	ws, status, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err, status)
	require.NotEmpty(t, ws.next("0{", 5*time.Second))
	ws.send(t, "40")
	require.True(t, strings.HasPrefix(ws.next("40", 5*time.Second), "40{"))
	p, status, body := atkOpen(t, s.url(), "/socket.io/", "")
	require.Equal(t, 200, status, body)
	p.post("40")
	require.True(t, strings.HasPrefix(p.until("40", 3), "40{"))

	s.edge.Reload(t, s.config("sticky_secret attack-sticky-secret-one\n\t\tnamespace / authenticated"))
	assert.Equal(t, "41", p.until("41", 1), "the polling session lost / at its next GET")
	assert.Equal(t, "41", ws.next("41", 8*time.Second), "the anonymous WebSocket kept / after the reload denied it")
}

// HOLE. Which namespaces a session is in is known only to the edge that
// relayed the worker's CONNECT reply; the withdrawal is done by the edge
// that serves the session's later requests. With two edges sharing
// sticky_secret (as README's several-edges setup has), a client that
// joins /admin through edge B and then polls (or upgrades) through edge A
// is never withdrawn: A never saw the reply.
//
//	via B: handshake, POST 40/admin,, GET -> 40/admin,{...}
//	roles.json: ada -> user; wait whoami_ttl
//	via A: GET ...&sid=S -> no 41/admin,; POST 42/admin,7["stats"] -> ack from the worker
func TestAttackJoinThroughOneEdgeKeepsAdminThroughAnother(t *testing.T) {
	roles := filepath.Join(t.TempDir(), "roles.json")
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "admin"}`), 0o600))
	env := map[string]string{"ROLES_FILE": roles, "PING_INTERVAL": "3", "PING_TIMEOUT": "5"}
	testenv.RequirePython(t)
	w := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: atkSecret, Env: env})
	whoami := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "whoami", SecretKey: atkSecret, Env: env})
	var edges []string
	for range 2 {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key %[3]s
		whoami %[4]s/api/whoami
		whoami_ttl 1s
	}
	socketio_proxy {
		to %[2]s
		sticky_secret attack-sticky-secret-one
		namespace /admin role admin
	}
}
`, addr, w.Addr, atkSecret, whoami.URL())), addr)
		edges = append(edges, "http://"+addr)
	}
	ada := testenv.Login(t, w.URL(), "ada", "user")
	viaB, status, body := atkOpen(t, edges[1], "/socket.io/", ada)
	require.Equal(t, 200, status, body)
	viaB.post("40/admin,")
	require.True(t, strings.HasPrefix(viaB.until("40/admin,", 3), "40/admin,{"), "ada is an admin in the database")

	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	time.Sleep(1500 * time.Millisecond)
	viaA := &atkPoller{t: t, base: edges[0], path: "/socket.io/", sid: viaB.sid, header: viaB.header}
	// Edge A never relayed the join, so it cannot tell ada of the
	// withdrawal before she uses /admin; but the first /admin packet
	// either way is the last: hers becomes a DISCONNECT to the worker,
	// and she gets the DISCONNECT instead of an answer.
	status, _ = viaA.post(`42/admin,7["stats"]`)
	require.Equal(t, 200, status)
	assert.Equal(t, "41/admin,", viaA.until("41/admin,", 3), "edge A did not withdraw /admin, joined through edge B")
	assert.Empty(t, viaA.until("43/admin,7", 2), "the worker still answers ada's /admin events through edge A")
	assert.Eventually(t, func() bool { return strings.Contains(w.Output(), "disconnect namespace=/admin") },
		10*time.Second, 50*time.Millisecond, "the worker was not told")
}
