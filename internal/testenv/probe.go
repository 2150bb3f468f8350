package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ProbeOptions is probe.mjs's config; see the comment at the top of
// probe.mjs for what each field does and its default.
type ProbeOptions struct {
	URL          string            `json:"url,omitempty"`
	URLs         []string          `json:"urls,omitempty"` // session i uses URLs[i%len(URLs)]
	Path         string            `json:"path,omitempty"`
	Transports   []string          `json:"transports"`             // nil: polling, then upgrade
	TransportMix [][]string        `json:"transportMix,omitempty"` // session i uses TransportMix[i%len(TransportMix)]
	Namespace    string            `json:"namespace,omitempty"`
	Sessions     int               `json:"sessions,omitempty"`
	Echoes       int               `json:"echoes,omitempty"`
	PayloadSize  int               `json:"payloadSize,omitempty"`
	ExtraHeaders map[string]string `json:"extraHeaders,omitempty"`
	Auth         map[string]any    `json:"auth,omitempty"`
	UpgradeWait  bool              `json:"upgradeWait,omitempty"`
	Room         string            `json:"room,omitempty"`
	TimeoutMs    int               `json:"timeoutMs,omitempty"`
	Reconnection bool              `json:"reconnection,omitempty"`
	CA           string            `json:"ca,omitempty"`        // PEM file
	KeepAlive    bool              `json:"keepAlive,omitempty"` // polling reuses connections and resends as a browser does
	// ResendNew, with KeepAlive, sends once more a polling request that
	// failed on a new connection before any answer, counted in
	// ResentNew (see probe.mjs).
	ResendNew bool `json:"resendNew,omitempty"`

	ReconnectionDelay    int `json:"reconnectionDelay,omitempty"`    // ms
	ReconnectionDelayMax int `json:"reconnectionDelayMax,omitempty"` // ms
	DurationMs           int `json:"durationMs,omitempty"`           // long run after ready; see Timelines
	IntervalMs           int `json:"intervalMs,omitempty"`           // between a session's echoes in the long run
}

// ProbeResult is probe.mjs's result.
type ProbeResult struct {
	Sessions      int               `json:"sessions"`
	Completed     int               `json:"completed"`
	Failures      []ProbeFailure    `json:"failures"`
	Workers       map[string]int    `json:"workers"`    // worker name → sessions it answered
	Transports    map[string]int    `json:"transports"` // final transport → sessions
	LatencyMs     ProbeLatency      `json:"latencyMs"`
	ConnectErrors []ProbeConnectErr `json:"connectErrors"`
	Broadcasts    *ProbeBroadcasts  `json:"broadcasts,omitempty"` // only with Room
	Timelines     []ProbeTimeline   `json:"timelines,omitempty"`  // only with DurationMs, one per session
	// EventLoopDelayMs is how late the probe ran its callbacks during the
	// long run (only with DurationMs): a busy client records events late.
	EventLoopDelayMs *ProbeLatency `json:"eventLoopDelayMs,omitempty"`
	// Resent counts, with KeepAlive, the polling requests sent once more
	// on a new connection after the reused one they went out on closed
	// before any answer, as a browser sends them again.
	Resent int `json:"resent"`
	// ResentNew counts, with ResendNew, those sent again after a new
	// connection closed before any answer.
	ResentNew int `json:"resentNew"`
}

// ProbeFailure is one session's failure. Stage is connect, upgrade, join,
// echo, broadcast or timeout (the run's deadline passed).
type ProbeFailure struct {
	Session int    `json:"session"`
	Stage   string `json:"stage"`
	Error   string `json:"error"`
	Data    any    `json:"data"`
}

// ProbeLatency summarises the echo round trips, in milliseconds.
type ProbeLatency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// ProbeConnectErr is a connect_error as socket.io-client reported it:
// err.message and err.data (the CONNECT_ERROR packet's data, if any).
type ProbeConnectErr struct {
	Message string `json:"message"`
	Data    any    `json:"data"`
}

// ProbeBroadcasts counts the room broadcasts: each live session sends one
// and should receive all of them.
type ProbeBroadcasts struct {
	Sent     int `json:"sent"`
	Expected int `json:"expected"`
	Received int `json:"received"`
}

// ProbeTimeline is one session's history in a long run (DurationMs):
// connects and disconnects alternate, so Disconnects[i] ended
// Connects[i] and Connects[i+1], if any, is the reconnection after it.
type ProbeTimeline struct {
	Session       int                `json:"session"`
	Transports    []string           `json:"transports"` // as configured; nil: polling, then upgrade
	Connects      []ProbeConnect     `json:"connects"`
	Disconnects   []ProbeDisconnect  `json:"disconnects"`
	ConnectErrors []ProbeTimedError  `json:"connectErrors"` // failed (re)connection attempts
	EchoFailures  []ProbeEchoFailure `json:"echoFailures"`  // in the long run
	Workers       []string           `json:"workers"`       // that answered acks, in order
}

// ProbeConnect is one connection of a session.
type ProbeConnect struct {
	At         EpochMs `json:"at"`
	SID        string  `json:"sid"`        // the Engine.IO sid the client was given
	Transport  string  `json:"transport"`  // at connect: polling or websocket
	UpgradedAt EpochMs `json:"upgradedAt"` // 0 without an upgrade to websocket
	Worker     string  `json:"worker"`     // that answered the first ack; "" if none came
	Acks       int     `json:"acks"`       // acks received on this connection
}

// ProbeDisconnect is the end of a connection; Reason is socket.io-client's,
// e.g. "transport close", "transport error", "ping timeout".
type ProbeDisconnect struct {
	At     EpochMs `json:"at"`
	Reason string  `json:"reason"`
}

// ProbeTimedError is a connect_error, with its cause as in ProbeFailure.
type ProbeTimedError struct {
	At    EpochMs `json:"at"`
	Error string  `json:"error"`
}

// ProbeEchoFailure is an echo of the long run that was not acknowledged
// in 5s, was cut off by a disconnection, came back altered, or was
// answered by another worker than its connection's first.
type ProbeEchoFailure struct {
	At    EpochMs `json:"at"`
	Seq   int     `json:"seq"`
	Error string  `json:"error"`
}

// EpochMs is a time the probe measured: Unix epoch milliseconds, from a
// monotonic clock in the probe, comparable with time.Now in the test.
type EpochMs float64

// Time returns m as a time.Time (microsecond precision); zero for 0.
func (m EpochMs) Time() time.Time {
	if m == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(math.Round(float64(m) * 1000)))
}

// FirstWorker is the worker that answered the session's first connection.
func (tl ProbeTimeline) FirstWorker() string {
	if len(tl.Connects) == 0 {
		return ""
	}
	return tl.Connects[0].Worker
}

// RunProbe runs probe.mjs with opts and returns its result; failures of
// the sessions are in the result, for the test to judge. It fails the test
// only if the probe cannot run, so it must be called from the test's
// goroutine; use Probe elsewhere. The config and result are logged if the
// test fails.
func RunProbe(t testing.TB, opts ProbeOptions) ProbeResult {
	t.Helper()
	RequireNode(t)
	res, raw, err := probe(context.Background(), RepoRoot(t), opts)
	cfg, _ := json.Marshal(opts)
	if err != nil {
		t.Fatalf("testenv: probe %s: %v", cfg, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("probe %s\n  → %s", cfg, raw)
		}
	})
	return res
}

// Probe is RunProbe for use from other goroutines, e.g. a client running
// while the test kills a worker. Call RequireNode first.
func Probe(ctx context.Context, opts ProbeOptions) (ProbeResult, error) {
	root, err := repoRoot()
	if err != nil {
		return ProbeResult{}, err
	}
	res, _, err := probe(ctx, root, opts)
	return res, err
}

func probe(ctx context.Context, root string, opts ProbeOptions) (ProbeResult, []byte, error) {
	cfg, err := json.Marshal(opts)
	if err != nil {
		return ProbeResult{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeRunFor(opts))
	defer cancel()

	var stdout, stderr bytes.Buffer
	cmd := probeCommand(ctx, root, cfg, &stdout, &stderr)
	if err := cmd.Run(); err != nil {
		return ProbeResult{}, stdout.Bytes(), fmt.Errorf("node probe.mjs: %w (context: %v)\nstderr:\n%s", err, ctx.Err(), stderr.String())
	}
	res, err := parseProbe(stdout.Bytes(), stderr.String())
	return res, stdout.Bytes(), err
}

// probeRunFor bounds a probe's run: the probe stops itself at its own
// deadline and after its long run; the margin covers Node's start and a
// probe that hangs regardless.
func probeRunFor(opts ProbeOptions) time.Duration {
	return probeReadyWithin(opts) + time.Duration(opts.DurationMs)*time.Millisecond
}

// probeReadyWithin is how long a probe may take to become ready.
func probeReadyWithin(opts ProbeOptions) time.Duration {
	deadline := 10 * time.Second
	if opts.TimeoutMs > 0 {
		deadline = time.Duration(opts.TimeoutMs) * time.Millisecond
	}
	return deadline + 20*time.Second
}

// probeCommand is node probe.mjs with cfg on stdin, in its own process
// group, which is killed when ctx ends.
func probeCommand(ctx context.Context, root string, cfg []byte, stdout, stderr io.Writer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "internal", "testenv", "probe.mjs"))
	cmd.Dir = root
	cmd.Stdin = bytes.NewReader(cfg)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd
}

func parseProbe(stdout []byte, stderr string) (ProbeResult, error) {
	var res ProbeResult
	if err := json.Unmarshal(stdout, &res); err != nil {
		return ProbeResult{}, fmt.Errorf("probe.mjs printed no JSON result: %w\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return res, nil
}

// RunningProbe is a probe started by StartProbe.
type RunningProbe struct {
	t      testing.TB
	cfg    []byte
	ctx    context.Context
	stdout bytes.Buffer
	stderr *readyWriter
	done   chan struct{} // closed once the probe has exited
	err    error         // the probe's exit, once done is closed
}

// StartProbe starts probe.mjs with opts and returns once the probe is
// ready: every session has connected (and upgraded, joined and echoed, as
// opts ask) or failed trying. A test acts then, e.g. kills a worker during
// a long run (DurationMs), and collects the result with Wait.
//
// It fails the test if the probe cannot start, exits before it is ready,
// or is not ready within TimeoutMs and a margin, so call it from the
// test's goroutine. The probe is killed at cleanup if it still runs; the
// config and result are logged if the test fails.
func StartProbe(t testing.TB, opts ProbeOptions) *RunningProbe {
	t.Helper()
	RequireNode(t)
	cfg, err := json.Marshal(opts)
	if err != nil {
		t.Fatalf("testenv: probe options: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeRunFor(opts))
	p := &RunningProbe{t: t, cfg: cfg, ctx: ctx, stderr: &readyWriter{ready: make(chan struct{})}, done: make(chan struct{})}
	cmd := probeCommand(ctx, RepoRoot(t), cfg, &p.stdout, p.stderr)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("testenv: starting probe %s: %v", cfg, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("probe %s\n  → %s", cfg, p.stdout.Bytes())
		}
	})

	timeout := time.NewTimer(probeReadyWithin(opts))
	defer timeout.Stop()
	select {
	case <-p.stderr.ready:
		return p
	case <-p.done:
		t.Fatalf("testenv: probe %s exited before it was ready: %v\nstderr:\n%s", cfg, p.err, p.stderr)
	case <-timeout.C:
		t.Fatalf("testenv: probe %s not ready after %v\nstderr:\n%s", cfg, probeReadyWithin(opts), p.stderr)
	}
	return nil
}

// Wait waits until the probe has finished and returns its result. It
// fails the test if the probe crashed or printed no result, so call it
// from the test's goroutine.
func (p *RunningProbe) Wait() ProbeResult {
	p.t.Helper()
	<-p.done
	if p.err != nil {
		p.t.Fatalf("testenv: node probe.mjs %s: %v (context: %v)\nstderr:\n%s", p.cfg, p.err, p.ctx.Err(), p.stderr)
	}
	res, err := parseProbe(p.stdout.Bytes(), p.stderr.String())
	if err != nil {
		p.t.Fatalf("testenv: probe %s: %v", p.cfg, err)
	}
	return res
}

// readyLine is what probe.mjs prints on stderr once it is ready.
const readyLine = `{"ready":true}`

// readyWriter keeps a running probe's stderr and closes ready when the
// probe prints readyLine.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	line  []byte // the current line, up to its newline
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, b := range p {
		if b != '\n' {
			w.line = append(w.line, b)
			continue
		}
		if string(w.line) == readyLine {
			w.once.Do(func() { close(w.ready) })
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
