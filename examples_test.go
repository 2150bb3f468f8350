package flaskedge_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// bin/caddy validates the example Caddyfile once the app's secret is set,
// and says which variable is missing when it is not.
func TestExampleCaddyfileValidates(t *testing.T) {
	bin := testenv.CaddyBinary(t)
	validate := func(env ...string) (string, error) {
		cmd := exec.Command(bin, "validate", "--config", "examples/Caddyfile", "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := validate("FLASK_SECRET_KEY=an-example-secret")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Valid configuration")

	out, err = validate("FLASK_SECRET_KEY=")
	require.Error(t, err)
	assert.Contains(t, out, "{env.FLASK_SECRET_KEY} is empty")
}

// The stack `make demo` runs — two workers sharing Redis behind the edge
// with examples/Caddyfile — serves the demo page over HTTPS, and a user
// and an admin connect over https and wss with certificate verification
// on.
func TestDemoStackConnectsOverHTTPSAndWSS(t *testing.T) {
	testenv.RequireNode(t)
	redis := testenv.StartRedis(t)
	const secret = "demo-test-secret"
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"worker-a", "worker-b"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{
			Name: name, SecretKey: secret, RedisURL: "redis://" + redis,
		}))
	}
	httpsPort, httpPort := testenv.FreePort(t), testenv.FreePort(t)
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", httpsPort)
	edge := testenv.StartEdgeFile(t, "examples/Caddyfile", map[string]string{
		"EDGE_HTTP_PORT":   fmt.Sprint(httpPort),
		"EDGE_HTTPS_PORT":  fmt.Sprint(httpsPort),
		"WORKER1":          workers[0].Addr,
		"WORKER2":          workers[1].Addr,
		"FLASK_SECRET_KEY": secret,
	}, edgeAddr)
	base := fmt.Sprintf("https://localhost:%d", httpsPort)
	client := trustingClient(t, edge)

	// The internal CA issues the certificate just after start.
	var page string
	require.Eventually(t, func() bool {
		res, err := client.Get(base + "/")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		page = string(body)
		return res.StatusCode == 200
	}, 20*time.Second, 50*time.Millisecond, "the demo page never answered over https")
	assert.Contains(t, page, "/vendor/socket.io/socket.io.min.js")

	res, err := client.Get(base + "/vendor/socket.io/socket.io.min.js")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 200, res.StatusCode, "the official client is served from node_modules")

	// Caddy's HTTP->HTTPS redirect keeps Engine.IO polling working: a
	// 308 keeps the method, the body and the query.
	plain := fmt.Sprintf("http://localhost:%d/socket.io/?EIO=4&transport=polling", httpPort)
	res, err = client.Get(plain)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode, "the redirected handshake: %s", body)
	assert.Equal(t, base+"/socket.io/?EIO=4&transport=polling", res.Request.URL.String())
	sid := strings.Split(strings.Split(string(body), `"sid":"`)[1], `"`)[0]
	res, err = client.Post(plain+"&sid="+sid, "text/plain;charset=UTF-8", strings.NewReader("40"))
	require.NoError(t, err)
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, 200, res.StatusCode, "the redirected POST: %s", body)
	assert.Equal(t, "POST", res.Request.Method)
	noFollow := *client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err = noFollow.Get(plain)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusPermanentRedirect, res.StatusCode)

	// A handshake whose headers trickle in is cut off by the
	// read_header timeout of examples/Caddyfile.
	conn, err := tls.Dial("tcp", edgeAddr, &tls.Config{ServerName: "localhost", RootCAs: client.Transport.(*http.Transport).TLSClientConfig.RootCAs})
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = conn.Write([]byte("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\n"))
	require.NoError(t, err)
	go func() {
		for range 30 {
			if _, err := conn.Write([]byte("X: y\r\n")); err != nil {
				return
			}
			time.Sleep(time.Second) // the trickle itself
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.ReadAll(conn)
	t.Logf("trickled handshake cut off after %v (%v)", time.Since(start).Round(time.Millisecond), err)
	assert.Less(t, time.Since(start), 15*time.Second)

	admin := login(t, client, base, "ada", "admin")
	for _, tc := range []struct {
		namespace string
		cookie    string
		echoes    int // the app's /admin namespace has no echo event
	}{{"/", "", 3}, {"/admin", admin, 0}} {
		headers := map[string]string{"Origin": base}
		if tc.cookie != "" {
			headers["Cookie"] = tc.cookie
		}
		probe := testenv.RunProbe(t, testenv.ProbeOptions{
			URL:          base,
			Namespace:    tc.namespace,
			Sessions:     4,
			Echoes:       tc.echoes,
			UpgradeWait:  true,
			ExtraHeaders: headers,
			CA:           edge.RootCA(),
			TimeoutMs:    30000,
		})
		require.Empty(t, probe.Failures, tc.namespace)
		assert.Equal(t, 4, probe.Completed, tc.namespace)
		assert.Equal(t, map[string]int{"websocket": 4}, probe.Transports, "%s: upgraded to wss", tc.namespace)
	}
}

func trustingClient(t *testing.T, edge *testenv.Edge) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	var pem []byte
	require.Eventually(t, func() bool {
		var err error
		pem, err = os.ReadFile(edge.RootCA())
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "no root certificate at %s", edge.RootCA())
	require.True(t, pool.AppendCertsFromPEM(pem))
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

func login(t *testing.T, client *http.Client, base, user, role string) string {
	t.Helper()
	res, err := client.Post(base+"/login", "application/json",
		bytes.NewReader([]byte(fmt.Sprintf(`{"username":%q,"role":%q}`, user, role))))
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	for _, c := range res.Cookies() {
		if c.Name == "session" {
			return "session=" + c.Value
		}
	}
	t.Fatalf("no session cookie in %q", res.Header.Values("Set-Cookie"))
	return ""
}
