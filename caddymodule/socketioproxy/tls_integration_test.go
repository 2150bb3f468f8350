package socketioproxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// tapRelay is a TCP relay between the edge and a worker that keeps every
// byte the edge sent and every byte the worker answered, per connection:
// what anyone on the network between them would see.
type tapRelay struct {
	addr   string
	mu     sync.Mutex
	toward [][]byte // per connection, edge to worker
	back   [][]byte // per connection, worker to edge
}

func startTapRelay(t *testing.T, target string) *tapRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &tapRelay{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			conns.Store(in, nil)
			conns.Store(out, nil)
			r.mu.Lock()
			i := len(r.toward)
			r.toward, r.back = append(r.toward, nil), append(r.back, nil)
			r.mu.Unlock()
			copyTap := func(dst, src net.Conn, rec *[][]byte) {
				defer wg.Done()
				defer dst.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						r.mu.Lock()
						(*rec)[i] = append((*rec)[i], buf[:n]...)
						r.mu.Unlock()
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
			wg.Add(2)
			go copyTap(out, in, &r.toward)
			go copyTap(in, out, &r.back)
		}
	}()
	return r
}

// recorded returns a copy of what went each way, per connection.
func (r *tapRelay) recorded() (toward, back [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.toward {
		toward = append(toward, bytes.Clone(r.toward[i]))
		back = append(back, bytes.Clone(r.back[i]))
	}
	return toward, back
}

// Real Flask-SocketIO workers serving TLS with a certificate from a CA
// the test makes, behind flask_socketio with verification on and the
// trust written once, in its transport block: polling,
// WebSocket and the upgrade work with an /admin namespace whose role
// comes from whoami over https; the reverse_proxy beside it logs in over
// the same trust; health checks keep the worker healthy over TLS. Every
// byte between edge and worker goes through a relay that records it:
// each connection starts with a TLS handshake and no cookie, sid, path or
// message appears. A worker whose certificate comes from another CA is
// refused (502 on a handshake), its health checks fail, and the log
// names the certificate error.
func TestWorkersOverTLSAreVerifiedAndNothingCrossesInClear(t *testing.T) {
	testenv.RequireNode(t)
	const secret = "tls-integration-secret"
	ca := testenv.NewTestCA(t, "flaskedge test workers CA")
	other := testenv.NewTestCA(t, "some other CA")
	good := ca.Issue(t, "worker1")
	db := map[string]string{"ROLE_OVERRIDES": "alice:admin"}
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", SecretKey: secret, Env: db, TLS: &good})
	foreignCert := other.Issue(t, "foreign")
	foreign := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "foreign", SecretKey: secret, TLS: &foreignCert})
	tap := startTapRelay(t, worker.Addr)

	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	wrongAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	log {
		level INFO
	}
	flask_socketio https://%[4]s {
		origins http://%[1]s
		secret_key %[3]s
		whoami https://%[4]s/api/whoami
		namespace /admin role admin
		health_uri /healthz
		health_interval 200ms
		transport http {
			tls_trust_pool file %[5]s
		}
	}
}
http://%[2]s {
	bind 127.0.0.1
	log {
		level INFO
	}
	socketio_proxy {
		to %[6]s
		transport http {
			tls_trust_pool file %[5]s
		}
		health_uri /healthz
		health_interval 200ms
	}
}
`, addr, wrongAddr, secret, tap.addr, ca.CertFile, foreign.Addr)), addr, wrongAddr)
	edgeURL := "http://" + addr

	alice := testenv.Login(t, edgeURL, "alice", "user") // the database says admin
	var sids []string
	for _, tc := range []struct {
		name       string
		transports []string
	}{
		{"polling", []string{"polling"}},
		{"websocket", []string{"websocket"}},
		{"upgrade", nil},
	} {
		res := testenv.RunProbe(t, testenv.ProbeOptions{URL: edgeURL, Transports: tc.transports,
			Sessions: 2, Echoes: 5, PayloadSize: 64, UpgradeWait: tc.transports == nil, TimeoutMs: 30000,
			ExtraHeaders: map[string]string{"Cookie": alice}})
		require.Empty(t, res.Failures, tc.name)
		assert.Equal(t, 2, res.Completed, tc.name)
		assert.Equal(t, map[string]int{"w1": 2}, res.Workers, tc.name)
		if tc.transports == nil {
			assert.Equal(t, map[string]int{"websocket": 2}, res.Transports, "upgraded")
		}

		res = testenv.RunProbe(t, testenv.ProbeOptions{URL: edgeURL, Namespace: "/admin", Transports: tc.transports,
			TimeoutMs: 30000, ExtraHeaders: map[string]string{"Cookie": alice}})
		require.Empty(t, res.Failures, tc.name)
		require.Empty(t, res.ConnectErrors, "%s: whoami over https says alice is admin", tc.name)
		assert.Equal(t, 1, res.Completed, tc.name)
	}

	// A handshake by hand, to know a sid to look for on the wire.
	res, err := http.Get(edgeURL + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	open, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", open)
	var o struct{ SID string }
	require.NoError(t, json.Unmarshal(open[1:], &o))
	sids = append(sids, o.SID)

	// Health checks over TLS: several have passed (200 ms apart) and
	// the worker is healthy.
	time.Sleep(time.Second) // five check intervals
	res, err = http.Get("http://" + edge.AdminAddr + "/socketio/upstreams")
	require.NoError(t, err)
	var ups []struct {
		Address string `json:"address"`
		Healthy bool   `json:"healthy"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&ups))
	res.Body.Close()
	healthy := map[string]bool{}
	for _, u := range ups {
		healthy[u.Address] = u.Healthy
	}
	assert.True(t, healthy[tap.addr], "the TLS worker after its health checks: %v", ups)
	assert.False(t, healthy[foreign.Addr], "the worker with another CA's certificate: %v", ups)

	// The wrong-CA worker: refused, and said why.
	res, err = http.Get("http://" + wrongAddr + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Contains(t, []int{http.StatusBadGateway, http.StatusServiceUnavailable}, res.StatusCode, "%s", body)
	assert.NotContains(t, foreign.Output(), "connect namespace=", "a session reached the wrong-CA worker")
	// The log line may reach the pipe after the answer reaches us.
	assert.Eventually(t, func() bool {
		logs := edge.Output()
		return strings.Contains(logs, "certificate signed by unknown authority") && strings.Contains(logs, foreign.Addr)
	}, 5*time.Second, 20*time.Millisecond, "no log line names the wrong-CA worker's certificate error")
	logs := edge.Output()

	// On the wire: TLS records only.
	toward, back := tap.recorded()
	require.GreaterOrEqual(t, len(toward), 4, "polling, WebSocket, whoami, login and health checks each opened connections")
	cookieValue := strings.TrimPrefix(alice, "session=")
	markers := append([]string{"Cookie", "cookie", "socket.io", "EIO=", "healthz", "whoami", "HTTP/1.1", "probe", "/admin", cookieValue}, sids...)
	for i := range toward {
		require.GreaterOrEqual(t, len(toward[i]), 3, "connection %d sent nothing", i)
		assert.Equal(t, []byte{0x16, 0x03}, toward[i][:2], "connection %d does not start with a TLS handshake record", i)
		for _, m := range markers {
			assert.False(t, bytes.Contains(toward[i], []byte(m)), "edge to worker, connection %d: %q in clear", i, m)
			assert.False(t, bytes.Contains(back[i], []byte(m)), "worker to edge, connection %d: %q in clear", i, m)
		}
	}
	assert.NotContains(t, logs, cookieValue, "a cookie in the edge's log")
	assert.NotContains(t, logs, secret)
}

// A worker that asks for a client certificate (mTLS) gets the edge's
// tls_client_auth certificate, on polling and WebSocket; an edge without
// one is refused by the worker, and its log says so.
func TestWorkerAskingForAClientCertificateGetsTheEdges(t *testing.T) {
	testenv.RequireNode(t)
	ca := testenv.NewTestCA(t, "flaskedge test workers CA")
	edgeCert := ca.IssueClient(t, "edge")
	files := ca.Issue(t, "worker1")
	files.ClientCAFile, files.Client = ca.CertFile, &edgeCert
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1", TLS: &files})

	withCert := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	without := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy https://%[3]s {
		transport http {
			tls_trust_pool file %[4]s
			tls_client_auth %[5]s %[6]s
		}
	}
}
http://%[2]s {
	bind 127.0.0.1
	socketio_proxy https://%[3]s {
		transport http {
			tls_trust_pool file %[4]s
		}
	}
}
`, withCert, without, worker.Addr, ca.CertFile, edgeCert.CertFile, edgeCert.KeyFile)), withCert, without)

	for _, transports := range [][]string{{"polling"}, {"websocket"}} {
		res := testenv.RunProbe(t, testenv.ProbeOptions{URL: "http://" + withCert, Transports: transports,
			Sessions: 1, Echoes: 3, TimeoutMs: 30000})
		require.Empty(t, res.Failures, transports[0])
		assert.Equal(t, 1, res.Completed, transports[0])
	}

	res, err := http.Get("http://" + without + "/socket.io/?EIO=4&transport=polling")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusBadGateway, res.StatusCode, "%s", body)
	// The log line may reach the pipe after the answer reaches us.
	assert.Eventually(t, func() bool { return strings.Contains(edge.Output(), "remote error: tls: certificate required") },
		5*time.Second, 20*time.Millisecond, "no log line says the worker wanted a certificate")
}
