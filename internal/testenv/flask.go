package testenv

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FlaskOptions configures StartFlaskWorker.
type FlaskOptions struct {
	// Name is the worker's WORKER_NAME, reported in acks and /healthz.
	// Default: its address, 127.0.0.1:PORT.
	Name string
	// SecretKey is FLASK_SECRET_KEY. Default: a random key, readable in
	// FlaskWorker.SecretKey. Workers behind one edge need the same key.
	SecretKey string
	// RedisURL is REDIS_URL, e.g. "redis://" + StartRedis(t). Default: no
	// message queue, so rooms do not span workers.
	RedisURL string
	// Env holds further environment variables, e.g. CORS_ALLOWED_ORIGINS.
	Env map[string]string
	// TLS, when set, makes the worker serve HTTPS and WSS only with this
	// certificate (TLS_CERT and TLS_KEY); readiness is checked trusting
	// its CA.
	TLS *TLSFiles
	// Port is the worker's port, to start a worker again where one was
	// stopped. Default: a free port.
	Port int
}

// FlaskWorker is a running examples/flask_app worker.
type FlaskWorker struct {
	Addr      string // "127.0.0.1:PORT"
	Name      string // WORKER_NAME
	SecretKey string // FLASK_SECRET_KEY
	tls       *tls.Config
	proc      *process
	drainFile string // DRAIN_FILE: while it exists, /healthz answers 410
}

// StartFlaskWorker starts examples/flask_app/app.py on a fresh loopback
// port and returns once it completes an Engine.IO handshake and answers
// /healthz. The worker is killed at cleanup; its log (one line per
// Socket.IO connect and disconnect) is logged if the test fails.
func StartFlaskWorker(t testing.TB, opts FlaskOptions) *FlaskWorker {
	t.Helper()
	RequirePython(t)
	port := opts.Port
	if port == 0 {
		port = FreePort(t)
	}
	w := &FlaskWorker{
		Addr:      "127.0.0.1:" + strconv.Itoa(port),
		Name:      opts.Name,
		SecretKey: opts.SecretKey,
	}
	if w.Name == "" {
		w.Name = w.Addr
	}
	if w.SecretKey == "" {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		w.SecretKey = hex.EncodeToString(key)
	}

	redisURL, redisClient := opts.RedisURL, ""
	if redisURL != "" {
		// Named, so that ready can find the worker's subscription in Redis.
		u, err := url.Parse(redisURL)
		if err != nil {
			t.Fatalf("testenv: RedisURL %q: %v", redisURL, err)
		}
		redisClient = "testenv-worker-" + strconv.Itoa(port)
		q := u.Query()
		q.Set("client_name", redisClient)
		u.RawQuery = q.Encode()
		redisURL = u.String()
	}

	root := RepoRoot(t)
	cmd := exec.Command(Python, filepath.Join(root, "examples", "flask_app", "app.py"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"PYTHONUNBUFFERED=1",
		"FLASK_SECRET_KEY="+w.SecretKey,
		"FLASK_HOST=127.0.0.1",
		"FLASK_PORT="+strconv.Itoa(port),
		"WORKER_NAME="+w.Name,
		"REDIS_URL="+redisURL,
	)
	w.drainFile = filepath.Join(t.TempDir(), "draining")
	cmd.Env = append(cmd.Env, "DRAIN_FILE="+w.drainFile)
	for k, v := range opts.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if opts.TLS != nil {
		w.tls = opts.TLS.ClientConfig(t)
		cmd.Env = append(cmd.Env, "TLS_CERT="+opts.TLS.CertFile, "TLS_KEY="+opts.TLS.KeyFile)
		if opts.TLS.ClientCAFile != "" {
			cmd.Env = append(cmd.Env, "TLS_CLIENT_CA="+opts.TLS.ClientCAFile)
		}
	}
	w.proc = start(t, "flask worker "+w.Name, cmd)
	// Generous: importing eventlet and Flask-SocketIO takes over ten
	// seconds on a loaded two-core machine, and polling returns early.
	w.proc.waitReady(t, 60*time.Second, w.ready)
	if redisClient != "" {
		// python-socketio subscribes to the message queue in a background
		// task started by the first Engine.IO connection (the handshake in
		// ready); a broadcast published before that is lost to this worker.
		redisAddr := strings.TrimPrefix(strings.SplitN(redisURL, "?", 2)[0], "redis://")
		redisAddr = strings.SplitN(redisAddr, "/", 2)[0]
		w.proc.waitReady(t, 30*time.Second, func() error { return subscribed(redisAddr, redisClient) })
	}
	return w
}

// SetDraining makes the worker's /healthz answer 410 (draining for a
// deploy), or 200 again.
func (w *FlaskWorker) SetDraining(on bool) error {
	if on {
		return os.WriteFile(w.drainFile, nil, 0o600)
	}
	return os.Remove(w.drainFile)
}

// URL returns the worker's base URL, "http://127.0.0.1:PORT" (https
// for a worker serving TLS).
func (w *FlaskWorker) URL() string {
	if w.tls != nil {
		return "https://" + w.Addr
	}
	return "http://" + w.Addr
}

// Kill kills the worker with SIGKILL and waits until it has exited, as a
// crash would; the tests of failover use it. It is safe to call more than
// once, and the cleanup calls it too.
func (w *FlaskWorker) Kill() { w.proc.kill() }

// Output returns what the worker has logged so far, e.g. to check that a
// connection the edge refused never reached it.
func (w *FlaskWorker) Output() string { return w.proc.out.String() }

// ready opens an Engine.IO session, closes it again so it does not linger
// until its ping timeout, and checks /healthz.
func (w *FlaskWorker) ready() error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: w.tls}}
	handshake := w.URL() + "/socket.io/?EIO=4&transport=polling"
	body, err := get(client, handshake)
	if err != nil {
		return err
	}
	var open struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil || open.SID == "" {
		return fmt.Errorf("GET %s: want an open packet 0{\"sid\":...}, got %q", handshake, body)
	}
	resp, err := client.Post(handshake+"&sid="+open.SID, "text/plain;charset=UTF-8", strings.NewReader("1"))
	if err != nil {
		return err
	}
	resp.Body.Close()

	body, err = get(client, w.URL()+"/healthz")
	if err != nil {
		return err
	}
	if want := "ok " + w.Name; strings.TrimSpace(body) != want {
		return fmt.Errorf("GET /healthz: want %q, got %q (another worker on this port?)", want, body)
	}
	return nil
}

func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
	}
	return string(body), nil
}

// Login posts {"username", "role"} to baseURL + "/login" (a worker or the
// edge in front of workers) and returns the session cookie as a Cookie
// header value, "session=...". role is "user" or "admin".
func Login(t testing.TB, baseURL, username, role string) (cookieHeader string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username, "role": role})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post(strings.TrimRight(baseURL, "/")+"/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("testenv: login as %s (%s): %v", username, role, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("testenv: login as %s (%s): %s %s", username, role, resp.Status, reply)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("testenv: login as %s (%s): no session cookie in the reply (Set-Cookie: %q)",
		username, role, resp.Header.Values("Set-Cookie"))
	return ""
}
