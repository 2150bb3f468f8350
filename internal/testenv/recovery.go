package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RecoveryConfig is the config of test/client/recover-run.mjs, the client
// of the connection state recovery tests; see the comment at its top.
type RecoveryConfig struct {
	URL        string   `json:"url"`
	Transports []string `json:"transports"` // nil: polling, then upgrade
	N          int      `json:"n"`
	IntervalMs int      `json:"intervalMs"`
	TimeoutMs  int      `json:"timeoutMs"`
}

// RecoveryResult is what the client saw.
type RecoveryResult struct {
	Connects    []RecoveryConnect `json:"connects"`
	Disconnects []struct {
		Reason string  `json:"reason"`
		At     float64 `json:"at"`
	} `json:"disconnects"`
	ConnectErrors []string      `json:"connectErrors"`
	Runs          []RecoveryRun `json:"runs"`
	ClientAcked   []int         `json:"clientAcked"`
	// AckedBeforeDrop are the acknowledgements the client sent before
	// its first disconnect: one of them may be lost with the connection.
	AckedBeforeDrop []int `json:"ackedBeforeDrop"`
	WorkerAcks      []int `json:"workerAcks"` // count_acks on the last session; nil if it never answered
	BadBinary       []int `json:"badBinary"`
	TimedOut        bool  `json:"timedOut"`
}

// RecoveryConnect is one connect event of the client.
type RecoveryConnect struct {
	ID        string  `json:"id"` // socket.id: the worker's Socket.IO sid
	Recovered bool    `json:"recovered"`
	Transport string  `json:"transport"`
	At        float64 `json:"at"`
}

// RecoveryRun is one `count` stream, on one session.
type RecoveryRun struct {
	Connect    int    `json:"connect"` // index in Connects of the connection that asked for it
	ID         string `json:"id"`
	Received   []int  `json:"received"` // in arrival order, duplicates included
	Duplicates []int  `json:"duplicates"`
	Done       bool   `json:"done"`       // count_done came
	WithOffset int    `json:"withOffset"` // events whose last argument was a string
}

// Recovered lists socket.recovered of every connect, in order.
func (r RecoveryResult) Recovered() []bool {
	var out []bool
	for _, c := range r.Connects {
		out = append(out, c.Recovered)
	}
	return out
}

// Reasons lists the disconnect reasons, in order.
func (r RecoveryResult) Reasons() []string {
	var out []string
	for _, d := range r.Disconnects {
		out = append(out, d.Reason)
	}
	return out
}

// RecoveryReport is one line the client printed.
type RecoveryReport struct {
	Event     string          `json:"event"` // connect, counting, disconnect, result, offline, online, console, error
	ID        string          `json:"id"`
	Recovered bool            `json:"recovered"`
	Transport string          `json:"transport"`
	Reason    string          `json:"reason"`
	Run       int             `json:"run"`
	Text      string          `json:"text"`
	Error     string          `json:"error"`
	Result    *RecoveryResult `json:"result"`
}

// RecoveryClient is a running recover.mjs (Node) or test/browser/recover.mjs
// (Chromium).
type RecoveryClient struct {
	t       testing.TB
	name    string
	stdin   io.WriteCloser
	reports chan RecoveryReport
	seen    []string // every line so far, for failure messages
	stderr  *SyncBuffer
}

// StartRecoveryClient runs test/client/recover.mjs, socket.io-client in
// Node, with cfg.
func StartRecoveryClient(t testing.TB, cfg RecoveryConfig) *RecoveryClient {
	t.Helper()
	RequireNode(t)
	arg, _ := json.Marshal(cfg)
	return startRecovery(t, "test/client/recover.mjs", string(arg))
}

// StartRecoveryBrowser runs test/browser/recover.mjs: recover-run.mjs with
// cfg in a page of Chromium loaded from pageURL (which must serve the
// official client at /socket.io.min.js, as ServePage does).
func StartRecoveryBrowser(t testing.TB, pageURL string, cfg RecoveryConfig) *RecoveryClient {
	t.Helper()
	RequireBrowser(t)
	arg, _ := json.Marshal(map[string]any{"chromium": Chromium, "page": pageURL, "client": cfg})
	return startRecovery(t, "test/browser/recover.mjs", string(arg))
}

func startRecovery(t testing.TB, script, arg string) *RecoveryClient {
	t.Helper()
	VerifyNoLeaks(t)
	root := RepoRoot(t)
	cmd := exec.Command("node", filepath.Join(root, script), arg)
	cmd.Dir = root
	// A browser runs in node's process group, killed whole at cleanup and
	// with node if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c := &RecoveryClient{t: t, name: script, reports: make(chan RecoveryReport, 1024), stderr: &SyncBuffer{}}
	cmd.Stderr = c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: node %s: %v", script, err)
	}
	c.stdin = stdin
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(c.reports)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			var r RecoveryReport
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = RecoveryReport{Event: "error", Error: fmt.Sprintf("not JSON: %q", sc.Bytes())}
			}
			c.reports <- r
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-read
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s\nstderr:\n%s", script, strings.Join(c.seen, "\n"), c.stderr.String())
		}
	})
	return c
}

// WaitFor reads the client's reports until one of event comes, and
// returns it; it fails the test when the client ends or timeout passes
// first.
func (c *RecoveryClient) WaitFor(event string, timeout time.Duration) RecoveryReport {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case r, ok := <-c.reports:
			if !ok {
				c.t.Fatalf("%s ended before %q\n%s\nstderr:\n%s", c.name, event, strings.Join(c.seen, "\n"), c.stderr.String())
			}
			line, _ := json.Marshal(r)
			c.seen = append(c.seen, string(line))
			if r.Event == event {
				return r
			}
		case <-deadline.C:
			c.t.Fatalf("%s: no %q within %v\n%s", c.name, event, timeout, strings.Join(c.seen, "\n"))
		}
	}
}

// Result waits for the client's result.
func (c *RecoveryClient) Result(timeout time.Duration) RecoveryResult {
	c.t.Helper()
	r := c.WaitFor("result", timeout)
	if r.Result == nil {
		c.t.Fatalf("%s: a result line without a result", c.name)
	}
	return *r.Result
}

// Offline takes the browser's network offline (DevTools' emulation); Node
// ignores it. Online brings it back.
func (c *RecoveryClient) Offline() { c.command("offline") }

// Online brings the browser's network back.
func (c *RecoveryClient) Online() { c.command("online") }

func (c *RecoveryClient) command(cmd string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		c.t.Fatalf("%s: %s: %v", c.name, cmd, err)
	}
}

// Close ends the client: it disconnects (which the worker logs) and exits.
func (c *RecoveryClient) Close() { _ = c.stdin.Close() }

// CountLog counts the lines of a worker's log (FlaskWorker.Output) that
// record event ("connect" or "disconnect") of namespace "/" for sid.
func CountLog(log, event, sid string) int {
	re := regexp.MustCompile(`(?m) ` + regexp.QuoteMeta(event) + ` namespace=/ sid=` + regexp.QuoteMeta(sid) + ` `)
	return len(re.FindAllStringIndex(log, -1))
}

// CutWhileCounting waits until the worker has started the client's first
// stream, cuts the client's network at once (n, and for a browser
// DevTools' offline emulation too, since that may leave a live WebSocket
// open) and gives it back after offline, measured with a timer: that
// wait is what the recovery tests are about. retarget, when not empty,
// sends the reconnection to another server (NetCut.Retarget).
func (c *RecoveryClient) CutWhileCounting(n *NetCut, offline time.Duration, retarget string) {
	c.t.Helper()
	c.WaitFor("counting", 60*time.Second)
	n.Cut()
	if c.browser() {
		c.Offline()
	}
	if retarget != "" {
		n.Retarget(retarget)
	}
	back := time.NewTimer(offline)
	defer back.Stop()
	<-back.C
	n.Restore()
	if c.browser() {
		c.Online()
	}
}

func (c *RecoveryClient) browser() bool { return strings.Contains(c.name, "browser") }

// RecoveredProblems lists what keeps r from being one stream of n events
// that went on across a recovered reconnection: two connects, the second
// recovered with the same socket id; one run, every number once and in
// order; binary intact; and, when acks, every acknowledged number known to
// the worker (count_acks). Without acks, the ack kind (i % 4 == 1) may be
// missing: the Node server does not store packets sent with an ack
// callback.
func (r RecoveryResult) RecoveredProblems(n int, acks bool) []string {
	var p []string
	if r.TimedOut {
		p = append(p, "timed out before the stream's count_done and count_acks")
	}
	if got := r.Recovered(); len(got) != 2 || got[0] || !got[1] {
		p = append(p, fmt.Sprintf("socket.recovered per connect = %v, want [false true]", got))
	} else if r.Connects[1].ID != r.Connects[0].ID {
		p = append(p, fmt.Sprintf("socket id %s after recovery, want the same as before, %s", r.Connects[1].ID, r.Connects[0].ID))
	}
	if len(r.Runs) != 1 {
		p = append(p, fmt.Sprintf("%d count runs, want 1 (a run starts on every new session)", len(r.Runs)))
	}
	if len(r.Runs) > 0 {
		run := r.Runs[0]
		p = append(p, streamProblems(run, n, acks)...)
	}
	if len(r.BadBinary) > 0 {
		p = append(p, fmt.Sprintf("binary events with wrong bytes: %v", r.BadBinary))
	}
	if acks {
		p = append(p, ackProblems(r, n)...)
	}
	return p
}

// NewSessionProblems lists what keeps r from being a clean new session
// after the cut: a second connect not recovered, with another socket id,
// and a new run on it that received every number once, in order, with
// every ack known to the worker.
func (r RecoveryResult) NewSessionProblems(n int) []string {
	var p []string
	if r.TimedOut {
		p = append(p, "timed out before the new session's count_done and count_acks")
	}
	got := r.Recovered()
	if len(got) < 2 || got[1] {
		p = append(p, fmt.Sprintf("socket.recovered per connect = %v, want [false false]", got))
	} else if r.Connects[1].ID == r.Connects[0].ID {
		p = append(p, fmt.Sprintf("socket id %s after the window, want a new one", r.Connects[1].ID))
	}
	if len(r.Runs) != 2 {
		p = append(p, fmt.Sprintf("%d count runs, want 2 (the cut one and one on the new session)", len(r.Runs)))
	} else {
		p = append(p, streamProblems(r.Runs[1], n, true)...)
	}
	if len(r.BadBinary) > 0 {
		p = append(p, fmt.Sprintf("binary events with wrong bytes: %v", r.BadBinary))
	}
	return append(p, ackProblems(r, n)...)
}

func streamProblems(run RecoveryRun, n int, acks bool) []string {
	var p []string
	if !run.Done {
		p = append(p, "the stream's count_done never came")
	}
	var want []int
	for i := range n {
		if acks || i%4 != 1 {
			want = append(want, i)
		}
	}
	got := run.Received
	if acks {
		// An event that asks for an acknowledgement is delivered at
		// least once: one whose acknowledgement the cut took is sent
		// again, so that the worker gets it. Every other event exactly
		// once.
		seen := map[int]bool{}
		got = nil
		for _, i := range run.Received {
			if i%4 == 1 && seen[i] {
				continue
			}
			seen[i] = true
			got = append(got, i)
		}
	} else {
		got = nil
		for _, i := range run.Received {
			if i%4 != 1 {
				got = append(got, i)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		p = append(p, fmt.Sprintf("received %d numbers %s, want %d in order", len(got), brief(got, want), len(want)))
	}
	var dups []int
	for _, i := range run.Duplicates {
		if !acks || i%4 != 1 {
			dups = append(dups, i)
		}
	}
	if len(dups) > 0 {
		p = append(p, fmt.Sprintf("duplicates: %v", dups))
	}
	return p
}

// ackProblems checks the ack kind of the last run: every i % 4 == 1 acked by
// the client and known to the worker.
func ackProblems(r RecoveryResult, n int) []string {
	var want []int
	for i := 1; i < n; i += 4 {
		want = append(want, i)
	}
	if fmt.Sprint(r.WorkerAcks) == fmt.Sprint(want) {
		return nil
	}
	// An acknowledgement the client sent before its connection dropped
	// may have been lost with it; every later one must arrive.
	got := map[int]bool{}
	for _, i := range r.WorkerAcks {
		got[i] = true
	}
	lostInFlight := map[int]bool{}
	for _, i := range r.AckedBeforeDrop {
		lostInFlight[i] = true
	}
	for _, i := range want {
		if !got[i] && !lostInFlight[i] {
			return []string{fmt.Sprintf("count_acks = %s, want %v", brief(r.WorkerAcks, want), want)}
		}
	}
	return nil
}

// brief shows got, shortened, with what it lacks of want:
// "[0 1 2 3 4 6] ... [94 95 96 97 98 99] missing [5]".
func brief(got, want []int) string {
	if got == nil {
		return "none"
	}
	has := map[int]bool{}
	for _, x := range got {
		has[x] = true
	}
	var missing []int
	for _, x := range want {
		if !has[x] {
			missing = append(missing, x)
		}
	}
	s := fmt.Sprint(got)
	if len(got) > 12 {
		s = fmt.Sprintf("%v ... %v", got[:6], got[len(got)-6:])
	}
	if len(missing) > 0 {
		s += fmt.Sprintf(" missing %v", missing)
	}
	return s
}

// NodeRecoveryServer is a running test/client/recover_server.mjs: the
// Node socket.io server with connectionStateRecovery and the app's
// `count` and `count_acks`, the reference the recovery client is held
// against.
type NodeRecoveryServer struct {
	Addr string // "127.0.0.1:PORT"
	proc *process
}

// StartNodeRecoveryServer starts recover_server.mjs with window as its
// maxDisconnectionDuration, on a fresh port; it is killed at cleanup.
func StartNodeRecoveryServer(t testing.TB, window time.Duration) *NodeRecoveryServer {
	t.Helper()
	RequireNode(t)
	port := FreePort(t)
	cfg, _ := json.Marshal(map[string]any{"port": port, "maxDisconnectionDurationMs": window.Milliseconds()})
	root := RepoRoot(t)
	cmd := exec.Command("node", filepath.Join(root, "test", "client", "recover_server.mjs"), string(cfg))
	cmd.Dir = root
	s := &NodeRecoveryServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), proc: start(t, "recover_server.mjs", cmd)}
	s.proc.waitReady(t, 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return s
}

// Output is what the server has logged: one line per connect, recovery
// and disconnect, as the Flask app logs them.
func (s *NodeRecoveryServer) Output() string { return s.proc.out.String() }
