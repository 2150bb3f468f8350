package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Chromium is Debian's browser, which the browser tests drive with
// playwright-core (never a browser Playwright downloads).
const Chromium = "/usr/bin/chromium"

// RequireBrowser requires what a browser test needs: Node with the
// official client, Python with the app, Chromium and playwright-core.
func RequireBrowser(t testing.TB) {
	t.Helper()
	RequireNode(t)
	RequirePython(t)
	_, err := os.Stat(Chromium)
	Require(t, Chromium, err == nil, "apt-get install chromium (scripts/deps.sh does)")
	_, err = os.Stat(filepath.Join(RepoRoot(t), "node_modules", "playwright-core", "package.json"))
	Require(t, "node_modules/playwright-core", err == nil, "run npm ci in the repository root")
}

// ServePage serves the HTML file page (a path from the repository root)
// at "/" and the official socket.io-client bundle from node_modules at
// "/socket.io.min.js" on a fresh port of 127.0.0.1 — another origin than
// the edge's — and returns the port. The server stops at cleanup.
func ServePage(t testing.TB, page string) int {
	t.Helper()
	VerifyNoLeaks(t)
	root := RepoRoot(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(root, page))
	})
	mux.HandleFunc("/socket.io.min.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(root, "node_modules", "socket.io-client", "dist", "socket.io.min.js"))
	})
	port := FreePort(t)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return port
}

// RunNodeScript runs the Node script (a path from the repository root)
// with cfg as its JSON argument and decodes the JSON it prints into out.
// The script and any browser it starts run in their own process group,
// killed whole when timeout passes or the test binary dies.
func RunNodeScript(t testing.TB, script string, cfg any, timeout time.Duration, out any) {
	t.Helper()
	VerifyNoLeaks(t)
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	root := RepoRoot(t)
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, script), string(arg))
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("%s printed %q: %v\n%s", script, stdout, err, stderr.String())
	}
}
