// Command bench measures the edge (socketio_proxy) against the proxies
// people put in front of Socket.IO servers today: nginx with ip_hash,
// HAProxy with balance source, and Caddy's own reverse_proxy with ip_hash.
//
// Every contender stands in front of the same two reference backends (the
// Node socket.io server in bench/server.mjs) and gets the same load from
// the Node socket.io-client (bench/load.mjs), one contender at a time and
// a fresh proxy and fresh backends for each measurement:
//
//	sessions  N sessions from one client address, polling-only and then
//	          WebSocket-only: how many complete, and how they spread over
//	          the two backends;
//	echo      50 WebSocket connections doing sequential acknowledged
//	          echoes for a fixed time: p50/p99 round trip, and the proxy's
//	          CPU time (utime+stime) per WebSocket frame it relayed;
//	idle      2,000 idle Socket.IO WebSocket connections: the growth of
//	          the proxy's resident memory per connection.
//
// It prints one markdown table and writes it, with the raw figures, to
// bench/out/. Run it from the repository root with `make bench`; it is
// not a test and takes a few minutes. Every process it starts is stopped
// when it ends, on error and on Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// settings are the knobs of a run; the defaults are what docs/BENCHMARKS.md
// reports.
type settings struct {
	Sessions     int           `json:"sessions"`
	Echoes       int           `json:"echoes_per_session"`
	EchoConns    int           `json:"echo_conns"`
	EchoDuration time.Duration `json:"echo_duration"`
	EchoInterval time.Duration `json:"echo_interval"`
	Payload      int           `json:"payload_bytes"`
	IdleConns    int           `json:"idle_conns"`
	IdleWait     time.Duration `json:"idle_wait"`
	// MemProfileRate, when set, is given to the Caddy processes as
	// GODEBUG=memprofilerate, for an exact heap profile; it costs memory
	// of its own, so the RSS figures of such a run are not comparable.
	MemProfileRate int      `json:"memprofilerate,omitempty"`
	Proxies        []string `json:"proxies"`
}

type bench struct {
	settings
	procs   *procs
	root    string // repository root, where bench/*.mjs and node_modules are
	tmp     string // configs, logs and pid files of this run
	out     string // bench/out
	caddy   string
	nginx   string
	haproxy string
	node    string
	hz      int64 // clock ticks per second of utime/stime
}

func main() {
	os.Exit(run())
}

func run() int {
	var b bench
	var proxyList string
	flag.StringVar(&b.root, "root", ".", "repository root")
	flag.StringVar(&b.caddy, "caddy", "bin/caddy", "Caddy binary with the flaskedge plugin (make build)")
	flag.IntVar(&b.Sessions, "sessions", 200, "sessions per transport in the sessions measurement")
	flag.IntVar(&b.Echoes, "session-echoes", 3, "acknowledged echoes per session in the sessions measurement")
	flag.IntVar(&b.EchoConns, "echo-conns", 50, "WebSocket connections in the echo measurement")
	flag.DurationVar(&b.EchoDuration, "echo-duration", 15*time.Second, "length of the echo measurement")
	flag.DurationVar(&b.EchoInterval, "echo-interval", 20*time.Millisecond,
		"each echo connection starts its next echo this long after the previous one started (0: as soon as the ack arrives)")
	flag.IntVar(&b.Payload, "payload", 64, "bytes of padding in each echo")
	flag.IntVar(&b.IdleConns, "idle-conns", 2000, "connections in the idle-memory measurement")
	flag.DurationVar(&b.IdleWait, "idle-wait", 3*time.Second, "how long the idle connections sit before memory is read")
	flag.IntVar(&b.MemProfileRate, "caddy-memprofilerate", 0,
		"GODEBUG=memprofilerate for Caddy, for an exact heap profile in bench/out (disturbs the RSS figures)")
	flag.StringVar(&proxyList, "proxies", "nginx,haproxy,caddy,caddy4k,edge", "contenders, in order")
	sc := addScaleFlags()
	flag.Parse()
	b.Proxies = strings.Split(proxyList, ",")
	if sc.Scale || sc.Soak > 0 {
		// The scale check and the soak (scale.go) measure the edge alone.
		if err := sc.settle(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		b.Proxies = []string{"edge"}
		sc.Python = "/usr/bin/python3"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b.procs = &procs{}
	defer b.procs.stopAll()

	err := b.setup()
	if b.tmp != "" {
		defer os.RemoveAll(b.tmp)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}

	if sc.Scale || sc.Soak > 0 {
		return b.scale(ctx, sc)
	}
	results, err := b.runAll(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	report := b.report(results)
	fmt.Print(report)
	if err := b.write(report, results); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("\nwritten to %s\n", filepath.Join(b.out, "results.md"))
	return 0
}

// setup finds the binaries and scripts and makes the run's directories.
func (b *bench) setup() error {
	var err error
	if b.root, err = filepath.Abs(b.root); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(b.root, "bench", "load.mjs")); err != nil {
		return errors.New("run from the repository root: make bench")
	}
	if _, err := os.Stat(filepath.Join(b.root, "node_modules", "socket.io", "package.json")); err != nil {
		return errors.New("node_modules/socket.io is missing: run npm ci (make deps)")
	}
	if b.caddy, err = filepath.Abs(b.caddy); err != nil {
		return err
	}
	if _, err := os.Stat(b.caddy); err != nil {
		return fmt.Errorf("no Caddy at %s: run make build", b.caddy)
	}
	if b.node, err = exec.LookPath("node"); err != nil {
		return errors.New("node is not installed (make deps)")
	}
	for _, key := range b.Proxies {
		switch key {
		case "nginx":
			b.nginx, err = lookSbin("nginx")
		case "haproxy":
			b.haproxy, err = lookSbin("haproxy")
		case "caddy", "caddy4k", "edge":
		default:
			return fmt.Errorf("unknown proxy %q in -proxies; choose from nginx,haproxy,caddy,caddy4k,edge", key)
		}
		if err != nil {
			return fmt.Errorf("%s is not installed: apt-get install -y nginx-light haproxy (bench/deps.sh does it)", key)
		}
	}
	b.hz = clockTicks()
	if b.tmp, err = os.MkdirTemp("", "flaskedge-bench-"); err != nil {
		return err
	}
	// Every Caddy of the run is this copy: bin/caddy may be rebuilt while
	// the benchmark runs.
	if b.caddy, err = copyFile(b.caddy, filepath.Join(b.tmp, "caddy")); err != nil {
		return err
	}
	b.out = filepath.Join(b.root, "bench", "out")
	return os.MkdirAll(b.out, 0o755)
}

func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}

// lookSbin finds a daemon that Debian installs in /usr/sbin, which is not
// on every user's PATH.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	_, err := os.Stat(p)
	return p, err
}

// result is one contender's figures. A measurement that failed leaves its
// part nil and its error in Errors.
type result struct {
	Key     string         `json:"key"`
	Label   string         `json:"label"`
	Anchor  bool           `json:"anchor"`
	Polling *sessionResult `json:"polling,omitempty"`
	WS      *sessionResult `json:"websocket,omitempty"`
	Echo    *echoResult    `json:"echo,omitempty"`
	Idle    *idleResult    `json:"idle,omitempty"`
	Errors  []string       `json:"errors,omitempty"`
}

type sessionResult struct {
	Sessions  int            `json:"sessions"`
	Completed int            `json:"completed"`
	Backends  map[string]int `json:"backends"`
	Failures  map[string]int `json:"failures"`
}

type echoResult struct {
	Connected int     `json:"connected"`
	Echoes    int     `json:"echoes"`
	Failures  int     `json:"failures"`
	Seconds   float64 `json:"seconds"`
	LatencyMs struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latencyMs"`
	Frames struct {
		Sent     int `json:"sent"`
		Received int `json:"received"`
	} `json:"frames"`
	CPUSeconds float64 `json:"cpu_seconds"`
	UsPerFrame float64 `json:"cpu_us_per_frame"`
}

type idleResult struct {
	Connected      int            `json:"connected"`
	Failed         int            `json:"failed"`
	Errors         map[string]int `json:"errors"`
	StillConnected int            `json:"still_connected"`
	RSSBeforeKB    int64          `json:"rss_before_kb"`
	RSSAfterKB     int64          `json:"rss_after_kb"`
	KBPerConn      float64        `json:"kb_per_conn"`
	Goroutines     int            `json:"goroutines,omitempty"` // Caddy only
	// The Go runtime's view of the same growth, Caddy only: MemStats
	// from the admin endpoint's /debug/vars before and after.
	GoBefore *goMem `json:"go_before,omitempty"`
	GoAfter  *goMem `json:"go_after,omitempty"`
}

// goMem is the part of runtime.MemStats that says where resident memory
// goes.
type goMem struct {
	HeapInuse  int64
	StackInuse int64
	Sys        int64
	NumGC      int64
}

func (b *bench) runAll(ctx context.Context) ([]*result, error) {
	var results []*result
	for _, key := range b.Proxies {
		var px proxy
		for _, p := range proxies {
			if p.key == key {
				px = p
			}
		}
		r := &result{Key: px.key, Label: px.label, Anchor: px.anchor}
		results = append(results, r)
		steps := []struct {
			name string
			fn   func(context.Context, *running, string) error
		}{
			{"sessions-polling", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Polling, err = b.sessions(ctx, rp, dir, "polling")
				return err
			}},
			{"sessions-websocket", func(ctx context.Context, rp *running, dir string) (err error) {
				r.WS, err = b.sessions(ctx, rp, dir, "websocket")
				return err
			}},
			{"echo", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Echo, err = b.echo(ctx, rp, dir)
				return err
			}},
			{"idle", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Idle, err = b.idle(ctx, rp, dir)
				return err
			}},
		}
		for _, s := range steps {
			fmt.Fprintf(os.Stderr, "bench: %s: %s\n", px.key, s.name)
			err := b.measure(ctx, px, s.name, s.fn)
			if ctx.Err() != nil {
				return nil, errors.New("interrupted")
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s: %s failed: %v\n", px.key, s.name, err)
				r.Errors = append(r.Errors, s.name+": "+firstLine(err.Error()))
			}
		}
	}
	return results, nil
}

// measure runs one measurement against a fresh proxy in front of fresh
// backends, and stops them all afterwards.
func (b *bench) measure(ctx context.Context, px proxy, name string, fn func(context.Context, *running, string) error) error {
	dir := filepath.Join(b.tmp, px.key+"-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var backends [2]string
	for i, n := range []string{"a", "b"} {
		cmd := exec.Command(b.node, filepath.Join(b.root, "bench", "server.mjs"), n)
		cmd.Dir = b.root
		p, stdout, err := b.procs.start("backend "+n, filepath.Join(dir, "backend-"+n+".log"), cmd, true)
		if err != nil {
			return err
		}
		defer p.stop()
		line, err := nextLine(ctx, p, lines(stdout), 15*time.Second)
		if err != nil {
			return err
		}
		var ready struct{ Port int }
		if err := json.Unmarshal([]byte(line), &ready); err != nil || ready.Port == 0 {
			return fmt.Errorf("backend %s said %q instead of its port", n, line)
		}
		backends[i] = fmt.Sprintf("127.0.0.1:%d", ready.Port)
	}
	rp, err := b.startProxy(ctx, px, dir, backends)
	if err != nil {
		return err
	}
	defer rp.p.stop()
	if err := fn(ctx, rp, dir); err != nil {
		return err
	}
	if rp.p.exited() {
		return fmt.Errorf("%s exited during the measurement\n%s", px.key, rp.p.tail())
	}
	return nil
}

// load is a running bench/load.mjs.
type load struct {
	p     *proc
	out   <-chan string
	stdin io.WriteCloser
}

func (b *bench) startLoad(dir, name string, cfg map[string]any) (*load, error) {
	js, _ := json.Marshal(cfg)
	cmd := exec.Command(b.node, filepath.Join(b.root, "bench", "load.mjs"), string(js))
	cmd.Dir = b.root
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p, stdout, err := b.procs.start("load "+name, filepath.Join(dir, "load.log"), cmd, true)
	if err != nil {
		return nil, err
	}
	return &load{p: p, out: lines(stdout), stdin: stdin}, nil
}

// next decodes the load's next JSON line into v.
func (l *load) next(ctx context.Context, timeout time.Duration, v any) error {
	line, err := nextLine(ctx, l.p, l.out, timeout)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(line), v); err != nil {
		return fmt.Errorf("load said %q: %v", line, err)
	}
	return nil
}

func (l *load) send(line string) error {
	_, err := io.WriteString(l.stdin, line+"\n")
	return err
}

func (b *bench) url(rp *running) string { return "http://" + rp.addr }

// sessions: N sessions of one transport from one client address.
func (b *bench) sessions(ctx context.Context, rp *running, dir, transport string) (*sessionResult, error) {
	l, err := b.startLoad(dir, "sessions", map[string]any{
		"mode": "sessions", "url": b.url(rp), "transport": transport,
		"sessions": b.Sessions, "echoes": b.Echoes, "payloadSize": b.Payload,
	})
	if err != nil {
		return nil, err
	}
	defer l.p.stop()
	var res sessionResult
	if err := l.next(ctx, 3*time.Minute, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// echo: latency of acknowledged echoes and the proxy's CPU per frame.
func (b *bench) echo(ctx context.Context, rp *running, dir string) (*echoResult, error) {
	l, err := b.startLoad(dir, "echo", map[string]any{
		"mode": "echo", "url": b.url(rp), "conns": b.EchoConns,
		"durationMs": b.EchoDuration.Milliseconds(), "intervalMs": b.EchoInterval.Milliseconds(),
		"payloadSize": b.Payload,
	})
	if err != nil {
		return nil, err
	}
	defer l.p.stop()
	var ready struct {
		Connected int
		Failed    int
		Errors    map[string]int
	}
	if err := l.next(ctx, 2*time.Minute, &ready); err != nil {
		return nil, err
	}
	if ready.Failed > 0 {
		return nil, fmt.Errorf("%d of %d echo connections failed: %v", ready.Failed, b.EchoConns, ready.Errors)
	}
	ps, err := pids(rp.p, rp.children)
	if err != nil {
		return nil, err
	}
	before, err := cpuTicks(ps)
	if err != nil {
		return nil, err
	}
	if err := l.send("go"); err != nil {
		return nil, err
	}
	var res echoResult
	if err := l.next(ctx, b.EchoDuration+2*time.Minute, &res); err != nil {
		return nil, err
	}
	after, err := cpuTicks(ps)
	if err != nil {
		return nil, err
	}
	frames := res.Frames.Sent + res.Frames.Received
	res.CPUSeconds = float64(after-before) / float64(b.hz)
	if frames > 0 {
		res.UsPerFrame = res.CPUSeconds * 1e6 / float64(frames)
	}
	return &res, nil
}

// idle: resident memory per idle connection.
func (b *bench) idle(ctx context.Context, rp *running, dir string) (*idleResult, error) {
	ps, err := pids(rp.p, rp.children)
	if err != nil {
		return nil, err
	}
	// Let the fresh proxy finish starting up before the baseline.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Second):
	}
	var res idleResult
	if res.RSSBeforeKB, err = rssKB(ps); err != nil {
		return nil, err
	}
	if rp.adminAddr != "" {
		if res.GoBefore, err = memStats(rp.adminAddr); err != nil {
			return nil, err
		}
	}
	l, err := b.startLoad(dir, "idle", map[string]any{"mode": "idle", "url": b.url(rp), "conns": b.IdleConns})
	if err != nil {
		return nil, err
	}
	defer l.p.stop()
	if err := l.next(ctx, 5*time.Minute, &res); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(b.IdleWait):
	}
	if res.RSSAfterKB, err = rssKB(ps); err != nil {
		return nil, err
	}
	if res.Connected > 0 {
		res.KBPerConn = float64(res.RSSAfterKB-res.RSSBeforeKB) / float64(res.Connected)
	}
	if rp.adminAddr != "" {
		// After the memory reading, which fetching profiles would disturb.
		if res.GoAfter, err = memStats(rp.adminAddr); err != nil {
			return nil, err
		}
		if err := b.profiles(rp); err != nil {
			return nil, err
		}
		res.Goroutines = goroutines(filepath.Join(b.out, "goroutine-"+rp.key+".txt"))
	}
	if err := l.send("close"); err != nil {
		return nil, err
	}
	var end struct{ StillConnected int }
	if err := l.next(ctx, time.Minute, &end); err != nil {
		return nil, err
	}
	res.StillConnected = end.StillConnected
	if res.Failed > 0 {
		return &res, fmt.Errorf("%d of %d idle connections failed: %v", res.Failed, b.IdleConns, res.Errors)
	}
	return &res, nil
}

// profiles saves the Caddy process's heap profile (after a GC) and its
// goroutines, from the admin endpoint, to bench/out.
func (b *bench) profiles(rp *running) error {
	for _, f := range []struct{ path, file string }{
		{"/debug/pprof/heap?gc=1", "heap-" + rp.key + ".pb.gz"},
		{"/debug/pprof/goroutine?debug=1", "goroutine-" + rp.key + ".txt"},
	} {
		resp, err := http.Get("http://" + rp.adminAddr + f.path)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("admin %s: %s", f.path, resp.Status)
		}
		if err := os.WriteFile(filepath.Join(b.out, f.file), body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// memStats reads the Go runtime's memory statistics from Caddy's admin
// endpoint.
func memStats(admin string) (*goMem, error) {
	resp, err := http.Get("http://" + admin + "/debug/vars")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var vars struct{ Memstats goMem }
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		return nil, fmt.Errorf("admin /debug/vars: %w", err)
	}
	return &vars.Memstats, nil
}

// goroutines reads the total from a goroutine profile in debug=1 form.
func goroutines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var n int
	_, _ = fmt.Sscanf(string(b), "goroutine profile: total %d", &n)
	return n
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
