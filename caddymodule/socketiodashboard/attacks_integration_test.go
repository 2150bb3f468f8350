package socketiodashboard_test

// Attacks on the dashboard's only protection: the route and flask_session
// `require role admin` in front of it, as its docs say to write it. The
// handler decides by r.URL.Path exactly; Caddy's path matcher lowercases,
// cleans and merges slashes. A request-target on which they disagree, so
// that the handler serves what the route did not guard, would expose
// client addresses, origins and user ids to anyone.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// rawGet sends target as written on the request line and returns the
// status and up to 64 KiB of the body (an event stream is cut there).
func rawGet(t *testing.T, addr, method, target string, header map[string]string) (int, string) {
	status, body, _ := rawRequest(t, addr, method, target, header)
	return status, body
}

// rawRequest is rawGet with the response's headers.
func rawRequest(t *testing.T, addr, method, target string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n"
	for k, v := range header {
		req += k + ": " + v + "\r\n"
	}
	_, err = conn.Write([]byte(req + "\r\n"))
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	require.NoError(t, err, target)
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, string(body), res.Header
}

// Path tricks on the dashboard, its data and its event stream, for an
// anonymous visitor and a logged-in user without the admin role: each
// ends at flask_session's refusal or outside the dashboard. Held.
func TestAttackDashboardPathTricksReachNothingWithoutAdmin(t *testing.T) {
	const key = "dashboard-attack-secret-key-0123456789"
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: key})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key %[2]s
	}
	route /_edge/dashboard/* {
		flask_session {
			secret_key %[2]s
			require role admin
		}
		socketio_dashboard
	}
	socketio_proxy {
		to %[3]s
		namespace /admin role admin
	}
	reverse_proxy %[3]s
}
`, addr, key, worker.Addr)), addr)
	admin := testenv.Login(t, worker.URL(), "ada", "admin")
	user := testenv.Login(t, worker.URL(), "bob", "user")

	status, body := rawGet(t, addr, "GET", "/_edge/dashboard/data.json", map[string]string{"Cookie": admin})
	require.Equal(t, 200, status, body)
	require.Contains(t, body, `"serving"`, "the admin sees the data: the probe works")
	status, _, hdr := rawRequest(t, addr, "HEAD", "/_edge/dashboard/events", map[string]string{"Cookie": admin})
	require.Equal(t, 200, status)
	require.Contains(t, hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'", "the probe knows the dashboard's answers")

	targets := []string{
		"/_edge/dashboard/", "/_edge/dashboard/data.json", "/_edge/dashboard/events",
		"/_edge/dashboard", "/_edge/dashboard?x=/", "//_edge/dashboard/data.json", "/_edge//dashboard/data.json",
		"/_edge/dashboard//data.json", "/_EDGE/dashboard/data.json", "/_edge/DASHBOARD/events",
		"/_edge%2Fdashboard/data.json", "/_edge/dashboard%2Fdata.json", "/%5Fedge/dashboard/data.json",
		"/_edge/dashboard/./data.json", "/_edge/x/../dashboard/data.json", "/_edge/dashboard/../dashboard/events",
		"/x/../_edge/dashboard/data.json", "/_edge/dashboard/%2e/data.json", "/_edge/dashboard/data.json;x",
		"/_edge/dashboard/data.json%00", "/_edge/dashboard/events/", "/_edge/dashboard/%64ata.json",
		"http://" + addr + "/_edge/dashboard/data.json", "http://evil.example/_edge/dashboard/data.json",
	}
	for _, who := range []struct{ name, cookie string }{{"anonymous", ""}, {"user", user}} {
		for _, method := range []string{"GET", "HEAD"} {
			for _, target := range targets {
				h := map[string]string{}
				if who.cookie != "" {
					h["Cookie"] = who.cookie
				}
				status, body, hdr := rawRequest(t, addr, method, target, h)
				// The dashboard's own answers carry its CSP.
				leak := strings.Contains(body, `"serving"`) || strings.Contains(body, "data: {") ||
					strings.Contains(body, "dashboard.js") || status == 200 && strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'")
				assert.False(t, leak, "%s %s %s: %d %.200q", who.name, method, target, status, body)
			}
		}
	}
}
