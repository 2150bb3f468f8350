// Command bench measures the edge (socketio_proxy) against the proxies
// people put in front of Socket.IO servers today: nginx with ip_hash,
// HAProxy with balance source, and Caddy's own reverse_proxy with ip_hash;
// and the edge once more with `recover 30s` (edge+recover), where it
// terminates Engine.IO itself and keeps one WebSocket per session to the
// backend whatever the client's transport.
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
//	idle      2,000 idle Socket.IO WebSocket connections opened 100 at a
//	          time: the growth of the proxy's resident memory per
//	          connection;
//	burst     the same 2,000 opened all at once (a reconnect storm):
//	          resident memory per connection, then, once they have closed
//	          and -release-wait has passed, how much of the growth the
//	          proxy keeps;
//	polling   50 polling-only connections doing sequential acknowledged
//	          echoes as in echo: p50/p99 round trip and the proxy's CPU
//	          per echo (one event and its ack) and per HTTP request the
//	          clients completed (GET polls and POSTs);
//	poll-idle 2,000 idle polling sessions, opened 100 at a time as the idle
//	          WebSockets are: resident memory per session;
//	burst-large (-idle-conns-large N, off by default, make bench-large)
//	          the burst with N connections, from several load processes.
//
// During the echo and polling runs of the edge rows it fetches a CPU
// profile from Caddy's admin endpoint, and after the idle run a heap
// profile of every Caddy, into bench/out/<contender>-<row>.pprof.
//
// It prints two markdown tables and writes them, with the raw figures, to
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
	"sync"
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
	// ReleaseWait is how long after the burst's connections closed the
	// proxy's memory is read again.
	ReleaseWait    time.Duration `json:"release_wait"`
	IdleConnsLarge int           `json:"idle_conns_large,omitempty"`
	PollConns      int           `json:"poll_conns"`
	PollIdleConns  int           `json:"poll_idle_conns"`
	// Rounds is how many times the echo and polling measurements run
	// for each contender, the contenders taking turns (A B C, A B C, ...)
	// so that what disturbs the machine for a while falls on all of
	// them; the tables give each figure's median over the rounds.
	Rounds int `json:"rounds"`
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
	caddy0  string // bin/caddy as given, for go tool pprof (caddy is a copy)
	nginx   string
	haproxy string
	node    string
	hz      int64 // clock ticks per second of utime/stime

	profMu          sync.Mutex
	profilesWritten []string // the .pprof files of this run
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
	flag.DurationVar(&b.ReleaseWait, "release-wait", 10*time.Second,
		"how long after the burst's connections closed the proxy's memory is read again")
	flag.IntVar(&b.IdleConnsLarge, "idle-conns-large", 0,
		"also run the burst with this many connections (e.g. 20000; 0: not run)")
	flag.IntVar(&b.Rounds, "rounds", 3,
		"rounds of the echo and polling measurements, contenders taking turns; the tables give the median")
	flag.IntVar(&b.PollConns, "poll-conns", 50, "polling-only connections in the polling measurement")
	flag.IntVar(&b.PollIdleConns, "poll-idle-conns", 2000,
		"idle polling sessions in the poll-idle measurement (as many as idle WebSockets: a fixed cost shared by fewer would count against polling)")
	flag.StringVar(&proxyList, "proxies", proxyKeys(), "contenders, in order")
	sc := addScaleFlags()
	flag.Parse()
	b.Proxies = strings.Split(proxyList, ",")
	if b.Rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
		return 2
	}
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
	if len(b.profilesWritten) > 0 {
		fmt.Printf("profiles (go tool pprof -top %s <file>):\n", b.caddy0)
		for _, p := range b.profilesWritten {
			fmt.Printf("  %s\n", p)
		}
	}
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
	b.caddy0 = b.caddy
	if b.node, err = exec.LookPath("node"); err != nil {
		return errors.New("node is not installed (make deps)")
	}
	for _, key := range b.Proxies {
		switch key {
		case "nginx":
			b.nginx, err = lookSbin("nginx")
		case "haproxy":
			b.haproxy, err = lookSbin("haproxy")
		case "caddy", "caddy4k", "edge", "edge-recover":
		default:
			return fmt.Errorf("unknown proxy %q in -proxies; choose from %s", key, proxyKeys())
		}
		if err != nil {
			return fmt.Errorf("%s is not installed: apt-get install -y nginx-light haproxy (bench/deps.sh does it)", key)
		}
	}
	b.hz = clockTicks()
	// Every process the run starts inherits the limit: a load process
	// holds one descriptor per WebSocket, a proxy two.
	if err := raiseFileLimit(); err != nil {
		return err
	}
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
	// Burst is Idle with every connection opened at once, BurstLarge the
	// same with -idle-conns-large connections.
	Burst      *idleResult `json:"burst,omitempty"`
	BurstLarge *idleResult `json:"burst_large,omitempty"`
	Poll       *echoResult `json:"polling_echo,omitempty"`
	PollIdle   *idleResult `json:"polling_idle,omitempty"`
	// EchoRounds and PollRounds are the echo and polling measurements'
	// further rounds (-rounds); Echo and Poll are the first, during
	// which the edge's CPU profile is taken.
	EchoRounds []*echoResult `json:"echo_rounds,omitempty"`
	PollRounds []*echoResult `json:"polling_echo_rounds,omitempty"`
	Errors     []string      `json:"errors,omitempty"`
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
	// Requests is the HTTP requests the polling clients completed in the
	// window; 0 over WebSocket.
	Requests     int     `json:"requests,omitempty"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	UsPerFrame   float64 `json:"cpu_us_per_frame"`
	UsPerEcho    float64 `json:"cpu_us_per_echo"`
	UsPerRequest float64 `json:"cpu_us_per_request,omitempty"`
}

type idleResult struct {
	Connected      int            `json:"connected"`
	Failed         int            `json:"failed"`
	Errors         map[string]int `json:"errors"`
	StillConnected int            `json:"still_connected"`
	RSSBeforeKB    int64          `json:"rss_before_kb"`
	RSSAfterKB     int64          `json:"rss_after_kb"`
	KBPerConn      float64        `json:"kb_per_conn"`
	// RSSFileBeforeKB and RSSFileAfterKB are the file-backed part of the
	// RSS (see rssFileKB): code paged in, not held per connection.
	RSSFileBeforeKB int64 `json:"rss_file_before_kb"`
	RSSFileAfterKB  int64 `json:"rss_file_after_kb"`
	// RSSReleasedKB is the RSS -release-wait after the connections
	// closed (burst only).
	RSSReleasedKB int64 `json:"rss_released_kb,omitempty"`
	Goroutines    int   `json:"goroutines,omitempty"` // Caddy only
	// The Go runtime's view of the same growth, Caddy only: MemStats
	// from the admin endpoint's /debug/vars before and after.
	GoBefore *goMem `json:"go_before,omitempty"`
	GoAfter  *goMem `json:"go_after,omitempty"`
	// GoReleased is the same after the connections closed, read after
	// the RSS and a GC (burst only): what of the memory kept is still
	// live, and what the runtime holds without having returned it.
	GoReleased *goMem `json:"go_released,omitempty"`
}

// goMem is the part of runtime.MemStats that says where resident memory
// goes.
type goMem struct {
	HeapInuse  int64
	StackInuse int64
	Sys        int64
	NumGC      int64
	// HeapIdle - HeapReleased is heap the runtime holds, free, and has
	// not returned to the OS yet.
	HeapIdle     int64
	HeapReleased int64
	// The runtime's own structures: spans, GC metadata, and the rest
	// (the network poller's descriptors among it).
	MSpanInuse int64
	GCSys      int64
	OtherSys   int64
}

// step is one measurement of a contender, run on a fresh proxy.
type step struct {
	name string
	fn   func(context.Context, *running, string) error
}

func (b *bench) runAll(ctx context.Context) ([]*result, error) {
	var results []*result
	for _, key := range b.Proxies {
		px := proxyByKey(key)
		r := &result{Key: px.key, Label: px.label, Anchor: px.anchor}
		results = append(results, r)
		steps := []step{
			{"sessions-polling", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Polling, err = b.sessions(ctx, rp, dir, "polling")
				return err
			}},
			{"sessions-websocket", func(ctx context.Context, rp *running, dir string) (err error) {
				r.WS, err = b.sessions(ctx, rp, dir, "websocket")
				return err
			}},
			{"echo", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Echo, err = b.echo(ctx, rp, dir, "echo", "websocket", b.EchoConns, true)
				return err
			}},
			{"idle", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Idle, err = b.idle(ctx, rp, dir, idleRun{row: "idle", transport: "websocket", conns: b.IdleConns, batch: 100})
				return err
			}},
			{"burst", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Burst, err = b.idle(ctx, rp, dir, idleRun{row: "burst", transport: "websocket", conns: b.IdleConns, batch: b.IdleConns, release: true})
				return err
			}},
			{"polling", func(ctx context.Context, rp *running, dir string) (err error) {
				r.Poll, err = b.echo(ctx, rp, dir, "polling", "polling", b.PollConns, true)
				return err
			}},
			{"poll-idle", func(ctx context.Context, rp *running, dir string) (err error) {
				r.PollIdle, err = b.idle(ctx, rp, dir, idleRun{row: "poll-idle", transport: "polling", conns: b.PollIdleConns, batch: 100})
				return err
			}},
		}
		if b.IdleConnsLarge > 0 {
			steps = append(steps, step{"burst-large", func(ctx context.Context, rp *running, dir string) (err error) {
				r.BurstLarge, err = b.idle(ctx, rp, dir, idleRun{row: "burst-large", transport: "websocket", conns: b.IdleConnsLarge, batch: b.IdleConnsLarge, release: true})
				return err
			}})
		}
		for _, s := range steps {
			if err := b.step(ctx, px, r, s); err != nil {
				return nil, err
			}
		}
	}
	// The further rounds, the contenders taking turns; not profiled.
	for round := 2; round <= b.Rounds; round++ {
		for i, r := range results {
			px := proxyByKey(b.Proxies[i])
			echo := step{fmt.Sprintf("echo-round-%d", round), func(ctx context.Context, rp *running, dir string) error {
				e, err := b.echo(ctx, rp, dir, "echo", "websocket", b.EchoConns, false)
				if e != nil {
					r.EchoRounds = append(r.EchoRounds, e)
				}
				return err
			}}
			poll := step{fmt.Sprintf("polling-round-%d", round), func(ctx context.Context, rp *running, dir string) error {
				e, err := b.echo(ctx, rp, dir, "polling", "polling", b.PollConns, false)
				if e != nil {
					r.PollRounds = append(r.PollRounds, e)
				}
				return err
			}}
			for _, s := range []step{echo, poll} {
				if err := b.step(ctx, px, r, s); err != nil {
					return nil, err
				}
			}
		}
	}
	return results, nil
}

// step runs one measurement of px for r; its failure is recorded in r,
// and only an interruption is returned.
func (b *bench) step(ctx context.Context, px proxy, r *result, s step) error {
	fmt.Fprintf(os.Stderr, "bench: %s: %s\n", px.key, s.name)
	err := b.measure(ctx, px, s.name, s.fn)
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s: %s failed: %v\n", px.key, s.name, err)
		r.Errors = append(r.Errors, s.name+": "+firstLine(err.Error()))
	}
	return nil
}

func proxyByKey(key string) proxy {
	for _, p := range proxies {
		if p.key == key {
			return p
		}
	}
	return proxy{}
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
	p, stdout, err := b.procs.start("load "+name, filepath.Join(dir, "load-"+name+".log"), cmd, true)
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

// echo: latency of acknowledged echoes over one transport, and the
// proxy's CPU per frame, per echo and (polling) per HTTP request. On the
// edge rows a CPU profile of the window goes to bench/out/<key>-<row>.pprof.
func (b *bench) echo(ctx context.Context, rp *running, dir, row, transport string, conns int, profile bool) (*echoResult, error) {
	l, err := b.startLoad(dir, row, map[string]any{
		"mode": "echo", "url": b.url(rp), "transport": transport, "conns": conns,
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
		return nil, fmt.Errorf("%d of %d %s connections failed: %v", ready.Failed, conns, transport, ready.Errors)
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
	var profiled chan error
	if profile && rp.edge && rp.adminAddr != "" {
		// Most of the window, so that the profile ends before it does.
		secs := max(1, int(b.EchoDuration.Seconds())-1)
		profiled = make(chan error, 1)
		go func() {
			profiled <- b.fetchProfile(rp, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), rp.key+"-"+row+".pprof")
		}()
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
	if res.Echoes > 0 {
		res.UsPerEcho = res.CPUSeconds * 1e6 / float64(res.Echoes)
	}
	if res.Requests > 0 {
		res.UsPerRequest = res.CPUSeconds * 1e6 / float64(res.Requests)
	}
	if profiled != nil {
		if err := <-profiled; err != nil {
			return &res, err
		}
	}
	return &res, nil
}

// idleRun is one idle-memory measurement: conns sessions of one
// transport, opened batch at a time.
type idleRun struct {
	row       string
	transport string
	conns     int
	batch     int
	// release: after the connections closed, wait -release-wait and
	// read the proxy's memory again.
	release bool
}

// loadConns is the most connections one load process opens: above it the
// run is split over several, each within the open-file limit and one
// core's worth of JavaScript.
const loadConns = 5000

// idle: resident memory per idle connection.
func (b *bench) idle(ctx context.Context, rp *running, dir string, run idleRun) (*idleResult, error) {
	ps, err := pids(rp.p, rp.children)
	if err != nil {
		return nil, err
	}
	// Let the fresh proxy finish starting up before the baseline.
	if err := sleepCtx(ctx, time.Second); err != nil {
		return nil, err
	}
	res := idleResult{Errors: map[string]int{}}
	if res.RSSBeforeKB, err = rssKB(ps); err != nil {
		return nil, err
	}
	if res.RSSFileBeforeKB, err = rssFileKB(ps); err != nil {
		return nil, err
	}
	if rp.adminAddr != "" {
		if res.GoBefore, err = memStats(rp.adminAddr); err != nil {
			return nil, err
		}
	}
	var loads []*load
	defer func() {
		for _, l := range loads {
			l.p.stop()
		}
	}()
	for start := 0; start < run.conns; start += loadConns {
		n := min(loadConns, run.conns-start)
		l, err := b.startLoad(dir, fmt.Sprintf("%s-%d", run.row, len(loads)), map[string]any{
			"mode": "idle", "url": b.url(rp), "transport": run.transport, "conns": n, "batch": min(n, run.batch),
		})
		if err != nil {
			return nil, err
		}
		loads = append(loads, l)
	}
	for _, l := range loads {
		var ready idleResult
		if err := l.next(ctx, 5*time.Minute, &ready); err != nil {
			return nil, err
		}
		res.Connected += ready.Connected
		res.Failed += ready.Failed
		for k, v := range ready.Errors {
			res.Errors[k] += v
		}
	}
	if err := sleepCtx(ctx, b.IdleWait); err != nil {
		return nil, err
	}
	if res.RSSAfterKB, err = rssKB(ps); err != nil {
		return nil, err
	}
	if res.RSSFileAfterKB, err = rssFileKB(ps); err != nil {
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
		switch run.row {
		case "idle":
			if err := b.profiles(rp, rp.key+"-idle.pprof", "goroutine-"+rp.key+".txt"); err != nil {
				return nil, err
			}
			res.Goroutines = goroutines(filepath.Join(b.out, "goroutine-"+rp.key+".txt"))
		case "poll-idle":
			if err := b.profiles(rp, rp.key+"-poll-idle.pprof", "goroutine-"+rp.key+"-poll-idle.txt"); err != nil {
				return nil, err
			}
			res.Goroutines = goroutines(filepath.Join(b.out, "goroutine-"+rp.key+"-poll-idle.txt"))
		}
	}
	for _, l := range loads {
		if err := l.send("close"); err != nil {
			return nil, err
		}
	}
	for _, l := range loads {
		var end struct{ StillConnected int }
		if err := l.next(ctx, time.Minute, &end); err != nil {
			return nil, err
		}
		res.StillConnected += end.StillConnected
	}
	if run.release {
		if err := sleepCtx(ctx, b.ReleaseWait); err != nil {
			return nil, err
		}
		if res.RSSReleasedKB, err = rssKB(ps); err != nil {
			return nil, err
		}
		if rp.adminAddr != "" {
			// The heap profile's gc=1 collects first.
			if err := b.fetchProfile(rp, "/debug/pprof/heap?gc=1", rp.key+"-"+run.row+"-closed.pprof"); err != nil {
				return nil, err
			}
			if res.GoReleased, err = memStats(rp.adminAddr); err != nil {
				return nil, err
			}
		}
	}
	if res.Failed > 0 {
		return &res, fmt.Errorf("%d of %d %s connections failed: %v", res.Failed, run.conns, run.row, res.Errors)
	}
	return &res, nil
}

// maxConns is the most connections one measurement holds at once.
func (b *bench) maxConns() int {
	return max(b.IdleConns, b.IdleConnsLarge, b.PollIdleConns, b.Sessions)
}

// profiles saves the Caddy process's heap profile (after a GC) and its
// goroutines, from the admin endpoint, to bench/out.
func (b *bench) profiles(rp *running, heap, goroutine string) error {
	if err := b.fetchProfile(rp, "/debug/pprof/heap?gc=1", heap); err != nil {
		return err
	}
	return b.fetchProfile(rp, "/debug/pprof/goroutine?debug=1", goroutine)
}

// fetchProfile saves what the admin endpoint serves at path to
// bench/out/file, and notes the file for the report.
func (b *bench) fetchProfile(rp *running, path, file string) error {
	resp, err := http.Get("http://" + rp.adminAddr + path)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin %s: %s", path, resp.Status)
	}
	out := filepath.Join(b.out, file)
	if err := os.WriteFile(out, body, 0o644); err != nil {
		return err
	}
	if strings.HasSuffix(file, ".pprof") {
		b.profMu.Lock()
		b.profilesWritten = append(b.profilesWritten, out)
		b.profMu.Unlock()
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
