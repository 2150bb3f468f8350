package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flaskedge/flaskedge/internal/freeport"
)

// Python is the interpreter with Debian's Flask-SocketIO and eventlet. The
// python3 on PATH may be a pyenv one without them.
const Python = "/usr/bin/python3"

// RepoRoot returns the repository root: the nearest directory above the
// working directory whose go.mod declares this module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

var repoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(mod), "module github.com/flaskedge/flaskedge\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/flaskedge/flaskedge above the working directory")
		}
		dir = parent
	}
})

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
//
// Every process the harness starts gets a fresh port and is killed at
// cleanup, and that matters more than usual here: eventlet listens with
// SO_REUSEPORT, so a stale worker left on a port keeps accepting a share
// of its connections, which shows up as random "Invalid session" errors.
//
// A port is never handed out twice in one test binary: a worker takes
// seconds to import eventlet and bind, and a parallel test asking for a
// port meanwhile could be given the same one.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.Get()
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	return port
}

// Require stops the test when a component it needs is missing: t.Skipf
// normally, t.Fatalf when the environment variable CI is "true", so CI
// cannot pass by skipping. hint says how to install the component.
func Require(t testing.TB, what string, ok bool, hint string) {
	t.Helper()
	VerifyNoLeaks(t)
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true makes this a failure): %s", what, hint)
	}
	t.Skipf("%s is missing, skipping (set CI=true to fail instead): %s", what, hint)
}

// RequireReloadHandover requires net.ipv4.tcp_migrate_req=1, with which
// the kernel hands the connections queued on the old config's
// SO_REUSEPORT listener to the new config's at a reload, instead of
// resetting them: a test that counts what a reload loses needs it.
func RequireReloadHandover(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	Require(t, "net.ipv4.tcp_migrate_req=1", err == nil && strings.TrimSpace(string(b)) == "1",
		"sysctl -w net.ipv4.tcp_migrate_req=1 (scripts/deps.sh does)")
}

var pythonOK = sync.OnceValue(func() bool {
	return exec.Command(Python, "-c", "import flask_socketio, eventlet").Run() == nil
})

// RequirePython requires /usr/bin/python3 with Flask-SocketIO and eventlet.
func RequirePython(t testing.TB) {
	t.Helper()
	Require(t, Python+" with flask_socketio and eventlet", pythonOK(),
		"apt-get install python3-flask-socketio python3-eventlet python3-redis")
}

// RequireNode requires node and the repository's node_modules with
// socket.io-client.
func RequireNode(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath("node")
	Require(t, "node", err == nil, "install Node.js 20 or newer")
	_, err = os.Stat(filepath.Join(RepoRoot(t), "node_modules", "socket.io-client", "package.json"))
	Require(t, "node_modules/socket.io-client", err == nil, "run npm ci in the repository root")
}

// RequireRedis requires redis-server on PATH.
func RequireRedis(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	Require(t, "redis-server", err == nil, "apt-get install redis-server")
}
