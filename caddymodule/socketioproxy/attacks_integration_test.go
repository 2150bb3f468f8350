package socketioproxy_test

// Attacks on what issue 13 built (sealed, user- and origin-bound sids,
// the policy slot, role withdrawal), run against the real stack: a Flask-
// SocketIO worker behind an edge with edge_cors, flask_session,
// socketio_proxy and, as in examples/Caddyfile, a reverse_proxy to the
// same worker for the rest of the app. Each test names the attack it
// runs and fails if the edge lets it through; every attack here is
// stopped today. (Attacks found still open are reported separately and
// get their tests with their fixes.)

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

// STOPPED. With whoami, a role withdrawn in the app's database takes
// /admin from a polling session at its next long-poll (within whoami_ttl):
// the client gets 41/admin, and the worker no longer answers the
// session's /admin events.
func TestAttackWithdrawnRoleLeavesAPollingSession(t *testing.T) {
	s, roles := startAtkWhoamiStack(t)
	atkCheckWithdrawal(t, s, roles, func(*atkPoller) {})
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

// STOPPED. A reload (same sticky_secret) that adds a namespace rule
// applies to a live WebSocket's next CONNECT, answered by the edge, not
// the worker; the WebSocket keeps working on "/".
func TestAttackReloadAddingARuleReachesALiveWebSocket(t *testing.T) {
	s := startAtkStack(t, nil, "", "sticky_secret attack-sticky-secret-one")
	uma := testenv.Login(t, s.worker.URL(), "uma", "user")
	ws, status, err := atkDial(t, s.addr, "/socket.io/?EIO=4&transport=websocket", http.Header{"Cookie": {uma}})
	require.NoError(t, err, status)
	require.NotEmpty(t, ws.next("0{", 5*time.Second))
	ws.send(t, "40")
	require.True(t, strings.HasPrefix(ws.next("40", 5*time.Second), "40{"))

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

// STOPPED. On a plain user's polling session, an upgrade and a POST of
// 40/admin, carrying an admin's cookie, no cookie (a logout) or a cookie
// for the same user name signed with another key, each from no Origin,
// an allowed one and a foreign one, are refused (400 or 403) before the
// worker sees any CONNECT to /admin.
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
