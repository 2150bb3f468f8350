package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
