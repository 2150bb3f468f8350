package main

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// figure is one column of the table: how to read it from a result and
// which way is better.
type figure struct {
	value         func(*result) (float64, bool)
	lowerIsBetter bool
}

var (
	figSessions = figure{value: func(r *result) (float64, bool) {
		if r.Polling == nil || r.WS == nil {
			return 0, false
		}
		return float64(r.Polling.Completed + r.WS.Completed), true
	}}
	figP50 = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		return echoFig(r, func(e *echoResult) float64 { return e.LatencyMs.P50 })
	}}
	figP99 = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		return echoFig(r, func(e *echoResult) float64 { return e.LatencyMs.P99 })
	}}
	figCPU = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		return echoFig(r, func(e *echoResult) float64 { return e.UsPerFrame })
	}}
	figRSS = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		if r.Idle == nil || r.Idle.Connected == 0 {
			return 0, false
		}
		return r.Idle.KBPerConn, true
	}}
)

// The second table's figures.
var (
	figBurstRSS  = idleFig(func(r *result) *idleResult { return r.Burst })
	figBurstKept = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		i := r.Burst
		if i == nil || i.Connected == 0 || i.RSSReleasedKB == 0 {
			return 0, false
		}
		return float64(i.RSSReleasedKB-i.RSSBeforeKB) / float64(i.Connected), true
	}}
	figLargeRSS = idleFig(func(r *result) *idleResult { return r.BurstLarge })
	figPollP50  = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		return pollFig(r, func(e *echoResult) float64 { return e.LatencyMs.P50 })
	}}
	figPollP99 = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		return pollFig(r, func(e *echoResult) float64 { return e.LatencyMs.P99 })
	}}
	figPollEcho = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		return pollFig(r, func(e *echoResult) float64 { return e.UsPerEcho })
	}}
	figPollRequest = figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		if r.Poll == nil || r.Poll.Requests == 0 {
			return 0, false
		}
		return pollFig(r, func(e *echoResult) float64 { return e.UsPerRequest })
	}}
	figPollIdleRSS = idleFig(func(r *result) *idleResult { return r.PollIdle })
)

func idleFig(get func(*result) *idleResult) figure {
	return figure{lowerIsBetter: true, value: func(r *result) (float64, bool) {
		i := get(r)
		if i == nil || i.Connected == 0 {
			return 0, false
		}
		return i.KBPerConn, true
	}}
}

func pollFig(r *result, f func(*echoResult) float64) (float64, bool) {
	return medianOf(append([]*echoResult{r.Poll}, r.PollRounds...), f)
}

// medianOf is the median of f over the rounds that completed echoes (the
// mean of the middle two for an even count).
func medianOf(rounds []*echoResult, f func(*echoResult) float64) (float64, bool) {
	var vs []float64
	for _, e := range rounds {
		if e != nil && e.Echoes > 0 {
			vs = append(vs, f(e))
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2, true
	}
	return vs[len(vs)/2], true
}

// connected is "connected/asked" when some failed.
func connected(i *idleResult, asked int) string {
	if i == nil {
		return "—"
	}
	if i.Failed == 0 {
		return fmt.Sprint(i.Connected)
	}
	return fmt.Sprintf("%d/%d", i.Connected, asked)
}

func echoFig(r *result, f func(*echoResult) float64) (float64, bool) {
	return medianOf(append([]*echoResult{r.Echo}, r.EchoRounds...), f)
}

// best is the best anchor's value of a figure.
func best(results []*result, f figure) (float64, bool) {
	var v float64
	found := false
	for _, r := range results {
		x, ok := f.value(r)
		if !r.Anchor || !ok {
			continue
		}
		if !found || (f.lowerIsBetter && x < v) || (!f.lowerIsBetter && x > v) {
			v, found = x, true
		}
	}
	return v, found
}

// cell is a figure with its ratio to the best anchor.
func cell(results []*result, r *result, f figure, format string) string {
	x, ok := f.value(r)
	if !ok {
		return "—"
	}
	s := fmt.Sprintf(format, x)
	if b, ok := best(results, f); ok && b != 0 {
		s += fmt.Sprintf(" (%.2f×)", x/b)
	}
	return s
}

func sessionsCell(results []*result, r *result) string {
	if r.Polling == nil || r.WS == nil {
		return "—"
	}
	s := fmt.Sprintf("%d / %d", r.Polling.Completed, r.WS.Completed)
	if b, ok := best(results, figSessions); ok && b != 0 {
		x, _ := figSessions.value(r)
		s += fmt.Sprintf(" (%.2f×)", x/b)
	}
	return s
}

// spread is how the completed sessions fell on backends a and b.
func spread(r *result) string {
	if r.Polling == nil || r.WS == nil {
		return "—"
	}
	f := func(s *sessionResult) string { return fmt.Sprintf("%d:%d", s.Backends["a"], s.Backends["b"]) }
	return f(r.Polling) + " / " + f(r.WS)
}

// rounds lists each round's CPU figure, latency and failures.
func rounds(es []*echoResult, cpu func(*echoResult) float64) string {
	var sb strings.Builder
	for i, e := range es {
		if i > 0 {
			sb.WriteString(",")
		}
		if e == nil {
			sb.WriteString(" —")
			continue
		}
		fmt.Fprintf(&sb, " %.1f (%.3f / %.3f, %d)", cpu(e), e.LatencyMs.P50, e.LatencyMs.P99, e.Failures)
	}
	return sb.String()
}

func (b *bench) report(results []*result) string {
	var sb strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&sb, format, a...) }
	w("| proxy | sessions completed (polling / ws) | spread a:b (polling / ws) | p50 ms | p99 ms | CPU µs/frame | RSS KB/idle conn |\n")
	w("|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		w("| %s | %s | %s | %s | %s | %s | %s |\n", r.Label,
			sessionsCell(results, r), spread(r),
			cell(results, r, figP50, "%.3f"), cell(results, r, figP99, "%.3f"),
			cell(results, r, figCPU, "%.1f"), cell(results, r, figRSS, "%.2f"))
	}
	w("\nIn parentheses: the ratio to the best anchor (nginx, HAProxy, Caddy reverse_proxy) for that figure; sessions higher is better, every other figure lower is better. Spread has no ratio: it is where the sessions landed.\n")
	w("\nLoad: %d sessions per transport from 127.0.0.1 with %d echoes each; %d WebSocket connections, sequential acknowledged echoes of %d bytes of padding, the next one %v after the previous one started, for %v; %d idle WebSocket connections held %v.",
		b.Sessions, b.Echoes, b.EchoConns, b.Payload, b.EchoInterval, b.EchoDuration, b.IdleConns, b.IdleWait)
	if b.Rounds > 1 {
		w(" Latency and CPU, here and for polling below, are the median of %d rounds, the contenders taking turns (each round's figures are in the raw figures).", b.Rounds)
	}
	w("\n")

	w("\n| proxy | RSS KB/conn, %d opened 100 at a time | RSS KB/conn, %d opened at once | connected at once | RSS KB/conn kept %v after they closed | polling p50 ms | polling p99 ms | CPU µs/polling echo | CPU µs/HTTP request | RSS KB/idle polling session |",
		b.IdleConns, b.IdleConns, b.ReleaseWait)
	if b.IdleConnsLarge > 0 {
		w(" RSS KB/conn, %d at once | connected | kept %v after |", b.IdleConnsLarge, b.ReleaseWait)
	}
	w("\n|---|---|---|---|---|---|---|---|---|---|")
	if b.IdleConnsLarge > 0 {
		w("---|---|---|")
	}
	w("\n")
	for _, r := range results {
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", r.Label,
			cell(results, r, figRSS, "%.2f"), cell(results, r, figBurstRSS, "%.2f"),
			connected(r.Burst, b.IdleConns), cell(results, r, figBurstKept, "%.2f"),
			cell(results, r, figPollP50, "%.3f"), cell(results, r, figPollP99, "%.3f"),
			cell(results, r, figPollEcho, "%.1f"), cell(results, r, figPollRequest, "%.1f"),
			cell(results, r, figPollIdleRSS, "%.2f"))
		if b.IdleConnsLarge > 0 {
			kept := "—"
			if i := r.BurstLarge; i != nil && i.Connected > 0 && i.RSSReleasedKB > 0 {
				kept = fmt.Sprintf("%.2f", float64(i.RSSReleasedKB-i.RSSBeforeKB)/float64(i.Connected))
			}
			w(" %s | %s | %s |", cell(results, r, figLargeRSS, "%.2f"), connected(r.BurstLarge, b.IdleConnsLarge), kept)
		}
		w("\n")
	}
	w("\nSecond table: the same ratios. RSS kept is the proxy's RSS %v after the burst's connections closed, minus its RSS before they opened, per connection that was open. Polling: %d polling-only connections (no upgrade), each keeping its HTTP connections alive as a browser does, doing the echo measurement's sequential acknowledged echoes; CPU is the proxy's utime+stime over the window divided by the echoes (one EVENT and its ACK: a POST carrying the event and the poll that returns the ack, or more requests when they do not coincide), and by the HTTP requests the clients completed (GET polls and POSTs); %d polling sessions held idle %v for RSS per session.\n",
		b.ReleaseWait, b.PollConns, b.PollIdleConns, b.IdleWait)
	w("\nRaw figures:\n\n")
	for _, r := range results {
		w("- %s:", r.Key)
		if e := r.Echo; e != nil {
			w(" %d echoes (%d failed) in %.1fs, %d frames sent + %d received, proxy CPU %.2fs, max %.1f ms;",
				e.Echoes, e.Failures, e.Seconds, e.Frames.Sent, e.Frames.Received, e.CPUSeconds, e.LatencyMs.Max)
		}
		if len(r.EchoRounds) > 0 {
			w(" echo by round (CPU µs/frame, p50 / p99 ms, failed echoes):%s;", rounds(append([]*echoResult{r.Echo}, r.EchoRounds...),
				func(e *echoResult) float64 { return e.UsPerFrame }))
		}
		if i := r.Idle; i != nil {
			w(" idle: %d connected (%d failed, %d still connected at the end), RSS %d → %d KB (file-backed %+d KB)",
				i.Connected, i.Failed, i.StillConnected, i.RSSBeforeKB, i.RSSAfterKB, i.RSSFileAfterKB-i.RSSFileBeforeKB)
			if i.Goroutines > 0 {
				w(", %d goroutines", i.Goroutines)
			}
			if g0, g1 := i.GoBefore, i.GoAfter; g0 != nil && g1 != nil && i.Connected > 0 {
				per := func(a, b int64) float64 { return float64(b-a) / 1024 / float64(i.Connected) }
				w(", Go runtime per connection: heap in use %.1f KB, stacks %.1f KB, Sys %.1f KB",
					per(g0.HeapInuse, g1.HeapInuse), per(g0.StackInuse, g1.StackInuse), per(g0.Sys, g1.Sys))
			}
			w(";")
		}
		if e := r.Poll; e != nil {
			w(" polling: %d echoes (%d failed) in %.1fs, %d HTTP requests, %d packets sent + %d received, proxy CPU %.2fs, max %.1f ms;",
				e.Echoes, e.Failures, e.Seconds, e.Requests, e.Frames.Sent, e.Frames.Received, e.CPUSeconds, e.LatencyMs.Max)
		}
		if len(r.PollRounds) > 0 {
			w(" polling by round (CPU µs/echo, p50 / p99 ms, failed echoes):%s;", rounds(append([]*echoResult{r.Poll}, r.PollRounds...),
				func(e *echoResult) float64 { return e.UsPerEcho }))
		}
		for _, x := range []struct {
			name string
			i    *idleResult
		}{{"burst", r.Burst}, {"burst-large", r.BurstLarge}, {"polling idle", r.PollIdle}} {
			if i := x.i; i != nil {
				w(" %s: %d connected (%d failed, %d still connected at the end), RSS %d → %d KB", x.name,
					i.Connected, i.Failed, i.StillConnected, i.RSSBeforeKB, i.RSSAfterKB)
				w(" (file-backed %+d KB)", i.RSSFileAfterKB-i.RSSFileBeforeKB)
				if i.RSSReleasedKB > 0 {
					w(" → %d KB after close", i.RSSReleasedKB)
				}
				if g0, g1 := i.GoBefore, i.GoAfter; g0 != nil && g1 != nil && i.Connected > 0 {
					per := func(a, b int64) float64 { return float64(b-a) / 1024 / float64(i.Connected) }
					w(" (Go runtime per connection while open: heap in use %.1f KB, stacks %.1f KB)",
						per(g0.HeapInuse, g1.HeapInuse), per(g0.StackInuse, g1.StackInuse))
				}
				if g0, g1 := i.GoBefore, i.GoReleased; g0 != nil && g1 != nil {
					w(" (after close and a GC, Go heap in use %+d KB, stacks %+d KB, free heap not yet returned to the OS %+d KB)",
						(g1.HeapInuse-g0.HeapInuse)/1024, (g1.StackInuse-g0.StackInuse)/1024,
						((g1.HeapIdle-g1.HeapReleased)-(g0.HeapIdle-g0.HeapReleased))/1024)
				}
				if len(i.Errors) > 0 {
					w(", errors %v", i.Errors)
				}
				w(";")
			}
		}
		for _, s := range []*sessionResult{r.Polling, r.WS} {
			if s != nil && len(s.Failures) > 0 {
				w(" session failures: %v;", s.Failures)
			}
		}
		for _, e := range r.Errors {
			w(" ERROR %s;", e)
		}
		w("\n")
	}
	return sb.String()
}

// write saves the report, with the machine it ran on, and the raw results
// to bench/out.
func (b *bench) write(report string, results []*result) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# flaskedge benchmark, %s\n\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "Command: `make bench` (go run ./bench %s)\n\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&sb, "Machine: %s\n\n", machine())
	fmt.Fprintf(&sb, "Versions: %s\n\n", b.versions())
	sb.WriteString(report)
	if err := os.WriteFile(filepath.Join(b.out, "results.md"), []byte(sb.String()), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(struct {
		Settings settings  `json:"settings"`
		Results  []*result `json:"results"`
	}{b.settings, results}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.out, "results.json"), js, 0o644)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		_, _ = fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB RAM", math.Round(float64(kb)/(1<<20)))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d cores (%s)%s, Linux %s, %s/%s", runtime.NumCPU(), model, mem,
		strings.TrimSpace(string(kernel)), runtime.GOOS, runtime.GOARCH)
}

func (b *bench) versions() string {
	var v []string
	add := func(name string, args ...string) {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		v = append(v, name+" "+strings.TrimSpace(line))
	}
	if b.nginx != "" {
		add("nginx", b.nginx, "-v")
	}
	if b.haproxy != "" {
		add("haproxy", b.haproxy, "-v")
	}
	add("caddy", b.caddy, "version")
	v = append(v, "flaskedge "+b.revision())
	add("node", b.node, "--version")
	if js, err := os.ReadFile(filepath.Join(b.root, "node_modules", "socket.io", "package.json")); err == nil {
		var p struct{ Version string }
		if json.Unmarshal(js, &p) == nil {
			v = append(v, "socket.io "+p.Version)
		}
	}
	sort.Strings(v)
	return strings.Join(v, "; ")
}

// revision names the flaskedge code measured: the VCS stamp of the Caddy
// binary, or, when it was built without one (-buildvcs=false), the
// checkout it was built from.
func (b *bench) revision() string {
	rev, modified := "", false
	if info, err := buildinfo.ReadFile(b.caddy); err == nil {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev == "" {
		out, err := exec.Command("git", "-C", b.root, "rev-parse", "HEAD").Output()
		if err != nil {
			return "(unknown revision)"
		}
		rev = strings.TrimSpace(string(out))
		status, _ := exec.Command("git", "-C", b.root, "status", "--porcelain", "--untracked-files=no").Output()
		modified = len(strings.TrimSpace(string(status))) > 0
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += " with uncommitted changes"
	}
	return rev
}
