package socketioproxy_test

// The adversarial suite: each attack on a Socket.IO session's rules found
// while building the edge (issue 13), run against the real stack. A test
// here fails while its hole is open.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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
	advSecret  = "adversarial-secret"
	advAllowed = "http://allowed.example"
	advForeign = "https://evil.example"
)

// advStack is a worker behind an edge with edge_cors, flask_session and
// socketio_proxy, /admin for admins only.
type advStack struct {
	edge   *testenv.Edge
	addr   string
	worker *testenv.FlaskWorker
	config func(extra string) testenv.EdgeConfig
}

func (s *advStack) url() string { return "http://" + s.addr }

// startAdvStack starts the stack; sessionOptions are lines for the
// flask_session block, proxyOptions for socketio_proxy's (a namespace
// rule for /admin is there unless noRules).
func startAdvStack(t testing.TB, env map[string]string, sessionOptions, proxyOptions string, noRules bool) *advStack {
	t.Helper()
	testenv.RequireNode(t)
	s := &advStack{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	s.worker = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: advSecret, Env: env})
	// EDGE_TEST_RECOVER runs the suite with connection state recovery
	// on: every rule must hold on bridged sessions too.
	if w := os.Getenv("EDGE_TEST_RECOVER"); w != "" && !strings.Contains(proxyOptions, "recover") {
		proxyOptions += "\n\t\trecover " + w
	}
	s.config = func(extra string) testenv.EdgeConfig {
		rules := "namespace /admin role admin"
		if noRules {
			rules = ""
		}
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
		sticky_secret adversarial-sticky-secret
		%[6]s
		%[7]s
		%[8]s
	}
	reverse_proxy %[2]s
}
`, s.addr, s.worker.Addr, advAllowed, advSecret, sessionOptions, rules, proxyOptions, extra))
	}
	s.edge = testenv.StartEdge(t, s.config(""), s.addr)
	return s
}

// request sends one Engine.IO request through the edge.
func (s *advStack) request(t testing.TB, method, target, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url()+target, strings.NewReader(body))
	require.NoError(t, err)
	if body == "" {
		req.Body = nil
	} else {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

var sidPattern = regexp.MustCompile(`"sid":"([^"]+)"`)

// openPolling opens a polling session as the holder of cookie and
// connects it to "/"; it returns the sid.
func (s *advStack) openPolling(t *testing.T, cookie string) string {
	t.Helper()
	h := map[string]string{"Cookie": cookie}
	status, body := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling", "", h)
	require.Equal(t, 200, status, body)
	m := sidPattern.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	sid := m[1]
	status, body = s.request(t, "POST", "/socket.io/?EIO=4&transport=polling&sid="+sid, "40", h)
	require.Equal(t, 200, status, body)
	status, body = s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+sid, "", h)
	require.Equal(t, 200, status, body)
	require.Contains(t, body, `40{"sid"`)
	return sid
}

// adminLines are the worker's log lines about /admin.
func adminLines(w *testenv.FlaskWorker) []string {
	var out []string
	for l := range strings.SplitSeq(w.Output(), "\n") {
		if strings.Contains(l, "namespace=/admin") {
			out = append(out, l)
		}
	}
	return out
}

// An admin's cookie arriving on a plain user's polling session, from a
// foreign origin, an allowed origin or none (a page on another site
// making the admin's browser POST "40/admin," to the user's sid), never
// gets the session into /admin: the worker never sees the CONNECT. Nor
// does an upgrade of the user's session carrying the admin's cookie.
func TestAdversarialAdminCookieOnAUsersSessionNeverJoinsAdmin(t *testing.T) {
	s := startAdvStack(t, nil, "", "", false)
	user := testenv.Login(t, s.worker.URL(), "uma", "user")
	admin := testenv.Login(t, s.worker.URL(), "ada", "admin")
	sid := s.openPolling(t, user)
	post := "/socket.io/?EIO=4&transport=polling&sid=" + sid

	for _, tc := range []struct {
		origin string
		status int
	}{{advForeign, 403}, {advAllowed, 400}, {"", 400}} {
		h := map[string]string{"Cookie": admin}
		if tc.origin != "" {
			h["Origin"] = tc.origin
		}
		status, body := s.request(t, "POST", post, "40/admin,", h)
		assert.Equal(t, tc.status, status, "Origin %q: %s", tc.origin, body)
		// Non-canonical forms of the same CONNECT, and one in a batch.
		status, _ = s.request(t, "POST", post, "2\x1e401-/admin?x=1,{}", h)
		assert.Equal(t, tc.status, status, "Origin %q", tc.origin)
	}
	// The user's own session goes on, and it is not in /admin.
	status, body := s.request(t, "POST", post, `42["echo","still here"]`, map[string]string{"Cookie": user})
	require.Equal(t, 200, status, body)
	status, body = s.request(t, "GET", post, "", map[string]string{"Cookie": user})
	require.Equal(t, 200, status, body)
	assert.NotContains(t, body, "/admin")

	// The upgrade of the user's session with the admin's cookie is
	// refused before any WebSocket exists.
	hdr := http.Header{"Cookie": {admin}}
	_, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket&sid="+sid, hdr)
	require.Error(t, err)
	require.NotNil(t, res)
	assert.Equal(t, 400, res.StatusCode)

	assert.Empty(t, adminLines(s.worker), "the worker saw a CONNECT to /admin")
	assert.Contains(t, s.edge.Output(), `"event":"identity_mismatch"`)
	assert.Contains(t, s.edge.Output(), "Engine.IO request of a session refused")
}

// Logging in or out means a new Engine.IO session: the old one is
// refused with "Session ID unknown", on which socket.io-client opens a
// new one carrying the new cookie.
func TestAdversarialALoginMidSessionNeedsANewSession(t *testing.T) {
	s := startAdvStack(t, nil, "", "", false)
	sid := s.openPolling(t, "")
	admin := testenv.Login(t, s.worker.URL(), "ada", "admin")
	status, body := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+sid, "", map[string]string{"Cookie": admin})
	assert.Equal(t, 400, status)
	assert.JSONEq(t, `{"code":1,"message":"Session ID unknown"}`, body)
	// The new session as the admin reaches /admin.
	sid = s.openPolling(t, admin)
	status, _ = s.request(t, "POST", "/socket.io/?EIO=4&transport=polling&sid="+sid, "40/admin,", map[string]string{"Cookie": admin})
	require.Equal(t, 200, status)
	_, body = s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+sid, "", map[string]string{"Cookie": admin})
	assert.Contains(t, body, `40/admin,{"sid"`)
}

// A request of a session carrying another allowed Origin than the one
// the session was opened from is refused.
func TestAdversarialASessionKeepsTheOriginItWasOpenedFrom(t *testing.T) {
	s := startAdvStack(t, nil, "", "", false)
	h := map[string]string{"Origin": advAllowed}
	status, body := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling", "", h)
	require.Equal(t, 200, status, body)
	sid := sidPattern.FindStringSubmatch(body)[1]
	// Same-origin (the edge's own origin is not in origins, but is the
	// Host's): allowed by edge_cors, refused as not the session's.
	status, _ = s.request(t, "POST", "/socket.io/?EIO=4&transport=polling&sid="+sid, "40", map[string]string{"Origin": s.url()})
	assert.Equal(t, 403, status)
	status, _ = s.request(t, "POST", "/socket.io/?EIO=4&transport=polling&sid="+sid, "40", h)
	assert.Equal(t, 200, status)
	// No Origin at all (a same-origin GET) passes.
	status, _ = s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+sid, "", nil)
	assert.Equal(t, 200, status)
}

// A path whose decoding holds '?', '&' or '#' would start a query the
// worker reads before the edge's: through one valid sid it would open
// worker sessions past the seal, the origin guard and the rate limit, or
// drive a raw worker sid. None reaches the worker.
func TestAdversarialEncodedQueryInThePathNeverReachesAWorker(t *testing.T) {
	s := startAdvStack(t, map[string]string{"PING_INTERVAL": "1", "PING_TIMEOUT": "1"}, "", "rate_limit connect 3/m", false)
	user := testenv.Login(t, s.worker.URL(), "uma", "user")
	sid := s.openPolling(t, user)
	raw := sid[:len(sid)-sticky.SealLength]
	h := map[string]string{"Cookie": user}
	for _, target := range []string{
		"/socket.io/%3FEIO=4%26transport=polling?EIO=4&transport=polling&sid=" + sid,
		"/socket.io/%3fEIO=4&transport=polling&sid=" + sid,
		"/socket.io/%3Fsid=" + raw + "%26EIO=4%26transport=polling?EIO=4&transport=polling&sid=" + sid,
		"/socket.io/%23?EIO=4&transport=polling&sid=" + sid,
		"/socket.io/x%3F?EIO=4&transport=polling",
	} {
		for _, method := range []string{"GET", "POST"} {
			body := ""
			if method == "POST" {
				body = "40"
			}
			status, resp := s.request(t, method, target, body, h)
			assert.Equal(t, 400, status, "%s %s: %s", method, target, resp)
			assert.NotContains(t, resp, `"upgrades"`, "%s %s opened a session", method, target)
		}
	}
	// The rate limit still counts every real handshake: three a minute.
	for i := range 3 {
		status, _ := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling", "", nil)
		if i < 2 {
			assert.Equal(t, 200, status)
		} else {
			assert.Equal(t, 429, status)
		}
	}
	waitRegistryEmpty(t, s.edge)
}

// waitRegistryEmpty waits until the edge counts no live session on any
// worker: every client is gone, whatever it sent.
func waitRegistryEmpty(t *testing.T, edge *testenv.Edge) {
	t.Helper()
	var last string
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + edge.AdminAddr + "/socketio/upstreams")
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		last = string(b)
		var ups []struct{ Sessions int }
		require.NoError(t, json.Unmarshal(b, &ups), last)
		total := 0
		for _, u := range ups {
			total += u.Sessions
		}
		if total == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("live sessions never returned to zero: %s", last)
}

// Whatever clients send (refused upgrades, forged and foreign sids,
// overlapping polls, WebSockets that end), the per-worker live counts
// return to zero once every client is gone.
func TestAdversarialLiveCountsReturnToZeroWhateverClientsSent(t *testing.T) {
	s := startAdvStack(t, map[string]string{"PING_INTERVAL": "1", "PING_TIMEOUT": "1"}, "", "", false)
	user := testenv.Login(t, s.worker.URL(), "uma", "user")
	admin := testenv.Login(t, s.worker.URL(), "ada", "admin")
	sid := s.openPolling(t, user)
	// A refused upgrade (another user), a forged seal, a raw worker sid.
	_, _, _ = websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket&sid="+sid, http.Header{"Cookie": {admin}})
	forged := sid[:len(sid)-1] + map[bool]string{true: "A", false: "B"}[sid[len(sid)-1] != 'A']
	for _, bad := range []string{forged, sid[:len(sid)-sticky.SealLength]} {
		status, _ := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+bad, "", map[string]string{"Cookie": user})
		assert.Equal(t, 400, status)
	}
	// A WebSocket-only session that ends.
	ws := dialWS(t, s, "")
	ws.connect(t, "/")
	ws.conn.Close()
	// Two long-polls at once on one session: the second is refused.
	done := make(chan int, 2)
	for range 2 {
		go func() {
			status, _ := s.request(t, "GET", "/socket.io/?EIO=4&transport=polling&sid="+sid, "", map[string]string{"Cookie": user})
			done <- status
		}()
	}
	statuses := []int{<-done, <-done}
	assert.Contains(t, statuses, 200)
	waitRegistryEmpty(t, s.edge)
}

// wsClient is a raw Engine.IO WebSocket client, to send packets a
// library would not.
type wsClient struct {
	conn *websocket.Conn
}

func dialWS(t *testing.T, s *advStack, cookie string) *wsClient {
	t.Helper()
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	conn, res, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket", h)
	if res != nil {
		res.Body.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{conn: conn}
	open := c.read(t, "0")
	require.Contains(t, open, `"sid"`)
	return c
}

// read returns the next message that starts with prefix, answering pings
// and skipping others.
func (c *wsClient) read(t *testing.T, prefix string) string {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := c.conn.ReadMessage()
		require.NoError(t, err, "waiting for %q", prefix)
		if string(msg) == "2" {
			require.NoError(t, c.conn.WriteMessage(websocket.TextMessage, []byte("3")))
			continue
		}
		if strings.HasPrefix(string(msg), prefix) {
			return string(msg)
		}
	}
}

func (c *wsClient) send(t *testing.T, msg string) {
	t.Helper()
	require.NoError(t, c.conn.WriteMessage(websocket.TextMessage, []byte(msg)))
}

// connect connects namespace ns and returns the reply, a CONNECT or a
// CONNECT_ERROR.
func (c *wsClient) connect(t *testing.T, ns string) string {
	t.Helper()
	if ns == "/" {
		c.send(t, "40")
		return c.read(t, "4")
	}
	c.send(t, "40"+ns+",")
	return c.read(t, "4")
}

// echo sends an echo event on "/" and waits for its ack.
func (c *wsClient) echo(t *testing.T, id int) {
	t.Helper()
	c.send(t, "42"+strconv.Itoa(id)+`["echo","x"]`)
	c.read(t, "43"+strconv.Itoa(id))
}

// With whoami, a role withdrawn in the app's database takes /admin from
// a live WebSocket within whoami_ttl plus the check interval: both the
// client and the worker get the DISCONNECT, a new CONNECT to /admin on
// the same socket is refused, and "/" keeps working.
func TestAdversarialARoleWithdrawnTakesAdminFromALiveWebSocket(t *testing.T) {
	roles := filepath.Join(t.TempDir(), "roles.json")
	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "admin"}`), 0o600))
	env := map[string]string{"ROLES_FILE": roles}
	whoami := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "whoami", SecretKey: advSecret, Env: env})
	s := startAdvStack(t, env, "whoami "+whoami.URL()+"/api/whoami\n\t\twhoami_ttl 1s", "", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "user")

	ws := dialWS(t, s, ada)
	require.True(t, strings.HasPrefix(ws.connect(t, "/"), "40{"))
	require.True(t, strings.HasPrefix(ws.connect(t, "/admin"), "40/admin,{"), "ada is an admin in the database")
	// And a polling session of hers, also in /admin.
	h := map[string]string{"Cookie": ada}
	sid := s.openPolling(t, ada)
	poll := "/socket.io/?EIO=4&transport=polling&sid=" + sid
	status, body := s.request(t, "POST", poll, "40/admin,", h)
	require.Equal(t, 200, status, body)
	_, body = s.request(t, "GET", poll, "", h)
	require.Contains(t, body, `40/admin,{"sid"`)

	require.NoError(t, os.WriteFile(roles, []byte(`{"ada": "user"}`), 0o600))
	withdrawn := time.Now()
	assert.Equal(t, "41/admin,", ws.read(t, "41"))
	took := time.Since(withdrawn)
	t.Logf("/admin withdrawn %v after the role", took)
	assert.Less(t, took, 1*time.Second+5*time.Second+2*time.Second)

	reply := ws.connect(t, "/admin")
	assert.True(t, strings.HasPrefix(reply, "44/admin,"), reply)
	ws.echo(t, 1)

	// The polling session loses /admin at its next long-poll.
	status, body = s.request(t, "GET", poll, "", h)
	assert.Equal(t, 200, status)
	assert.Equal(t, "41/admin,", body)
	status, body = s.request(t, "POST", poll, "40/admin,", h)
	require.Equal(t, 200, status, body)
	_, body = s.request(t, "GET", poll, "", h)
	assert.Contains(t, body, `44/admin,{"message":"The /admin namespace requires the role admin."`)
	assert.Eventually(t, func() bool { return strings.Contains(s.worker.Output(), "disconnect namespace=/admin") },
		10*time.Second, 50*time.Millisecond, "the worker was told")
}

// A reload that adds a namespace rule applies to a live WebSocket's next
// CONNECT, while the WebSocket keeps working on "/"; a reload that
// lowers max_payload applies to its next message.
func TestAdversarialAReloadAppliesToALiveWebSocket(t *testing.T) {
	s := startAdvStack(t, nil, "", "", true)
	user := testenv.Login(t, s.worker.URL(), "uma", "user")
	ws := dialWS(t, s, user)
	require.True(t, strings.HasPrefix(ws.connect(t, "/"), "40{"))
	ws.echo(t, 1)

	s.edge.Reload(t, s.config("namespace /admin role admin"))
	reply := ws.connect(t, "/admin")
	assert.True(t, strings.HasPrefix(reply, "44/admin,"), reply)
	assert.Contains(t, reply, "requires the role admin")
	ws.echo(t, 2)
	assert.Empty(t, adminLines(s.worker), "the worker saw the CONNECT")

	s.edge.Reload(t, s.config("namespace /admin role admin\n\t\tmax_payload 64"))
	ws.send(t, `42["echo","`+strings.Repeat("x", 100)+`"]`)
	_ = ws.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
			break
		}
	}
}

// 300 POSTs that announce nearly max_payload and send no body make the
// edge hold memory for what arrives, not for what was announced.
func TestAdversarialHeaderOnlyPOSTsHoldNoMemory(t *testing.T) {
	s := startAdvStack(t, nil, "", "", false)
	grew := headerOnlyPOSTsHeapGrowth(t, s, 300)
	t.Logf("heap growth under 300 header-only POSTs: %.1f MB", grew)
	assert.Less(t, grew, 30.0)
}

// headerOnlyPOSTsHeapGrowth opens n sessions, sends each one a POST
// whose headers announce nearly max_payload and whose body never comes,
// and returns the growth of the edge's Go heap in MB while they wait.
func headerOnlyPOSTsHeapGrowth(t testing.TB, s *advStack, n int) float64 {
	t.Helper()
	sids := make([]string, n)
	for i := range sids {
		req, _ := http.NewRequest("GET", s.url()+"/socket.io/?EIO=4&transport=polling", nil)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		sids[i] = sidPattern.FindStringSubmatch(string(b))[1]
	}
	before := heapInuse(t, s.edge)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, sid := range sids {
		c, err := net.Dial("tcp", s.addr)
		require.NoError(t, err)
		conns = append(conns, c)
		_, err = fmt.Fprintf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 999990\r\n\r\n", sid, s.addr)
		require.NoError(t, err)
	}
	// The POSTs are in flight once the edge counts them.
	deadline := time.Now().Add(20 * time.Second)
	for inFlight(t, s.edge) < float64(n) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.GreaterOrEqual(t, inFlight(t, s.edge), float64(n))
	after := heapInuse(t, s.edge)
	// Each connection is still waiting for its body.
	for _, c := range conns[:1] {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := bufio.NewReader(c).ReadByte()
		require.Error(t, err)
	}
	return (after - before) / (1 << 20)
}

// metric reads one sample from the edge's Prometheus metrics.
func metric(t testing.TB, edge *testenv.Edge, name string) float64 {
	res, err := http.Get("http://" + edge.AdminAddr + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	sum := 0.0
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			require.NoError(t, err, l)
			sum += v
		}
	}
	return sum
}

func heapInuse(t testing.TB, edge *testenv.Edge) float64 {
	return metric(t, edge, "go_memstats_heap_inuse_bytes")
}

func inFlight(t testing.TB, edge *testenv.Edge) float64 {
	return metric(t, edge, "caddy_socketio_requests_in_flight")
}

// A WebSocket outlives its cookie: once the cookie passes max_age, the
// session loses what it needed a login for (here /admin), while "/"
// goes on.
func TestAdversarialACookiePastMaxAgeTakesAdminFromALiveWebSocket(t *testing.T) {
	const maxAge = 3 * time.Second
	s := startAdvStack(t, nil, "max_age 3s", "", false)
	ada := testenv.Login(t, s.worker.URL(), "ada", "admin")
	signed := time.Now()
	ws := dialWS(t, s, ada)
	require.True(t, strings.HasPrefix(ws.connect(t, "/"), "40{"))
	require.True(t, strings.HasPrefix(ws.connect(t, "/admin"), "40/admin,{"))
	require.Less(t, time.Since(signed), maxAge, "connecting took longer than max_age")

	assert.Equal(t, "41/admin,", ws.read(t, "41"))
	took := time.Since(signed)
	t.Logf("/admin withdrawn %v after the cookie was signed (max_age %v)", took, maxAge)
	// itsdangerous counts whole seconds: the cookie is good for max_age
	// plus what was left of the second it was signed in.
	assert.GreaterOrEqual(t, took, maxAge-time.Second)
	assert.Less(t, took, maxAge+2*time.Second)
	ws.echo(t, 1)
}

// BenchmarkHeaderOnlyPOSTs reports the edge's heap growth under 300
// POSTs that announce nearly max_payload and send no body: a figure, not
// a time (docs/BENCHMARKS.md). Run it with -benchtime 1x.
func BenchmarkHeaderOnlyPOSTs(b *testing.B) {
	s := startAdvStack(b, nil, "", "", false)
	var mb float64
	for b.Loop() {
		mb = headerOnlyPOSTsHeapGrowth(b, s, 300)
	}
	b.ReportMetric(mb, "MB-heap-growth")
}
