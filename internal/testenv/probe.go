package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
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
	Transports   []string          `json:"transports"` // nil: polling, then upgrade
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
	CA           string            `json:"ca,omitempty"` // PEM file
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
	// The probe stops itself at its own deadline; the margin covers Node's
	// start and a probe that hangs regardless.
	runFor := 10 * time.Second
	if opts.TimeoutMs > 0 {
		runFor = time.Duration(opts.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, runFor+20*time.Second)
	defer cancel()

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "internal", "testenv", "probe.mjs"))
	cmd.Dir = root
	cmd.Stdin = bytes.NewReader(cfg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return ProbeResult{}, stdout.Bytes(), fmt.Errorf("node probe.mjs: %w (context: %v)\nstderr:\n%s", err, ctx.Err(), stderr.String())
	}
	var res ProbeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return ProbeResult{}, stdout.Bytes(), fmt.Errorf("probe.mjs printed no JSON result: %w\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return res, stdout.Bytes(), nil
}
