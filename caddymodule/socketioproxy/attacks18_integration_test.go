package socketioproxy_test

// Attack session 18, on two changes:
//
// 980ee9f: flask_session refuses (as malformed) a verified session whose
// user id or role the identity headers would not carry as read (control
// bytes, spaces at the ends, a comma in a role), and whoami answers
// likewise. The oracle is what the worker reads: the real Flask worker's
// environ (/api/edge-identity) and a fake worker's raw request heads,
// compared with what real Flask signed (sessions signed by /usr/bin/python3
// with Flask's own session interface).
//
// 1a995d1: the WebSocket relay's event engine and the parked-connection
// watcher make their system calls with syscall.RawSyscall. The oracle is
// a WebSocket worker of the test's own that numbers what it sends and
// records what it gets, and the edge's /proc entries (descriptors, CPU
// time, resident memory).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// ---------------------------------------------------------------------
// Change 1: identities carried in headers.

// atk18Sign signs each session (JSON text, read by Python's json.loads, so
// "\ud800" is a lone surrogate) with the real Flask's session interface
// and key advSecret, and returns Cookie header values.
func atk18Sign(t *testing.T, sessions ...string) []string {
	t.Helper()
	testenv.RequirePython(t)
	const py = `
import json, sys
from flask import Flask
app = Flask("atk18")
app.secret_key = sys.argv[1]
s = app.session_interface.get_signing_serializer(app)
for line in sys.stdin.read().split("\n"):
    if line:
        print("session=" + s.dumps(json.loads(line)))
`
	cmd := exec.Command("/usr/bin/python3", "-c", py, advSecret)
	cmd.Stdin = strings.NewReader(strings.Join(sessions, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Fields(string(out))
	require.Len(t, lines, len(sessions), "%s", out)
	return lines
}

// atk18LoginRaw posts a raw JSON body to the worker's /login (the example
// app's own login, which takes any name) and returns the cookie.
func atk18LoginRaw(t *testing.T, base, body string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Post(base+"/login", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, 200, res.StatusCode, "%s", b)
	for _, c := range res.Cookies() {
		if c.Name == "session" {
			return "session=" + c.Value
		}
	}
	t.Fatalf("no session cookie for %s", body)
	return ""
}

// atk18Seen is what the real worker read, through the edge, for cookie:
// the raw bytes of X-Auth-User-Id and X-Auth-Role (environ values are
// latin-1 decoded; turned back into bytes here), whether they were there,
// and every HTTP_X_AUTH* environ key.
type atk18Seen struct {
	user, role       string
	hasUser, hasRole bool
	environ          map[string]string
}

func atk18Latin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return string(b)
}

func atk18Identity(t *testing.T, addr, cookie string, hdr map[string]string) atk18Seen {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/api/edge-identity", nil)
	require.NoError(t, err)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for k, v := range hdr {
		req.Header[k] = []string{v}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, 200, res.StatusCode, "%s", b)
	var v struct {
		UserID  *string           `json:"user_id"`
		Role    *string           `json:"role"`
		Environ map[string]string `json:"environ"`
	}
	require.NoError(t, json.Unmarshal(b, &v), "%s", b)
	s := atk18Seen{environ: map[string]string{}}
	if v.UserID != nil {
		s.user, s.hasUser = atk18Latin1(*v.UserID), true
	}
	if v.Role != nil {
		s.role, s.hasRole = atk18Latin1(*v.Role), true
	}
	for k, x := range v.Environ {
		s.environ[k] = atk18Latin1(x)
	}
	return s
}

// atk18AdminReply opens a polling session with cookie, asks for /admin and
// returns the worker's (or the edge's) reply to that CONNECT.
func atk18AdminReply(t *testing.T, addr, cookie string) string {
	t.Helper()
	sid := atk11Open(t, addr, cookie)
	h := map[string]string{"Cookie": cookie}
	c := atk11Dial(t, addr)
	res, body, err := c.do("POST", atk11Path+"&sid="+sid, h, "40/admin,")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, body)
	for i := 0; i < 5; i++ {
		res, body, err = c.do("GET", atk11Path+"&sid="+sid, h, "")
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, body)
		for _, p := range strings.Split(body, "\x1e") {
			if strings.HasPrefix(p, "40/admin,") || strings.HasPrefix(p, "44/admin,") || strings.HasPrefix(p, "41/admin,") {
				return p
			}
		}
	}
	t.Fatalf("no reply to 40/admin")
	return ""
}

// A user id with a lone surrogate: Python's json.loads keeps "\ud800" as
// it is (Flask writes it escaped, ensure_ascii), so Flask, Flask-Login and
// the app see a user whose id is the one code point U+D800. The example
// app's /login takes such a name from a JSON body and Flask signs it. The
// edge's JSON reading (encoding/json) turns every lone surrogate into
// U+FFFD: users "\ud800", "\udbff" and "\udc00" (three accounts for the
// app) all become the edge's user "\ufffd", which is also the edge's
// reading of the real user "\ufffd" (the replacement character, a name
// any UTF-8 form accepts). The worker then gets X-Auth-User-Id: EF BF BD
// for each of them: an app that trusts the header (the purpose of
// identity_headers) serves the owner of "\ufffd" to the others, and the
// edge's own per-user decisions (session ownership, message limits) take
// them for one user.
//
// Expected: distinct Flask users never reach the worker as the same
// X-Auth-User-Id; an id the header cannot carry as Flask holds it is
// refused like the control bytes of 980ee9f (anonymous, no header).
//
// FAILED at 63dc466; fixed since: flaskcookie refuses an unpaired
// surrogate in a user id or role as malformed. Reproduction: start the example app and an edge
// (flask_session + reverse_proxy to it); POST /login with the raw body
// {"username":"\ud800","role":"user"} and again with
// {"username":"\ufffd","role":"user"}; GET /api/edge-identity through the
// edge with each cookie: both answer user_id "\u00ef\u00bf\u00bd" (the
// bytes EF BF BD), while /api/whoami answers "\ud800" and "\ufffd".
func TestAttack18LoneSurrogateUserIdsReachTheWorkerAsAnotherUser(t *testing.T) {
	s := atk11Start(t, "")
	victim := atk18LoginRaw(t, s.worker.URL(), `{"username":"\ufffd","role":"user"}`)
	want := atk18Identity(t, s.addr, victim, nil)
	require.True(t, want.hasUser)
	require.Equal(t, "\ufffd", want.user, "the real U+FFFD user is carried as UTF-8")
	for _, name := range []string{`\ud800`, `\udc00`, `\udbff\udbff`, `x\udfff`} {
		t.Run(name, func(t *testing.T) {
			cookie := atk18LoginRaw(t, s.worker.URL(), `{"username":"`+name+`","role":"user"}`)
			got := atk18Identity(t, s.addr, cookie, nil)
			if got.hasUser {
				var flaskID string
				require.NoError(t, json.Unmarshal([]byte(`"`+name+`"`), &flaskID))
				assert.NotEqual(t, want.user, got.user,
					"Flask user %q reached the worker as X-Auth-User-Id %q, the same header as user \"\\ufffd\"", name, got.user)
				if strings.Count(name, `\u`) > 1 || strings.HasPrefix(name, "x") {
					assert.NotContains(t, got.user, "\ufffd", "Flask user %q reached the worker as %q", name, got.user)
				}
			}
		})
	}
}

// The same collision against the edge's session ownership (sticky: a
// session answers only the user who opened it; another user's cookie is
// refused as identity_mismatch). A session opened by user "\ufffd" is
// used with the cookie of Flask user "\ud800" (another account). Expected:
// refused, as it is for an ordinary other user ("bob"). FAILED at
// 63dc466 (the edge read both as "\ufffd": the other account's POST was
// accepted and relayed to the victim's worker session); fixed since.
func TestAttack18LoneSurrogateUserRidesAnotherUsersSession(t *testing.T) {
	s := atk11Start(t, "")
	victim := atk18LoginRaw(t, s.worker.URL(), `{"username":"\ufffd","role":"user"}`)
	other := atk18LoginRaw(t, s.worker.URL(), `{"username":"\ud800","role":"user"}`)
	bob := testenv.Login(t, s.worker.URL(), "bob", "user")
	sid := atk11Open(t, s.addr, victim)
	post := func(cookie string, id int) (int, string) {
		c := atk11Dial(t, s.addr)
		res, body, err := c.do("POST", atk11Path+"&sid="+sid, map[string]string{"Cookie": cookie}, fmt.Sprintf(`42%d["echo","atk18"]`, id))
		require.NoError(t, err)
		return res.StatusCode, body
	}
	bobCode, bobBody := post(bob, 1)
	require.NotEqual(t, 200, bobCode, "control: another user's cookie on the session: %d %s", bobCode, bobBody)
	code, body := post(other, 2)
	assert.Equal(t, bobCode, code, "Flask user \"\\ud800\" on user \"\\ufffd\"'s session: %d %q (bob got %d %q)", code, body, bobCode, bobBody)
}

// Non-ASCII and Unicode white space in signed user ids and roles, signed
// by real Flask (not only what /login allows, which strips white space):
// U+00A0, U+3000, U+0085 (NEL: its UTF-8 C2 85 holds 0x85, which Python's
// str.splitlines would break a line at), U+2028, 'Å' (C3 85), 'х' (D1 85),
// U+FEFF, a role list with an empty string and a duplicate, a fullwidth
// "ａdmin", and a role that is a dict spelled like a Markup tag.
// Expected for each: if the worker gets the headers, X-Auth-User-Id's bytes
// are the UTF-8 of the id Flask signed and X-Auth-Role's are the roles
// Flask signed joined with ",", no other HTTP_X_AUTH* key, and /admin is
// granted only when "admin" is one of Flask's roles exactly.
func TestAttack18UnicodeIdsAndRolesReachTheWorkerAsSigned(t *testing.T) {
	s := atk11Start(t, "")
	type tc struct {
		user  string
		roles []string
		json  string
	}
	cases := []tc{
		{"uma\u00a0", []string{"user"}, ""},
		{"\u3000uma", []string{"user"}, ""},
		{"uma\u0085X-Auth-Role: admin", []string{"user"}, ""},
		{"uma\u2028X-Auth-Role: admin", []string{"user"}, ""},
		{"Åsa", []string{"user"}, ""},
		{"Михаил", []string{"user"}, ""},
		{"\ufeffuma", []string{"user"}, ""},
		{"uma", []string{"admin\u00a0"}, ""},
		{"uma", []string{"\u3000admin"}, ""},
		{"uma", []string{"admin\u0085"}, ""},
		{"uma", []string{"user\u0085X-Auth-Role: admin"}, ""},
		{"uma", []string{"user", ""}, ""},
		{"uma", []string{"", "user", "user"}, ""},
		{"uma", []string{"\uff41dmin"}, ""}, // fullwidth a
		{"uma", nil, `{"_user_id":"uma","role":{" m":"admin"}}`},
	}
	var sessions []string
	for _, c := range cases {
		if c.json != "" {
			sessions = append(sessions, c.json)
			continue
		}
		b, _ := json.Marshal(map[string]any{"_user_id": c.user, "role": c.roles})
		sessions = append(sessions, string(b))
	}
	cookies := atk18Sign(t, sessions...)
	for i, c := range cases {
		t.Run(strconv.Quote(sessions[i]), func(t *testing.T) {
			got := atk18Identity(t, s.addr, cookies[i], nil)
			for k := range got.environ {
				assert.Contains(t, []string{"HTTP_X_AUTH_USER_ID", "HTTP_X_AUTH_ROLE"}, k, "environ %q", got.environ)
			}
			roles := c.roles
			if c.json != "" {
				// Python reads {" m": ...} as a dict, which Flask signs
				// escaped as " di": the role is a dict, not "admin".
				roles = nil
			}
			admin := false
			for _, r := range roles {
				admin = admin || r == "admin"
			}
			if got.hasUser {
				assert.Equal(t, c.user, got.user, "X-Auth-User-Id bytes")
				assert.Equal(t, strings.Join(roles, ","), got.role, "X-Auth-Role bytes")
				assert.Equal(t, got.user, got.environ["HTTP_X_AUTH_USER_ID"])
				assert.Equal(t, got.role, got.environ["HTTP_X_AUTH_ROLE"])
			} else {
				t.Logf("refused: no identity headers (environ %q)", got.environ)
				assert.False(t, got.hasRole)
			}
			reply := atk18AdminReply(t, s.addr, cookies[i])
			if admin && got.hasUser {
				assert.True(t, strings.HasPrefix(reply, "40/admin,"), "reply %q", reply)
			} else if !admin {
				assert.True(t, strings.HasPrefix(reply, "44/admin,"), "a non-admin got /admin: %q", reply)
			}
		})
	}
}

// Identity headers a client sends itself, under every spelling a WSGI
// server folds into HTTP_X_AUTH_USER_ID / HTTP_X_AUTH_ROLE, on a polling
// handshake and a WebSocket upgrade, anonymous and logged in, as the fake
// worker reads the raw heads. Expected: only the edge's own X-Auth-* (for
// the cookie's user), one line each; none of the client's.
func TestAttack18ClientIdentityHeadersNeverReachTheWorker(t *testing.T) {
	login := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "login", SecretKey: advSecret})
	uma := testenv.Login(t, login.URL(), "uma", "user")
	f := startAtk14Fake(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, atk14Config(addr, f.addr, "namespace /admin role admin"), addr)
	spoof := []string{
		"X-Auth-User-Id: root", "X-Auth-Role: admin", "X_Auth_Role: admin", "x_auth_user_id: root",
		"X-AUTH-ROLE: admin", "x-Auth_Role: admin", "X-Auth-Role : admin", "X-Auth-Role:admin",
	}
	for _, cookie := range []string{"", uma} {
		for _, ws := range []bool{false, true} {
			name := fmt.Sprintf("cookie=%v,websocket=%v", cookie != "", ws)
			t.Run(name, func(t *testing.T) {
				for _, sp := range spoof {
					q := atk11Path
					var b strings.Builder
					if ws {
						q = "/socket.io/?EIO=4&transport=websocket&atk18=" + strconv.Itoa(len(sp))
					}
					fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n", q, addr, advAllowed)
					if ws {
						b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
					}
					if cookie != "" {
						b.WriteString("Cookie: " + cookie + "\r\n")
					}
					b.WriteString(sp + "\r\n\r\n")
					c := atk11Dial(t, addr)
					require.NoError(t, c.raw(b.String()))
					res, body, err := c.read("GET", 10*time.Second)
					if err != nil || res.StatusCode == 400 {
						// The edge refused the request itself (a malformed
						// header line): nothing reached the worker.
						t.Logf("%q: %v %v %q", sp, err, res != nil && res.StatusCode == 400, body)
						continue
					}
					r := f.next(t, 10*time.Second, func(r *atk14Req) bool { return true })
					var idLines []string
					for _, l := range strings.Split(r.head, "\r\n") {
						k, _, _ := strings.Cut(l, ":")
						if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(k), "_", "-"), "X-Auth-User-Id") ||
							strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(k), "_", "-"), "X-Auth-Role") {
							idLines = append(idLines, l)
						}
					}
					if cookie == "" {
						assert.Empty(t, idLines, "%q: the worker read %q", sp, r.head)
					} else {
						assert.ElementsMatch(t, []string{"X-Auth-User-Id: uma", "X-Auth-Role: user"}, idLines, "%q: the worker read %q", sp, r.head)
					}
				}
			})
		}
	}
}

// ---------------------------------------------------------------------
// Change 2: raw system calls in the relay's event engine and the parked
// connections' watcher.

// atk18WS is an Engine.IO WebSocket worker of the test's own. On "40" it
// connects "/"; on 42<id>["echo",x] it acks 43<id>[x]; on
// 42["flood",n,size] it sends n events 42["n",i,"<size bytes>"] then
// 42["flood_done",n], counting the bytes it managed to write; every text
// message it reads is recorded per connection.
type atk18WS struct {
	addr   string
	sent   atomic.Int64
	mu     sync.Mutex
	conns  []*atk18WSConn
	closes []int // close codes read from the edge
	srv    *http.Server
}

type atk18WSConn struct {
	ws  *websocket.Conn
	mu  sync.Mutex
	got []string
	wmu sync.Mutex
}

func (c *atk18WSConn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, []byte(s))
}

func startAtk18WS(t *testing.T) *atk18WS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &atk18WS{addr: ln.Addr().String()}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	var n atomic.Int64
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("transport") != "websocket" {
			http.Error(w, "websocket only", 400)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		c := &atk18WSConn{ws: ws}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		sid := fmt.Sprintf("W%d", n.Add(1))
		if c.write(`0{"sid":"`+sid+`","upgrades":[],"pingInterval":25000,"pingTimeout":60000}`) != nil {
			return
		}
		for {
			mt, msg, err := ws.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					f.mu.Lock()
					f.closes = append(f.closes, ce.Code)
					f.mu.Unlock()
				}
				return
			}
			if mt != websocket.TextMessage {
				continue
			}
			s := string(msg)
			c.mu.Lock()
			c.got = append(c.got, s)
			c.mu.Unlock()
			switch {
			case s == "40":
				_ = c.write(`40{"sid":"` + sid + `"}`)
			case strings.HasPrefix(s, "42"):
				i := 2
				for i < len(s) && s[i] >= '0' && s[i] <= '9' {
					i++
				}
				id := s[2:i]
				var args []json.RawMessage
				if json.Unmarshal([]byte(s[i:]), &args) != nil || len(args) == 0 {
					continue
				}
				switch string(args[0]) {
				case `"echo"`:
					if len(args) > 1 {
						_ = c.write("43" + id + "[" + string(args[1]) + "]")
					}
				case `"flood"`:
					var cnt, size int
					_ = json.Unmarshal(args[1], &cnt)
					_ = json.Unmarshal(args[2], &size)
					go func() {
						pad := strings.Repeat("p", size)
						for k := 0; k < cnt; k++ {
							m := fmt.Sprintf(`42["n",%d,"%s"]`, k, pad)
							if c.write(m) != nil {
								return
							}
							f.sent.Add(int64(len(m)))
						}
						_ = c.write(fmt.Sprintf(`42["flood_done",%d]`, cnt))
					}()
				case `"vanish"`:
					// The worker resets its connection in the middle of a
					// frame it is sending.
					raw := ws.UnderlyingConn()
					c.wmu.Lock()
					_, _ = raw.Write([]byte{0x81, 126, 0x10, 0x00, 'x', 'y'})
					if tc, ok := raw.(*net.TCPConn); ok {
						_ = tc.SetLinger(0)
					}
					raw.Close()
					c.wmu.Unlock()
					return
				}
			}
		}
	})}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func (f *atk18WS) messages() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, c := range f.conns {
		c.mu.Lock()
		out = append(out, append([]string(nil), c.got...))
		c.mu.Unlock()
	}
	return out
}

func atk18WSConfig(addr, upstream, extra string) testenv.EdgeConfig {
	return testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy {
		to %[2]s
		%[3]s
	}
}
`, addr, upstream, extra))
}

// atk18Dial opens a WebSocket-only session through the edge and connects
// "/"; wbuf is the client's write buffer: a message longer than it is sent
// in fragments of that size.
func atk18Dial(t *testing.T, addr string, wbuf int) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{WriteBufferSize: wbuf, HandshakeTimeout: 10 * time.Second}
	c, res, err := d.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if res != nil {
		res.Body.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, open, err := c.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(open), "0{"), "%s", open)
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("40")))
	_, m, err := c.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(m), "40{"), "%s", m)
	return c
}

// atk18Echo sends 42<id>["echo","<payload>"] and returns the ack read.
func atk18Echo(c *websocket.Conn, id int, payload string) error {
	if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42%d["echo","%s"]`, id, payload))); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if want := fmt.Sprintf(`43%d["%s"]`, id, payload); string(m) != want {
			if strings.HasPrefix(string(m), fmt.Sprintf("43%d[", id)) {
				return fmt.Errorf("ack %d: %d bytes, want %d", id, len(m), len(want))
			}
			return fmt.Errorf("unexpected message %.80q waiting for ack %d", m, id)
		}
		return nil
	}
}

func atk18Payload(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range b {
		b[i] = alpha[int(b[i])%len(alpha)]
	}
	return string(b)
}

// atk18CPU is the edge's utime+stime in clock ticks.
func atk18CPU(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func atk18RSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v * 1024
		}
	}
	return 0
}

// atk18Idle checks the edge spins no CPU while nothing happens: at most
// 10 ticks (100 ms at USER_HZ 100) over 3 s of wall time.
func atk18Idle(t *testing.T, pid int, what string) {
	t.Helper()
	before := atk18CPU(t, pid)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		// Polled, not slept on: a check every 100 ms that the edge is
		// not already burning far past the bound.
		if atk18CPU(t, pid)-before > 30 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	used := atk18CPU(t, pid) - before
	t.Logf("%s: edge CPU %d ticks over 3 s idle", what, used)
	assert.LessOrEqual(t, used, int64(10), "%s: the edge used %d ticks of CPU while idle", what, used)
}

// atk18Settle waits until the edge's descriptors are back to base (a
// little slack for Caddy's own) and no relay is counted.
func atk18Settle(t *testing.T, e *testenv.Edge, pid, base int, what string) {
	t.Helper()
	ok := assert.Eventually(t, func() bool {
		m := scrape(t, e.AdminAddr)
		return atk15Fds(t, pid) <= base+2 && m[`caddy_socketio_websocket_relays{engine="event"}`] == 0 &&
			m[`caddy_socketio_websocket_relays{engine="goroutine"}`] == 0
	}, 20*time.Second, 50*time.Millisecond, "%s: descriptors or relays left", what)
	if !ok {
		m := scrape(t, e.AdminAddr)
		t.Logf("%s: fds %d (base %d), relays event %v goroutine %v", what, atk15Fds(t, pid), base,
			m[`caddy_socketio_websocket_relays{engine="event"}`], m[`caddy_socketio_websocket_relays{engine="goroutine"}`])
	}
}

// Messages of every length class (1, 125, 126, 65535, 65536 bytes, half
// a MiB, and exactly max_payload), from a client whose writes are
// fragmented in 1 KiB frames with pings interleaved from another
// goroutine; then one byte over max_payload, whole and fragmented.
// Expected: every message reaches the worker once and intact and comes
// back intact (the ack), every ping gets its pong, the relays run on the
// event engine, and the message over the limit closes the session with
// 1009 on both sides; descriptors return to the baseline; no CPU while
// idle.
func TestAttack18LargeAndFragmentedFramesUpToAndOverMaxPayload(t *testing.T) {
	f := startAtk18WS(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	const max = 1 << 20
	e := testenv.StartEdge(t, atk18WSConfig(addr, f.addr, "max_payload 1048576"), addr)
	pid := atk15Pid(t, addr)
	warm := atk18Dial(t, addr, 4096)
	require.NoError(t, atk18Echo(warm, 1, "warm"))
	warm.Close()
	atk18Settle(t, e, pid, 1<<20, "warm-up") // only wait for the relay to go
	base := atk15Fds(t, pid)

	for _, wbuf := range []int{1 << 21, 1024} {
		t.Run(fmt.Sprintf("wbuf=%d", wbuf), func(t *testing.T) {
			c := atk18Dial(t, addr, wbuf)
			var pongs atomic.Int64
			c.SetPongHandler(func(string) error { pongs.Add(1); return nil })
			stop := make(chan struct{})
			var pings atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c.WriteControl(websocket.PingMessage, []byte("atk18"), time.Now().Add(5*time.Second)) != nil {
						return
					}
					pings.Add(1)
					time.Sleep(2 * time.Millisecond)
				}
			}()
			frame := len(`42000["echo",""]`)
			sizes := []int{1, 125 - frame, 126 - frame, 65535 - frame, 65536 - frame, 500_000, max - frame}
			for i, n := range sizes {
				require.NoError(t, atk18Echo(c, 100+i, atk18Payload(n)), "size %d", n+frame)
			}
			close(stop)
			wg.Wait()
			// Last ping's pong: one more echo brings any pong before it.
			require.NoError(t, atk18Echo(c, 999, "after"))
			assert.Equal(t, pings.Load(), pongs.Load(), "pings sent, pongs read")
			t.Logf("%d pings interleaved", pings.Load())

			over := fmt.Sprintf(`42998["echo","%s"]`, atk18Payload(max-frame+1))
			require.Len(t, over, max+1)
			require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(over)))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var err error
			for err == nil {
				_, _, err = c.ReadMessage()
			}
			ce, ok := err.(*websocket.CloseError)
			require.True(t, ok, "the client's session ended with %v, not a close frame", err)
			assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
		})
	}
	// What the worker read: every message once, in order, intact; never
	// the one over the limit.
	for _, got := range f.messages()[1:] {
		var ids []string
		for _, m := range got {
			if strings.HasPrefix(m, "42") {
				ids = append(ids, m[2:strings.IndexByte(m, '[')])
				assert.NotEqual(t, "998", m[2:5], "the message over max_payload reached the worker")
			}
		}
		assert.Equal(t, []string{"100", "101", "102", "103", "104", "105", "106", "999"}, ids)
	}
	// The warm-up session's client left without a close frame: its
	// worker read 1001; each session over the limit must give 1009.
	too := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		k := 0
		for _, code := range f.closes {
			if code == websocket.CloseMessageTooBig {
				k++
			}
		}
		return k
	}
	assert.Eventually(t, func() bool { return too() == 2 }, 10*time.Second, 20*time.Millisecond,
		"the worker did not read 1009 for both sessions over the limit")
	f.mu.Lock()
	t.Logf("the worker's close codes: %v", f.closes)
	f.mu.Unlock()
	atk18Settle(t, e, pid, base, "after the large frames")
	atk18Idle(t, pid, "after the large frames")
}

// A worker floods (2,000 events of 64 KiB: 128 MiB) a client that never
// reads. Expected: backpressure holds the worker at its TCP window (the
// bytes it writes stall far below 128 MiB), the edge's resident memory
// stays flat, the edge does not spin while stalled, and when the client
// reads at last it gets every event once, in order, then flood_done.
func TestAttack18ClientThatNeverReadsHoldsTheWorker(t *testing.T) {
	f := startAtk18WS(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, atk18WSConfig(addr, f.addr, ""), addr)
	pid := atk15Pid(t, addr)
	c := atk18Dial(t, addr, 4096)
	require.NoError(t, atk18Echo(c, 1, "warm"))
	require.Eventually(t, func() bool {
		return scrape(t, e.AdminAddr)[`caddy_socketio_websocket_relays{engine="event"}`] == 1
	}, 5*time.Second, 10*time.Millisecond, "the relay is not on the event engine")
	rss0 := atk18RSS(t, pid)
	const n, size = 2000, 64 << 10
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42["flood",%d,%d]`, n, size))))
	// Wait for the worker to stall: no progress for 1 s.
	last, since := int64(-1), time.Now()
	require.Eventually(t, func() bool {
		if s := f.sent.Load(); s != last {
			last, since = s, time.Now()
		}
		return time.Since(since) > time.Second
	}, 60*time.Second, 50*time.Millisecond)
	stalled := f.sent.Load()
	rss := atk18RSS(t, pid)
	t.Logf("the worker stalled after %d bytes of %d; edge RSS %d -> %d", stalled, int64(n)*(size+16), rss0, rss)
	assert.Less(t, stalled, int64(48<<20), "the worker wrote %d bytes to a client that reads nothing", stalled)
	assert.Less(t, rss-rss0, int64(48<<20), "the edge's memory grew %d bytes", rss-rss0)
	atk18Idle(t, pid, "while the flood is stalled")

	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	next := 0
	for {
		_, m, err := c.ReadMessage()
		require.NoError(t, err, "after event %d", next)
		s := string(m)
		if s == "2" {
			continue
		}
		if strings.HasPrefix(s, `42["flood_done"`) {
			break
		}
		want := fmt.Sprintf(`42["n",%d,"`, next)
		require.True(t, strings.HasPrefix(s, want), "event %d: got %.40q", next, s)
		require.Len(t, s, len(want)+size+2, "event %d", next)
		next++
	}
	assert.Equal(t, n, next)
}

// atk18RawWS opens a WebSocket to the edge on a raw connection and reads
// the 101 and the open packet's frame.
func atk18RawWS(addr string) (net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	_, err = fmt.Fprintf(c, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", addr)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if res.StatusCode != 101 {
		c.Close()
		return nil, nil, fmt.Errorf("status %d", res.StatusCode)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		c.Close()
		return nil, nil, err
	}
	l := int(hdr[1] & 0x7f)
	if l == 126 {
		var x [2]byte
		_, _ = io.ReadFull(br, x[:])
		l = int(binary.BigEndian.Uint16(x[:]))
	}
	if _, err := io.CopyN(io.Discard, br, int64(l)); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, br, nil
}

// atk18Masked is a masked client text frame header announcing n bytes,
// followed by the first k bytes of its payload.
func atk18Masked(n, k int) []byte {
	var b bytes.Buffer
	b.WriteByte(0x81)
	switch {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	case n < 1<<16:
		b.WriteByte(0x80 | 126)
		_ = binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(0x80 | 127)
		_ = binary.Write(&b, binary.BigEndian, uint64(n))
	}
	b.Write([]byte{1, 2, 3, 4})
	b.Write(bytes.Repeat([]byte{'4' ^ 1}, k))
	return b.Bytes()
}

// Connections cut in the middle of a frame, many at once, while other
// sessions echo: client resets (RST) after half a frame header or half a
// payload, client half-closes (FIN) mid-frame and keeps reading, plain
// closes mid-frame, and a worker that resets its end in the middle of a
// frame it sends (the "vanish" event) — 40 of each kind, in bursts, with
// 6 sessions echoing random payloads throughout. Expected: every echo of
// the live sessions comes back intact and once; a half-closed client is
// closed by the edge (EOF) within seconds; the client of a vanished
// worker gets a close; afterwards the edge's descriptors and relays are
// back at the baseline and its CPU is idle.
func TestAttack18CutsInTheMiddleOfFramesWhileOthersRelay(t *testing.T) {
	f := startAtk18WS(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e := testenv.StartEdge(t, atk18WSConfig(addr, f.addr, ""), addr)
	pid := atk15Pid(t, addr)
	w := atk18Dial(t, addr, 4096)
	require.NoError(t, atk18Echo(w, 1, "warm"))
	w.Close()
	atk18Settle(t, e, pid, 1<<20, "warm-up")
	base := atk15Fds(t, pid)

	live := make([]*websocket.Conn, 6)
	for i := range live {
		live[i] = atk18Dial(t, addr, 4096)
	}
	stop := make(chan struct{})
	var echoes atomic.Int64
	errs := make(chan error, len(live))
	var lw sync.WaitGroup
	for i, c := range live {
		lw.Add(1)
		go func(i int, c *websocket.Conn) {
			defer lw.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := atk18Echo(c, k, atk18Payload(1+(k*7919)%70000)); err != nil {
					errs <- fmt.Errorf("live session %d, echo %d: %w", i, k, err)
					return
				}
				echoes.Add(1)
			}
		}(i, c)
	}

	kinds := []string{"rst-header", "rst-payload", "fin-payload", "close-payload", "worker-vanish"}
	var problems sync.Map
	for round := 0; round < 4; round++ {
		var wg sync.WaitGroup
		for _, kind := range kinds {
			for j := 0; j < 10; j++ {
				wg.Add(1)
				go func(kind string, j int) {
					defer wg.Done()
					if kind == "worker-vanish" {
						d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
						c, res, err := d.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
						if res != nil {
							res.Body.Close()
						}
						if err != nil {
							problems.Store(fmt.Sprintf("%s %d dial", kind, j), err)
							return
						}
						defer c.Close()
						_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
						_, _, _ = c.ReadMessage()
						_ = c.WriteMessage(websocket.TextMessage, []byte(`42["vanish"]`))
						for {
							if _, _, err := c.ReadMessage(); err != nil {
								var ne net.Error
								if errorsAs(err, &ne) && ne.Timeout() {
									problems.Store(fmt.Sprintf("%s %d", kind, j), "the client was never told its worker left")
								}
								return
							}
						}
					}
					c, br, err := atk18RawWS(addr)
					if err != nil {
						problems.Store(fmt.Sprintf("%s %d dial", kind, j), err)
						return
					}
					defer c.Close()
					switch kind {
					case "rst-header":
						_, _ = c.Write(atk18Masked(70000, 0)[:3])
						_ = c.(*net.TCPConn).SetLinger(0)
					case "rst-payload":
						_, _ = c.Write(atk18Masked(70000, 30000))
						_ = c.(*net.TCPConn).SetLinger(0)
					case "close-payload":
						_, _ = c.Write(atk18Masked(300, 100))
					case "fin-payload":
						_, _ = c.Write(atk18Masked(70000, 1000))
						_ = c.(*net.TCPConn).CloseWrite()
						_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
						if _, err := io.Copy(io.Discard, br); err != nil {
							problems.Store(fmt.Sprintf("%s %d", kind, j), fmt.Sprintf("a half-closed client was not closed: %v", err))
						}
					}
				}(kind, j)
			}
		}
		wg.Wait()
	}
	close(stop)
	lw.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	problems.Range(func(k, v any) bool { t.Errorf("%v: %v", k, v); return true })
	t.Logf("%d echoes on the live sessions meanwhile", echoes.Load())
	for _, c := range live {
		c.Close()
	}
	atk18Settle(t, e, pid, base, "after the cuts")
	atk18Idle(t, pid, "after the cuts")
}

func errorsAs(err error, target *net.Error) bool {
	for err != nil {
		if ne, ok := err.(net.Error); ok {
			*target = ne
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// atk18FlaskEcho sends an echo to the real worker on a WebSocket and
// waits for its ack, answering pings.
func atk18FlaskEcho(c *websocket.Conn, id int, payload string) error {
	if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42%d["echo","%s"]`, id, payload))); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	prefix := fmt.Sprintf(`43%d[{"data":"%s"`, id, payload)
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			return fmt.Errorf("waiting for ack %d: %w", id, err)
		}
		switch s := string(m); {
		case s == "2":
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return err
			}
		case strings.HasPrefix(s, prefix):
			return nil
		default:
			return fmt.Errorf("waiting for ack %d: got %.80q", id, s)
		}
	}
}

// Polling sessions parked at the edge (their GETs waiting) while
// WebSockets echo through the real worker and 300 more WebSockets open
// and close at once (half with a close frame, half by dropping the TCP
// connection), with a config reload in the middle. Then every parked GET
// is woken by an echo POSTed on its session. Expected: each parked GET
// gets its own session's ack exactly once; no echo on the live WebSockets
// is lost, duplicated or cut by the reload; the churn's WebSockets all
// open; afterwards descriptors and relays are back at the baseline and the
// edge idles at (near) zero CPU.
func TestAttack18ParkedPollsAndWebSocketChurnAcrossAReload(t *testing.T) {
	s := atk11Start(t, "")
	pid := atk15Pid(t, s.addr)
	w := atk18DialFlask(t, s.addr)
	require.NoError(t, atk18FlaskEcho(w, 1, "warm"))
	w.Close()
	atk18Settle(t, s.edge, pid, 1<<20, "warm-up")
	sid0 := atk11OpenOn(t, s.edge, s.addr, "")
	atk11Echo(t, s.addr, sid0, "", 1)
	base := atk15Fds(t, pid)

	const parked = 30
	sids := make([]string, parked)
	gets := make([]*atk11Conn, parked)
	for i := range sids {
		sids[i] = atk11OpenOn(t, s.edge, s.addr, "")
	}
	for i, sid := range sids {
		gets[i] = atk11Dial(t, s.addr)
		require.NoError(t, gets[i].raw(atk11Request(s.addr, "GET", atk11Path+"&sid="+sid, nil, "")))
	}
	atk11Waiting(t, s.edge, parked)

	live := make([]*websocket.Conn, 6)
	for i := range live {
		live[i] = atk18DialFlask(t, s.addr)
	}
	stop := make(chan struct{})
	errs := make(chan error, len(live)+400)
	var echoes atomic.Int64
	var lw sync.WaitGroup
	for i, c := range live {
		lw.Add(1)
		go func(i int, c *websocket.Conn) {
			defer lw.Done()
			for k := 10; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := atk18FlaskEcho(c, k, atk18Payload(1+(k*7919)%20000)); err != nil {
					errs <- fmt.Errorf("live WebSocket %d: %w", i, err)
					return
				}
				echoes.Add(1)
			}
		}(i, c)
	}

	churn := func(n int) {
		var wg sync.WaitGroup
		for j := 0; j < n; j++ {
			wg.Add(1)
			go func(j int) {
				defer wg.Done()
				d := websocket.Dialer{HandshakeTimeout: 15 * time.Second}
				c, res, err := d.Dial("ws://"+s.addr+"/socket.io/?EIO=4&transport=websocket", nil)
				if res != nil {
					res.Body.Close()
				}
				if err != nil {
					errs <- fmt.Errorf("churn %d: %w", j, err)
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
				if _, m, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(m), "0{") {
					errs <- fmt.Errorf("churn %d: open packet %q %v", j, m, err)
				}
				if j%2 == 0 {
					_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
					_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
				}
				c.UnderlyingConn().Close()
			}(j)
		}
		wg.Wait()
	}
	churn(150)
	atk10Reload(t, s.edge, s.config(advAllowed, "max_payload 2MB"))
	churn(150)
	before := echoes.Load()
	require.Eventually(t, func() bool { return echoes.Load() > before+12 || len(errs) > 0 }, 30*time.Second, 20*time.Millisecond,
		"the live WebSockets stopped echoing after the reload")
	close(stop)
	lw.Wait()

	// Wake every parked GET with an echo on its own session.
	for i, sid := range sids {
		atk11Echo(t, s.addr, sid, "", 500+i)
	}
	for i, c := range gets {
		res, body, err := c.read("GET", 15*time.Second)
		if !assert.NoError(t, err, "parked GET %d", i) {
			continue
		}
		assert.Equal(t, 200, res.StatusCode, body)
		assert.Equal(t, 1, strings.Count(body, fmt.Sprintf("43%d[", 500+i)), "parked GET %d got %q", i, body)
		for j := range sids {
			if j != i {
				assert.NotContains(t, body, fmt.Sprintf("43%d[", 500+j), "parked GET %d got session %d's ack", i, j)
			}
		}
		c.c.Close()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d echoes on the live WebSockets", echoes.Load())
	for _, c := range live {
		c.Close()
	}
	// The polling sessions stay open at the worker (ping timeout); only
	// their parked connections are gone.
	atk18Settle(t, s.edge, pid, base, "after the churn and the reload")
	atk18Idle(t, pid, "after the churn and the reload")
}

// atk18DialFlask is atk18Dial against the real worker (its open packet,
// then "40").
func atk18DialFlask(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	return atk18Dial(t, addr, 4096)
}
