package socketioproxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// scrape reads the edge's Prometheus metrics and returns the value of
// every caddy_socketio_ series, keyed by its name and labels as printed.
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "caddy_socketio_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

func sum(m map[string]float64, pattern string) float64 {
	re := regexp.MustCompile(pattern)
	total := 0.0
	for k, v := range m {
		if re.MatchString(k) {
			total += v
		}
	}
	return total
}

// The metrics and the admin API follow the traffic: handshakes, messages
// and bytes each way, refusals by reason, and live sessions per worker.
func TestMetricsAndAdminAPIFollowTheTraffic(t *testing.T) {
	testenv.RequireNode(t)
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"A", "B"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: name}))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%s {
	bind 127.0.0.1
	edge_cors https://app.example.com {
		credentials
	}
	socketio_proxy {
		to %s %s
	}
}
`, addr, workers[0].Addr, workers[1].Addr)), addr)
	base := "http://" + addr

	before := scrape(t, edge.AdminAddr)
	for _, transports := range [][]string{{"polling"}, {"websocket"}} {
		res := testenv.RunProbe(t, testenv.ProbeOptions{URL: base, Transports: transports, Sessions: 10, Echoes: 5, TimeoutMs: 30000})
		require.Empty(t, res.Failures)
	}
	res, err := http.Get(base + "/socket.io/?EIO=4&transport=polling&sid=" + strings.Repeat("A", 40))
	require.NoError(t, err)
	res.Body.Close()
	// A handshake from a page edge_cors does not allow.
	req, err := http.NewRequest(http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://evil.example")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)

	after := scrape(t, edge.AdminAddr)
	delta := func(pattern string) float64 { return sum(after, pattern) - sum(before, pattern) }
	assert.Equal(t, 10.0, delta(`^caddy_socketio_handshakes_total\{.*transport="polling"`))
	assert.Equal(t, 10.0, delta(`^caddy_socketio_handshakes_total\{.*transport="websocket"`))
	assert.Equal(t, 1.0, delta(`^caddy_socketio_refusals_total\{reason="sid"\}`))
	assert.Equal(t, 1.0, delta(`^caddy_socketio_refusals_total\{reason="origin"\}`))
	for _, dir := range []string{"client_to_upstream", "upstream_to_client"} {
		for _, tr := range []string{"polling", "websocket"} {
			// At least the 50 echoes and their acks crossed each way.
			assert.GreaterOrEqual(t, delta(`^caddy_socketio_messages_total\{direction="`+dir+`",transport="`+tr+`"\}`), 50.0, dir+" "+tr)
			assert.Greater(t, delta(`^caddy_socketio_bytes_total\{direction="`+dir+`",transport="`+tr+`"\}`), 500.0, dir+" "+tr)
		}
	}
	assert.Equal(t, 2.0, sum(after, `^caddy_socketio_upstream_healthy\{`))

	// Six more sessions left open over raw polling show up live, spread
	// over both workers. (The probe's polling sessions may still count:
	// a polling client that leaves without its close packet is only
	// forgotten after pingInterval + pingTimeout.)
	type upstreamStatus struct {
		Address   string `json:"address"`
		Healthy   bool   `json:"healthy"`
		Sessions  int    `json:"sessions"`
		Polling   int    `json:"polling"`
		WebSocket int    `json:"websocket"`
	}
	upstreams := func() []upstreamStatus {
		res, err := http.Get("http://" + edge.AdminAddr + "/socketio/upstreams")
		require.NoError(t, err)
		defer res.Body.Close()
		var ups []upstreamStatus
		require.NoError(t, json.NewDecoder(res.Body).Decode(&ups))
		require.Len(t, ups, 2)
		return ups
	}
	baseline := upstreams()
	livePolling := sum(scrape(t, edge.AdminAddr), `^caddy_socketio_sessions\{.*transport="polling"`)
	for range 6 {
		res, err := http.Get(base + "/socket.io/?EIO=4&transport=polling")
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
	}
	ups := upstreams()
	added := 0
	for i, u := range ups {
		assert.True(t, u.Healthy, u.Address)
		assert.Equal(t, u.Sessions, u.Polling+u.WebSocket, u.Address)
		added += u.Polling - baseline[i].Polling
	}
	assert.Equal(t, 6, added)
	assert.InDelta(t, ups[0].Sessions, ups[1].Sessions, 1, "least_sessions keeps the workers level: %+v", ups)
	assert.Equal(t, livePolling+6, sum(scrape(t, edge.AdminAddr), `^caddy_socketio_sessions\{.*transport="polling"`))

	// Live sessions by namespace follow the worker's CONNECT replies and
	// the DISCONNECTs, on WebSocket and on polling.
	nsCount := func(ns string) int {
		res, err := http.Get("http://" + edge.AdminAddr + "/socketio/namespaces")
		require.NoError(t, err)
		defer res.Body.Close()
		var list []struct {
			Namespace string `json:"namespace"`
			Sessions  int    `json:"sessions"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&list))
		for _, st := range list {
			if st.Namespace == ns {
				return st.Sessions
			}
		}
		return 0
	}
	nsBefore := nsCount("/")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err)
	defer ws.Close()
	_, _, err = ws.ReadMessage() // open
	require.NoError(t, err)
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("40")))
	_, reply, err := ws.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(reply), "40{"), string(reply))
	assert.Equal(t, nsBefore+1, nsCount("/"))
	assert.Equal(t, float64(nsBefore+1), sum(scrape(t, edge.AdminAddr), `^caddy_socketio_namespace_sessions\{namespace="/"\}`))
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("41")))
	require.Eventually(t, func() bool { return nsCount("/") == nsBefore }, 5*time.Second, 20*time.Millisecond)

	res, err = http.Get(base + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	sid := strings.Split(strings.Split(string(open), `"sid":"`)[1], `"`)[0]
	res, err = http.Post(base+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain", strings.NewReader("40"))
	require.NoError(t, err)
	res.Body.Close()
	res, err = http.Get(base + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, nsBefore+1, nsCount("/"), "a polling session's CONNECT reply counts too")
}
