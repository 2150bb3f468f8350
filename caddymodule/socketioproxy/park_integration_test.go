package socketioproxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// pollConn is one kept-alive HTTP/1.1 connection of a polling client,
// spoken by hand so that the test decides which request goes on which
// connection.
type pollConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	host string
}

func dialPoll(t *testing.T, addr string) *pollConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &pollConn{t: t, conn: conn, br: bufio.NewReader(conn), host: addr}
}

// send writes a request; read reads its answer.
func (pc *pollConn) send(method, query, body string, header ...string) {
	pc.t.Helper()
	req := method + " /socket.io/?EIO=4&transport=polling" + query + " HTTP/1.1\r\nHost: " + pc.host + "\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if method == http.MethodPost {
		req += "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	_, err := io.WriteString(pc.conn, req+"\r\n"+body)
	require.NoError(pc.t, err)
}

func (pc *pollConn) read(timeout time.Duration) (*http.Response, string, error) {
	_ = pc.conn.SetReadDeadline(time.Now().Add(timeout))
	defer pc.conn.SetReadDeadline(time.Time{})
	res, err := http.ReadResponse(pc.br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b), err
}

func (pc *pollConn) do(method, query, body string, header ...string) (*http.Response, string) {
	pc.t.Helper()
	pc.send(method, query, body, header...)
	res, b, err := pc.read(10 * time.Second)
	require.NoError(pc.t, err)
	return res, b
}

var sidOf = regexp.MustCompile(`"sid":"([^"]+)"`)

// openPolling opens a polling session on two connections, as a browser
// does (the first carries the GETs, the second the POSTs), connects its
// main namespace, and leaves a GET waiting at the worker.
func openPolling(t *testing.T, addr string, header ...string) (sid string, gets, posts *pollConn) {
	t.Helper()
	gets, posts = dialPoll(t, addr), dialPoll(t, addr)
	res, body := gets.do(http.MethodGet, "", "", header...)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	m := sidOf.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	sid = m[1]
	res, body = posts.do(http.MethodPost, "&sid="+sid, "40", header...)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	res, body = gets.do(http.MethodGet, "&sid="+sid, "", header...)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.True(t, strings.HasPrefix(body, "40{"), "CONNECT reply %q", body)
	gets.send(http.MethodGet, "&sid="+sid, "", header...)
	return sid, gets, posts
}

// goroutines reads the edge's goroutine count from its admin endpoint.
func goroutines(t *testing.T, admin string) int {
	t.Helper()
	res, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	defer res.Body.Close()
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	require.NoError(t, err)
	var n int
	_, err = fmt.Sscanf(line, "goroutine profile: total %d", &n)
	require.NoError(t, err, line)
	return n
}

func startParkStack(t *testing.T) (addr string, edge *testenv.Edge, worker *testenv.FlaskWorker) {
	t.Helper()
	worker = testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge = testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	edge_cors https://app.example.com {
		credentials
	}
	socketio_proxy %s
}
`, addr, worker.Addr)), addr)
	return addr, edge, worker
}

// An idle polling session holds no goroutine at the edge: its GET waits
// at the worker parked, and so does its POSTs' kept connection. Both
// then carry messages as before, the kept connections serving request
// after request, and when the clients leave nothing is left behind.
func TestIdlePollingSessionsHoldNoGoroutine(t *testing.T) {
	addr, edge, _ := startParkStack(t)
	origin := "Origin: https://app.example.com"
	// One session first, so that what every session shares (the
	// worker's keeper, the watcher) is counted in the baseline.
	openPolling(t, addr, origin)
	base := goroutines(t, edge.AdminAddr)

	const n = 40
	type session struct {
		sid         string
		gets, posts *pollConn
	}
	var sessions []session
	for range n {
		sid, gets, posts := openPolling(t, addr, origin)
		sessions = append(sessions, session{sid, gets, posts})
	}
	// Through net/http, each would hold three goroutines.
	assert.Less(t, goroutines(t, edge.AdminAddr)-base, n/4, "goroutines for %d idle polling sessions", n)

	for round := range 3 {
		for i, s := range sessions {
			payload := fmt.Sprintf("r%d-s%d", round, i)
			res, body := s.posts.do(http.MethodPost, "&sid="+s.sid, `421["echo","`+payload+`"]`, origin)
			require.Equal(t, http.StatusOK, res.StatusCode, body)
			res, body, err := s.gets.read(10 * time.Second)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode, body)
			assert.Contains(t, body, `431[{"data":"`+payload+`"`)
			// Exactly the edge's CORS headers, once.
			assert.Equal(t, []string{"https://app.example.com"}, res.Header.Values("Access-Control-Allow-Origin"))
			assert.Equal(t, []string{"true"}, res.Header.Values("Access-Control-Allow-Credentials"))
			s.gets.send(http.MethodGet, "&sid="+s.sid, "", origin)
		}
	}
	assert.Less(t, goroutines(t, edge.AdminAddr)-base, n/4, "goroutines after the echoes")

	for _, s := range sessions {
		s.gets.conn.Close()
		s.posts.conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for goroutines(t, edge.AdminAddr) > base+2 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines stayed at %d, %d before the sessions", goroutines(t, edge.AdminAddr), base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A reload ends the parked connections of the old config, as Caddy's
// shutdown ends its idle ones: the kept POST connection is closed, and
// the session goes on over new connections under the new config, its
// waiting GET answered first.
func TestAReloadClosesTheParkedConnectionsOfTheOldConfig(t *testing.T) {
	addr, edge, worker := startParkStack(t)
	sid, gets, posts := openPolling(t, addr)
	// The GET waits at the worker before the reload: sent on a kept
	// connection the reload closes, it could be read by neither config.
	atk11Waiting(t, edge, 1)
	edge.Reload(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	socketio_proxy %s {
		max_payload 2MB
	}
}
`, addr, worker.Addr)))
	_ = posts.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := posts.br.ReadByte()
	require.Error(t, err, "the parked POST connection is closed")
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "closed, not left open: %v", err)

	fresh := dialPoll(t, addr)
	res, body := fresh.do(http.MethodPost, "&sid="+sid, `421["echo","after"]`)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	res, body, err = gets.read(10 * time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Contains(t, body, `431[{"data":"after"`)
}
