package flaskedge_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// A new user following docs/SCALING.md on one machine gets two edges,
// two workers and Redis, and clients spread over both edges and both
// workers hear every room broadcast. The test runs the document's own
// shell block, with only its port numbers and /tmp replaced by free ones,
// so the document cannot drift from what works.
func TestScalingWalkthroughWorks(t *testing.T) {
	testenv.RequireNode(t)
	caddy := testenv.CaddyBinary(t)
	doc, err := os.ReadFile("docs/SCALING.md")
	require.NoError(t, err)
	script := shellBlockAfter(t, string(doc), "On one machine, to try it:")

	redis, w1, w2 := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	// The document puts each edge's admin endpoint on "2" followed by the
	// edge's port, so the edges need ports of four digits up to 5535.
	e1, e2 := lowFreePort(t), lowFreePort(t)
	dir := t.TempDir()
	for _, r := range []struct{ old, new string }{
		{"6390", fmt.Sprint(redis)},
		{"5001", fmt.Sprint(w1)},
		{"5002", fmt.Sprint(w2)},
		{"for p in 8081 8082", fmt.Sprintf("for p in %d %d", e1, e2)},
		{"/tmp/", dir + "/"},
		{"bin/caddy ", caddy + " "},
	} {
		require.Contains(t, script, r.old, "docs/SCALING.md's block changed; update this test with it")
		script = strings.ReplaceAll(script, r.old, r.new)
	}
	for _, line := range strings.Split(script, "\n") {
		for _, stale := range []string{"8081", "8082", "6390", "5001", "5002"} {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") {
				require.NotContains(t, line, stale, "docs/SCALING.md's block names a port this test does not replace")
			}
		}
	}

	cmd := exec.Command("bash", "-euc", script)
	var out testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		// Everything the block started is in its process group; a
		// worker left behind would take requests meant for later tests.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = cmd.Wait()
		for _, port := range []int{redis, w1, w2, e1, e2} {
			waitClosed(t, port)
		}
		if t.Failed() {
			t.Logf("output of docs/SCALING.md's block:\n%s", out.String())
		}
	})

	edges := []string{fmt.Sprintf("http://127.0.0.1:%d", e1), fmt.Sprintf("http://127.0.0.1:%d", e2)}
	for _, base := range []string{fmt.Sprintf("http://127.0.0.1:%d", w1), fmt.Sprintf("http://127.0.0.1:%d", w2), edges[0], edges[1]} {
		waitAnswers(t, base+"/socket.io/?EIO=4&transport=polling", &out)
	}

	res := testenv.RunProbe(t, testenv.ProbeOptions{
		URLs:      edges, // session i through edges[i%2]
		Sessions:  8,
		Room:      "lobby",
		Echoes:    2,
		TimeoutMs: 30000,
	})
	require.Empty(t, res.Failures)
	require.NotNil(t, res.Broadcasts)
	assert.Equal(t, res.Broadcasts.Expected, res.Broadcasts.Received, "every session heard every broadcast")
	assert.Equal(t, 64, res.Broadcasts.Expected)
	assert.Positive(t, res.Workers["A"], "worker A took sessions: %v", res.Workers)
	assert.Positive(t, res.Workers["B"], "worker B took sessions: %v", res.Workers)
	t.Logf("docs/SCALING.md walkthrough: 8 sessions over 2 edges, workers %v, %d of %d broadcasts heard", res.Workers, res.Broadcasts.Received, res.Broadcasts.Expected)
}

// shellBlockAfter returns the first ```sh block after marker.
func shellBlockAfter(t *testing.T, text, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, marker)
	require.True(t, ok, "the document has no %q", marker)
	_, rest, ok = strings.Cut(rest, "```sh\n")
	require.True(t, ok, "no sh block after %q", marker)
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	return block
}

// lowFreePort is a free port between 1024 and 5535.
func lowFreePort(t *testing.T) int {
	t.Helper()
	for port := 3000 + os.Getpid()%2000; port < 5535; port++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		if _, taken := lowPorts.LoadOrStore(port, true); !taken {
			return port
		}
	}
	t.Fatal("no free port between 1024 and 5535")
	return 0
}

var lowPorts sync.Map // port → true, the ones lowFreePort handed out

// waitAnswers polls url until it answers 200, for up to 60 s.
func waitAnswers(t *testing.T, url string, out *testenv.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 60 s (%v)\n%s", url, err, out.String())
		}
		time.Sleep(100 * time.Millisecond) // polling for readiness
	}
}

// waitClosed polls until nothing accepts connections on port any more.
func waitClosed(t *testing.T, port int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond) // polling for the process to be gone
	}
	t.Errorf("port %d still accepts connections 10 s after the walkthrough's processes were killed", port)
}
