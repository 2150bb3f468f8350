package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CaddyBinary returns the edge's Caddy binary: $EDGE_CADDY when set (make
// test builds bin/caddy first and sets it), otherwise one built from
// ./cmd/xcaddy-build once per test process.
func CaddyBinary(t testing.TB) string {
	t.Helper()
	VerifyNoLeaks(t)
	if bin := os.Getenv("EDGE_CADDY"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("testenv: EDGE_CADDY=%s: %v", bin, err)
		}
		return bin
	}
	RepoRoot(t)
	bin, err := buildCaddy()
	if err != nil {
		t.Fatalf("testenv: building the edge: %v", err)
	}
	return bin
}

var buildCaddy = sync.OnceValues(func() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "flaskedge-caddy-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/xcaddy-build")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
})

// Edge is a running Caddy with the edge modules.
type Edge struct {
	// AdminAddr is the admin endpoint, host:port.
	AdminAddr string
	// DataDir is Caddy's storage: its internal CA's root certificate is
	// DataDir/pki/authorities/local/root.crt.
	DataDir string
	proc    *process
}

// RootCA is the PEM file of the edge's internal CA, for clients that
// verify the edge's certificate.
func (e *Edge) RootCA() string {
	return filepath.Join(e.DataDir, "pki", "authorities", "local", "root.crt")
}

// EdgeConfig is a Caddyfile for StartEdge. It is a template: {{admin}} is
// replaced by the global options block that puts the admin endpoint on a
// fresh port, so several edges can run side by side.
type EdgeConfig string

// StartEdge runs Caddy with the Caddyfile and waits until its admin
// endpoint answers and every address in listen accepts connections.
// Caddy is killed at cleanup, and its log is shown if the test failed.
func StartEdge(t testing.TB, caddyfile EdgeConfig, listen ...string) *Edge {
	t.Helper()
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	text := strings.ReplaceAll(string(caddyfile), "{{admin}}",
		"{\n\tadmin "+admin+"\n\tpersist_config off\n}\n")
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return startEdge(t, dir, path, admin, nil, listen)
}

// StartEdgeFile runs Caddy with the Caddyfile at path, e.g.
// examples/Caddyfile, and env added to its environment. The Caddyfile must
// put its admin endpoint at {$EDGE_ADMIN}, which StartEdgeFile sets to a
// fresh port.
func StartEdgeFile(t testing.TB, path string, env map[string]string, listen ...string) *Edge {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	return startEdge(t, t.TempDir(), path, admin, env, listen)
}

func startEdge(t testing.TB, dir, path, admin string, env map[string]string, listen []string) *Edge {
	t.Helper()
	VerifyNoLeaks(t)
	cmd := exec.Command(CaddyBinary(t), "run", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(),
		// Keep Caddy's storage (internal CA, autosave) inside the test.
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HOME="+dir,
		"EDGE_ADMIN="+admin,
	)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	e := &Edge{AdminAddr: admin, DataDir: filepath.Join(dir, "data", "caddy"), proc: start(t, "caddy", cmd)}
	client := &http.Client{Timeout: time.Second}
	e.proc.waitReady(t, 30*time.Second, func() error {
		res, err := client.Get("http://" + admin + "/config/")
		if err != nil {
			return err
		}
		res.Body.Close()
		for _, addr := range listen {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
	return e
}

// Output is what Caddy has logged so far.
func (e *Edge) Output() string { return e.proc.out.String() }

// Kill stops Caddy at once.
func (e *Edge) Kill() { e.proc.kill() }

// Reload replaces the edge's config with caddyfile (a template like
// StartEdge's), as `caddy reload` does, through the admin endpoint.
func (e *Edge) Reload(t testing.TB, caddyfile EdgeConfig) {
	t.Helper()
	text := strings.ReplaceAll(string(caddyfile), "{{admin}}",
		"{\n\tadmin "+e.AdminAddr+"\n\tpersist_config off\n}\n")
	req, err := http.NewRequest(http.MethodPost, "http://"+e.AdminAddr+"/load", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("testenv: reloading the edge: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("testenv: reloading the edge: %s %s", res.Status, body)
	}
}

// Stop asks Caddy to exit as an operator would (SIGTERM) and waits until
// it has; it returns how long that took.
func (e *Edge) Stop(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	if err := e.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("testenv: stopping caddy: %v", err)
	}
	select {
	case <-e.proc.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("testenv: caddy did not exit within 60s of SIGTERM\n%s", e.Output())
	}
	return time.Since(start)
}
