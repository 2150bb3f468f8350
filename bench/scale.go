package main

// The scale check and the soak: many long-lived Socket.IO sessions through
// one edge (socketio_proxy) to two real Flask-SocketIO workers
// (examples/flask_app on eventlet, sharing nothing: every message here is
// an acknowledged echo answered by the session's own worker, so no
// message queue is involved), each session sending one acknowledged
// message at a fixed interval. Every message is counted; the edge's (and
// the workers' and the load's) memory and CPU are sampled while it runs.
//
//	go run ./bench -scale            5,000 sessions for 60 s (make scale)
//	go run ./bench -soak 30m         2,000 sessions for 30 min (make soak)
//
// The load is bench/scale.mjs, the Node socket.io-client, in several
// processes so that it can use both cores. The workers run through
// bench/flask_worker.py, which only raises eventlet's connection pool
// (1,024 per process by default; -worker-pool 0 runs app.py as it is).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flaskedge/flaskedge/internal/freeport"
)

// scaleOpts are the flags of -scale and -soak.
type scaleOpts struct {
	Scale      bool          `json:"-"`
	Soak       time.Duration `json:"-"`
	Mode       string        `json:"mode"`
	Sessions   int           `json:"sessions"`
	Duration   time.Duration `json:"duration"`
	Interval   time.Duration `json:"interval"`
	AckTimeout time.Duration `json:"ack_timeout"`
	PerProc    int           `json:"sessions_per_load_process"`
	Batch      int           `json:"connect_batch"`
	Mix        string        `json:"transports"`
	WorkerPool int           `json:"worker_pool"`
	Sample     time.Duration `json:"sample_every"`
	Warmup     time.Duration `json:"warmup,omitempty"`
	Python     string        `json:"-"`
}

func addScaleFlags() *scaleOpts {
	o := &scaleOpts{}
	flag.BoolVar(&o.Scale, "scale", false, "run the scale check instead of the comparison: -scale-sessions sessions for -scale-duration")
	flag.DurationVar(&o.Soak, "soak", 0, "run the soak for this long instead of the comparison, e.g. -soak 30m")
	flag.IntVar(&o.Sessions, "scale-sessions", 0, "sessions of the scale check or soak (default 5000 for -scale, 2000 for -soak)")
	flag.DurationVar(&o.Duration, "scale-duration", time.Minute, "length of the scale check's run")
	flag.DurationVar(&o.Interval, "scale-interval", 0, "each session sends one acknowledged message this often (default 1s for -scale, 5s for -soak)")
	flag.DurationVar(&o.AckTimeout, "scale-ack-timeout", 10*time.Second, "a message not acknowledged within this counts as lost")
	flag.IntVar(&o.PerProc, "scale-per-process", 1250, "sessions per Node load process")
	flag.IntVar(&o.Batch, "scale-batch", 25, "sessions each load process opens at once while connecting")
	flag.StringVar(&o.Mix, "scale-transports", "websocket",
		"transports, session i taking the (i mod n)th: a comma list of websocket, polling, upgrade (polling, then upgraded)")
	flag.IntVar(&o.WorkerPool, "worker-pool", 8000, "eventlet connections per Flask worker (0: examples/flask_app/app.py as it is, 1,024)")
	flag.DurationVar(&o.Sample, "scale-sample", 0, "sample memory and CPU this often (default 5s for -scale, 10s for -soak)")
	flag.DurationVar(&o.Warmup, "soak-warmup", 3*time.Minute, "the soak's first part, excluded when judging whether memory and goroutines stay flat")
	return o
}

// settle fills in the defaults that depend on the mode.
func (o *scaleOpts) settle() error {
	o.Mode = "scale"
	if o.Soak > 0 {
		if o.Scale {
			return errors.New("-scale and -soak are separate runs: give one")
		}
		o.Mode, o.Duration = "soak", o.Soak
	} else {
		o.Warmup = 0
	}
	if o.Sessions == 0 {
		o.Sessions = map[string]int{"scale": 5000, "soak": 2000}[o.Mode]
	}
	if o.Interval == 0 {
		// The soak looks for growth over time, so its load is one the
		// machine carries without queueing: 2,000 sessions at one message a
		// second already saturate two cores (docs/BENCHMARKS.md).
		o.Interval = map[string]time.Duration{"scale": time.Second, "soak": 5 * time.Second}[o.Mode]
	}
	if o.Sample == 0 {
		o.Sample = map[string]time.Duration{"scale": 5 * time.Second, "soak": 10 * time.Second}[o.Mode]
	}
	if o.Sessions < 1 || o.PerProc < 1 || o.Batch < 1 || o.Interval <= 0 || o.Duration <= 0 {
		return errors.New("-scale-sessions, -scale-per-process, -scale-batch, -scale-interval and the duration must be positive")
	}
	for _, t := range strings.Split(o.Mix, ",") {
		if _, ok := transportSets[t]; !ok {
			return fmt.Errorf("-scale-transports: %q is not one of websocket, polling, upgrade", t)
		}
	}
	return nil
}

var transportSets = map[string][]string{
	"websocket": {"websocket"},
	"polling":   {"polling"},
	"upgrade":   nil, // socket.io-client's default
}

// sample is one reading of the processes' footprint; CPU is the share of
// one core used since the previous sample.
type sample struct {
	AtS            float64 `json:"at_s"` // since the load started connecting
	Phase          string  `json:"phase"`
	EdgeRSSKB      int64   `json:"edge_rss_kb"`
	EdgeCPU        float64 `json:"edge_cpu"`
	EdgeGoroutines int     `json:"edge_goroutines"`
	EdgeHeapKB     int64   `json:"edge_heap_inuse_kb"`
	WorkerRSSKB    []int64 `json:"worker_rss_kb"`
	WorkerCPU      []float64
	LoadCPU        float64 `json:"load_cpu"`
	MachineBusy    float64 `json:"machine_busy"` // of all cores, 0..1
	Sent           int     `json:"sent"`
	Acked          int     `json:"acked"`
}

// loadCounts is what scale.mjs counts.
type loadCounts struct {
	Sessions          int            `json:"sessions"`
	Seconds           float64        `json:"seconds"`
	Sent              int            `json:"sent"`
	Acked             int            `json:"acked"`
	TimedOut          int            `json:"timedOut"`
	Failed            int            `json:"failed"`
	Altered           int            `json:"altered"`
	Skipped           int            `json:"skipped"`
	Moved             int            `json:"moved"`
	InFlight          int            `json:"inFlight"`
	Disconnects       int            `json:"disconnects"`
	DisconnectReasons map[string]int `json:"disconnectReasons"`
	Hist              map[string]int `json:"hist,omitempty"`
}

type loadReady struct {
	Connected int            `json:"connected"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors"`
	Workers   map[string]int `json:"workers"`
}

// scaleLoad is one running scale.mjs.
type scaleLoad struct {
	p      *proc
	stdin  io.WriteCloser
	events chan map[string]json.RawMessage // ready, result, closed
	mu     sync.Mutex
	prog   loadCounts // the latest progress line
}

// scaleResult is the run's outcome, written to bench/out/<mode>.json.
type scaleResult struct {
	Date        string         `json:"date"`
	Machine     string         `json:"machine"`
	Versions    string         `json:"versions"`
	Conditions  string         `json:"conditions"`
	Opts        *scaleOpts     `json:"settings"`
	Connected   int            `json:"connected"`
	ConnFailed  int            `json:"connect_failed"`
	ConnErrors  map[string]int `json:"connect_errors"`
	Workers     map[string]int `json:"workers"`
	ConnectSecs float64        `json:"connect_seconds"`
	Expected    int            `json:"expected"`
	Counts      loadCounts     `json:"counts"`
	LatencyMs   struct{ P50, P99, Max float64 }
	Baseline    sample   `json:"baseline"` // before the first session
	Ready       sample   `json:"ready"`    // every session connected
	Samples     []sample `json:"samples"`  // the run
	Window      struct {
		Seconds      float64   `json:"seconds"`
		EdgeCPU      float64   `json:"edge_cpu"`
		WorkerCPU    []float64 `json:"worker_cpu"`
		LoadCPU      float64   `json:"load_cpu"`
		MachineBusy  float64   `json:"machine_busy"`
		EdgeUsPerMsg float64   `json:"edge_us_per_message"`
	} `json:"window"`
	StillConnected  int      `json:"still_connected"`
	GoroutinesAfter int      `json:"edge_goroutines_after_close"`
	Errors          []string `json:"errors,omitempty"`
}

// footprint reads the processes of a scale run.
type footprint struct {
	edge    *running
	workers []*proc
	loads   []*scaleLoad
	hz      int64
	last    struct {
		at                  time.Time
		edge, load          int64
		workers             []int64
		machBusy, machTotal int64
	}
}

func (f *footprint) read(phase string, since time.Time) (sample, error) {
	now := time.Now()
	s := sample{AtS: math.Round(now.Sub(since).Seconds()*10) / 10, Phase: phase}
	var err error
	if s.EdgeRSSKB, err = rssKB([]int{f.edge.p.pid()}); err != nil {
		return s, err
	}
	edgeTicks, err := cpuTicks([]int{f.edge.p.pid()})
	if err != nil {
		return s, err
	}
	var loadTicks int64
	for _, l := range f.loads {
		t, err := cpuTicks([]int{l.p.pid()})
		if err == nil {
			loadTicks += t
		}
	}
	workerTicks := make([]int64, len(f.workers))
	for i, w := range f.workers {
		rss, _ := rssKB([]int{w.pid()})
		s.WorkerRSSKB = append(s.WorkerRSSKB, rss)
		workerTicks[i], _ = cpuTicks([]int{w.pid()})
	}
	busy, total := machineTicks()
	if !f.last.at.IsZero() {
		secs := now.Sub(f.last.at).Seconds()
		share := func(d int64) float64 { return math.Round(float64(d)/float64(f.hz)/secs*1000) / 1000 }
		s.EdgeCPU = share(edgeTicks - f.last.edge)
		s.LoadCPU = share(loadTicks - f.last.load)
		for i := range workerTicks {
			s.WorkerCPU = append(s.WorkerCPU, share(workerTicks[i]-f.last.workers[i]))
		}
		if total > f.last.machTotal {
			s.MachineBusy = math.Round(float64(busy-f.last.machBusy)/float64(total-f.last.machTotal)*1000) / 1000
		}
	}
	f.last.at, f.last.edge, f.last.load, f.last.workers = now, edgeTicks, loadTicks, workerTicks
	f.last.machBusy, f.last.machTotal = busy, total
	s.EdgeGoroutines, _ = adminGoroutines(f.edge.adminAddr)
	if m, err := memStats(f.edge.adminAddr); err == nil {
		s.EdgeHeapKB = m.HeapInuse / 1024
	}
	for _, l := range f.loads {
		l.mu.Lock()
		s.Sent += l.prog.Sent
		s.Acked += l.prog.Acked
		l.mu.Unlock()
	}
	return s, nil
}

// machineTicks is the busy and total time of all cores from /proc/stat.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// adminGoroutines reads go_goroutines from Caddy's admin /metrics.
func adminGoroutines(admin string) (int, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int(n), err
		}
	}
	return 0, errors.New("admin /metrics has no go_goroutines")
}

// scale runs the scale check or the soak and prints its report.
func (b *bench) scale(ctx context.Context, o *scaleOpts) int {
	res, err := b.runScale(ctx, o)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 1
	}
	if res == nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	report := scaleReport(res)
	fmt.Print(report)
	js, _ := json.MarshalIndent(res, "", "  ")
	md := filepath.Join(b.out, o.Mode+".md")
	if err := errors.Join(os.WriteFile(md, []byte(report), 0o644),
		os.WriteFile(filepath.Join(b.out, o.Mode+".json"), js, 0o644)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("\nwritten to %s\n", md)
	if err != nil || len(res.Errors) > 0 {
		return 1
	}
	return 0
}

func (b *bench) runScale(ctx context.Context, o *scaleOpts) (*scaleResult, error) {
	if err := raiseFileLimit(); err != nil {
		return nil, err
	}
	if err := exec.Command(o.Python, "-c", "import flask_socketio, eventlet").Run(); err != nil {
		return nil, fmt.Errorf("%s cannot import flask_socketio and eventlet: apt-get install python3-flask-socketio python3-eventlet (make deps)", o.Python)
	}
	dir := filepath.Join(b.tmp, o.Mode)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &scaleResult{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Versions: b.versions(), Conditions: conditions(), Opts: o}

	// Two workers on fresh ports, then the edge in front of them.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	var backends [2]string
	var workers []*proc
	for i, name := range []string{"a", "b"} {
		port, err := freeport.Get()
		if err != nil {
			return nil, err
		}
		args := []string{filepath.Join(b.root, "examples", "flask_app", "app.py")}
		if o.WorkerPool > 0 {
			args = []string{filepath.Join(b.root, "bench", "flask_worker.py"), strconv.Itoa(o.WorkerPool)}
		}
		cmd := exec.Command(o.Python, args...)
		cmd.Dir = b.root
		cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "FLASK_SECRET_KEY="+hex.EncodeToString(key),
			"FLASK_HOST=127.0.0.1", "FLASK_PORT="+strconv.Itoa(port), "WORKER_NAME="+name, "REDIS_URL=")
		p, _, err := b.procs.start("worker "+name, filepath.Join(dir, "worker-"+name+".log"), cmd, false)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		workers = append(workers, p)
		backends[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	for i, p := range workers {
		if err := waitHTTP(ctx, p, "http://"+backends[i]+"/healthz", 90*time.Second); err != nil {
			return nil, err
		}
	}
	var edgeProxy proxy
	for _, p := range proxies {
		if p.key == "edge" {
			edgeProxy = p
		}
	}
	edge, err := b.startProxy(ctx, edgeProxy, dir, backends)
	if err != nil {
		return nil, err
	}
	defer edge.p.stop()

	// The load processes.
	fp := &footprint{edge: edge, workers: workers, hz: b.hz}
	var mix [][]string
	for _, t := range strings.Split(o.Mix, ",") {
		mix = append(mix, transportSets[t])
	}
	for first := 0; first < o.Sessions; first += o.PerProc {
		n := min(o.PerProc, o.Sessions-first)
		progress := o.Sample.Milliseconds()
		l, err := b.startScaleLoad(dir, len(fp.loads), map[string]any{
			"url": b.url(edge), "sessions": n, "first": first, "transportMix": mix, "batch": o.Batch,
			"durationMs": o.Duration.Milliseconds(), "intervalMs": o.Interval.Milliseconds(),
			"ackTimeoutMs": o.AckTimeout.Milliseconds(), "progressMs": progress,
		})
		if err != nil {
			return nil, err
		}
		defer l.p.stop()
		fp.loads = append(fp.loads, l)
	}
	start := time.Now()
	if res.Baseline, err = fp.read("baseline", start); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: %s: connecting %d sessions (%s) from %d load processes\n", o.Mode, o.Sessions, o.Mix, len(fp.loads))

	// Sampling runs from the first connection to the end of the run.
	phase := make(chan string, 1)
	phase <- "connect"
	stopSampling := make(chan struct{})
	samplingDone := make(chan struct{})
	var samplingErr error
	go func() {
		defer close(samplingDone)
		tick := time.NewTicker(o.Sample)
		defer tick.Stop()
		cur := <-phase
		for {
			select {
			case <-stopSampling:
				return
			case p := <-phase:
				cur = p
			case <-tick.C:
				s, err := fp.read(cur, start)
				if err != nil {
					samplingErr = err
					return
				}
				res.Samples = append(res.Samples, s)
				if o.Mode == "soak" || cur != "connect" {
					fmt.Fprintf(os.Stderr, "bench: %s %6.0fs edge rss %d KB, cpu %.2f, goroutines %d; sent %d acked %d\n",
						cur, s.AtS, s.EdgeRSSKB, s.EdgeCPU, s.EdgeGoroutines, s.Sent, s.Acked)
				}
			}
		}
	}()
	defer func() {
		select {
		case <-samplingDone:
		default:
			close(stopSampling)
			<-samplingDone
		}
	}()

	// Every load says ready once its sessions are connected.
	res.ConnErrors, res.Workers = map[string]int{}, map[string]int{}
	for _, l := range fp.loads {
		var r loadReady
		if err := l.next(ctx, "ready", 10*time.Minute, &r); err != nil {
			return nil, err
		}
		res.Connected += r.Connected
		res.ConnFailed += r.Failed
		for k, v := range r.Errors {
			res.ConnErrors[k] += v
		}
		for k, v := range r.Workers {
			res.Workers[k] += v
		}
	}
	res.ConnectSecs = math.Round(time.Since(start).Seconds()*10) / 10
	fmt.Fprintf(os.Stderr, "bench: %s: %d connected, %d failed in %.1fs %v %v\n",
		o.Mode, res.Connected, res.ConnFailed, res.ConnectSecs, res.Workers, res.ConnErrors)
	// Let the last handshakes' garbage settle before the reading.
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	if res.Ready, err = fp.read("ready", start); err != nil {
		return nil, err
	}
	phase <- "run"
	for _, l := range fp.loads {
		if err := l.send("go"); err != nil {
			return nil, err
		}
	}
	winStart := fp.last
	winAt := time.Now()
	res.Expected = res.Connected * int(o.Duration/o.Interval)

	res.Counts.DisconnectReasons = map[string]int{}
	hist := map[int]int{}
	for _, l := range fp.loads {
		var c loadCounts
		if err := l.next(ctx, "result", o.Duration+o.AckTimeout+5*time.Minute, &c); err != nil {
			return res, err
		}
		addCounts(&res.Counts, c)
		for k, v := range c.Hist {
			i, _ := strconv.Atoi(k)
			hist[i] += v
		}
	}
	close(stopSampling)
	<-samplingDone
	if samplingErr != nil {
		return res, samplingErr
	}
	end, err := fp.read("end", start)
	if err != nil {
		return res, err
	}
	res.Samples = append(res.Samples, end)
	secs := time.Since(winAt).Seconds()
	w := &res.Window
	w.Seconds = math.Round(secs*10) / 10
	share := func(d int64) float64 { return math.Round(float64(d)/float64(b.hz)/secs*1000) / 1000 }
	w.EdgeCPU = share(fp.last.edge - winStart.edge)
	w.LoadCPU = share(fp.last.load - winStart.load)
	for i := range fp.last.workers {
		w.WorkerCPU = append(w.WorkerCPU, share(fp.last.workers[i]-winStart.workers[i]))
	}
	if d := fp.last.machTotal - winStart.machTotal; d > 0 {
		w.MachineBusy = math.Round(float64(fp.last.machBusy-winStart.machBusy)/float64(d)*1000) / 1000
	}
	if res.Counts.Acked > 0 {
		w.EdgeUsPerMsg = math.Round(float64(fp.last.edge-winStart.edge)/float64(b.hz)*1e6/float64(res.Counts.Acked)*10) / 10
	}
	res.Counts.Hist = nil
	res.LatencyMs.P50, res.LatencyMs.P99, res.LatencyMs.Max = histPercentile(hist, 50), histPercentile(hist, 99), histPercentile(hist, 100)

	// Close every session; the edge's goroutines should fall back to the
	// baseline.
	for _, l := range fp.loads {
		if err := l.send("close"); err != nil {
			return res, err
		}
	}
	for _, l := range fp.loads {
		var c struct{ StillConnected int }
		if err := l.next(ctx, "closed", 2*time.Minute, &c); err != nil {
			return res, err
		}
		res.StillConnected += c.StillConnected
	}
	if err := sleepCtx(ctx, 5*time.Second); err != nil {
		return res, err
	}
	res.GoroutinesAfter, _ = adminGoroutines(edge.adminAddr)
	if edge.p.exited() {
		return res, fmt.Errorf("the edge exited during the run\n%s", edge.p.tail())
	}
	for i, w := range workers {
		if w.exited() {
			return res, fmt.Errorf("worker %d exited during the run\n%s", i, w.tail())
		}
	}
	return res, nil
}

func addCounts(to *loadCounts, c loadCounts) {
	to.Sessions += c.Sessions
	to.Seconds = max(to.Seconds, c.Seconds)
	to.Sent += c.Sent
	to.Acked += c.Acked
	to.TimedOut += c.TimedOut
	to.Failed += c.Failed
	to.Altered += c.Altered
	to.Skipped += c.Skipped
	to.Moved += c.Moved
	to.Disconnects += c.Disconnects
	for k, v := range c.DisconnectReasons {
		to.DisconnectReasons[k] += v
	}
}

// histPercentile reads scale.mjs's round-trip histogram: bucket i < 1000
// is [i/10, (i+1)/10) ms, bucket 1000+j is [100+j, 101+j) ms. It returns
// the bucket's upper bound.
func histPercentile(hist map[int]int, p float64) float64 {
	keys := make([]int, 0, len(hist))
	total := 0
	for k, v := range hist {
		keys = append(keys, k)
		total += v
	}
	if total == 0 {
		return 0
	}
	sort.Ints(keys)
	rank := int(math.Ceil(p / 100 * float64(total)))
	seen := 0
	for _, k := range keys {
		seen += hist[k]
		if seen >= rank {
			if k < 1000 {
				return float64(k+1) / 10
			}
			return float64(100 + k - 1000 + 1)
		}
	}
	return 0
}

func (b *bench) startScaleLoad(dir string, n int, cfg map[string]any) (*scaleLoad, error) {
	js, _ := json.Marshal(cfg)
	cmd := exec.Command(b.node, filepath.Join(b.root, "bench", "scale.mjs"), string(js))
	cmd.Dir = b.root
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p, stdout, err := b.procs.start(fmt.Sprintf("load %d", n), filepath.Join(dir, fmt.Sprintf("load-%d.log", n)), cmd, true)
	if err != nil {
		return nil, err
	}
	l := &scaleLoad{p: p, stdin: stdin, events: make(chan map[string]json.RawMessage, 4)}
	go func() {
		defer close(l.events)
		for line := range lines(stdout) {
			var m map[string]json.RawMessage
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if string(m["event"]) == `"progress"` {
				var c loadCounts
				if json.Unmarshal([]byte(line), &c) == nil {
					l.mu.Lock()
					l.prog = c
					l.mu.Unlock()
				}
				continue
			}
			l.events <- m
		}
	}()
	return l, nil
}

// next waits for the load's event and decodes it into v.
func (l *scaleLoad) next(ctx context.Context, event string, timeout time.Duration, v any) error {
	select {
	case m, ok := <-l.events:
		if !ok {
			<-l.p.done
			return fmt.Errorf("%s exited (%v) before %q\n%s", l.p.name, l.p.cmd.ProcessState, event, l.p.tail())
		}
		if got := string(m["event"]); got != `"`+event+`"` {
			return fmt.Errorf("%s said %s, expected %q", l.p.name, got, event)
		}
		js, _ := json.Marshal(m)
		if err := json.Unmarshal(js, v); err != nil {
			return err
		}
		if event == "result" {
			// The last figures also serve the samples.
			if c, ok := v.(*loadCounts); ok {
				l.mu.Lock()
				l.prog = *c
				l.mu.Unlock()
			}
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s: no %q within %v\n%s", l.p.name, event, timeout, l.p.tail())
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *scaleLoad) send(line string) error {
	_, err := io.WriteString(l.stdin, line+"\n")
	return err
}

// waitHTTP waits until url answers 200.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited before answering %s\n%s", p.name, url, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s within %v\n%s", p.name, url, timeout, p.tail())
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// raiseFileLimit sets the soft limit of open files to the hard one. The
// processes the run starts inherit it: the edge needs two descriptors per
// proxied session, a load process one (more when polling).
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// conditions are the open-file limit and the machine's load when the run
// starts: the machine is shared.
func conditions() string {
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	load, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(load))
	if len(f) > 3 {
		f = f[:3]
	}
	return fmt.Sprintf("open files %d per process; load average at start %s", lim.Cur, strings.Join(f, " "))
}

// scaleReport is the run's figures as markdown.
func scaleReport(r *scaleResult) string {
	o := r.Opts
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	title := map[string]string{"scale": "Scale check", "soak": "Soak"}[o.Mode]
	p("### %s: %d sessions (%s) through one edge to two Flask-SocketIO workers\n\n", title, o.Sessions, o.Mix)
	p("Each session sends one acknowledged message every %v for %v (ack timeout %v); %d load processes; workers' eventlet pool %s.\n\n",
		o.Interval, o.Duration, o.AckTimeout, (o.Sessions+o.PerProc-1)/o.PerProc, poolName(o.WorkerPool))
	p("%s. %s. %s. %s.\n\n", r.Date, r.Machine, r.Versions, r.Conditions)
	c := r.Counts
	lost := c.Sent - c.Acked
	p("| figure | value |\n|---|---|\n")
	p("| sessions connected | %d of %d in %.1f s %s |\n", r.Connected, o.Sessions, r.ConnectSecs, counts(r.Workers))
	p("| connect failures | %d %s |\n", r.ConnFailed, counts(r.ConnErrors))
	p("| messages expected / sent / acknowledged | %d / %d / %d |\n", r.Expected, c.Sent, c.Acked)
	p("| **lost** (sent, not acknowledged) | **%d** (timed out %d, emit failed %d, altered %d) |\n", lost, c.TimedOut, c.Failed, c.Altered)
	p("| sessions dropped during the run | %d %s; messages not sent because of it: %d |\n", c.Disconnects, counts(c.DisconnectReasons), c.Skipped)
	p("| acks from a worker other than the session's | %d |\n", c.Moved)
	p("| round trip p50 / p99 / max | %.1f / %.1f / %.0f ms |\n", r.LatencyMs.P50, r.LatencyMs.P99, r.LatencyMs.Max)
	peak := r.Ready.EdgeRSSKB
	for _, s := range r.Samples {
		peak = max(peak, s.EdgeRSSKB)
	}
	last := r.Ready
	if n := len(r.Samples); n > 0 {
		last = r.Samples[n-1]
	}
	perSession := 0.0
	if r.Connected > 0 {
		perSession = float64(r.Ready.EdgeRSSKB-r.Baseline.EdgeRSSKB) / float64(r.Connected)
	}
	p("| edge RSS: before / all connected / peak / end of run | %s / %s / %s / %s (%.1f KB per session) |\n",
		mb(r.Baseline.EdgeRSSKB), mb(r.Ready.EdgeRSSKB), mb(peak), mb(last.EdgeRSSKB), perSession)
	p("| edge goroutines: before / all connected / 5 s after every session closed | %d / %d / %d |\n",
		r.Baseline.EdgeGoroutines, r.Ready.EdgeGoroutines, r.GoroutinesAfter)
	w := r.Window
	p("| edge CPU during the run | %.2f cores (%.0f%% of one), %.1f µs per acknowledged message |\n", w.EdgeCPU, w.EdgeCPU*100, w.EdgeUsPerMsg)
	var ws []string
	for i, cpu := range w.WorkerCPU {
		ws = append(ws, fmt.Sprintf("%s %.2f cores, %s", string(rune('a'+i)), cpu, mb(last.WorkerRSSKB[i])))
	}
	p("| workers' CPU during the run, RSS at its end | %s |\n", strings.Join(ws, "; "))
	p("| load (Node) CPU during the run | %.2f cores |\n", w.LoadCPU)
	p("| machine busy during the run (all processes, %d s) | %.0f%% of %d cores |\n", int(w.Seconds), w.MachineBusy*100, runtime.NumCPU())
	p("| sessions still connected at the end | %d |\n", r.StillConnected)
	if o.Mode == "soak" {
		sb.WriteString(soakVerdict(r))
	}
	for _, e := range r.Errors {
		p("\nerror: %s\n", e)
	}
	return sb.String()
}

func poolName(n int) string {
	if n == 0 {
		return "1,024 (app.py as it is)"
	}
	return strconv.Itoa(n)
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func counts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// soakVerdict says whether the edge's RSS and goroutines stayed flat
// after the warm-up: the mean of the last three samples against the mean
// of the first three after it, and the least-squares slope in between.
func soakVerdict(r *scaleResult) string {
	o := r.Opts
	runStart := r.ConnectSecs + 3
	var after []sample
	for _, s := range r.Samples {
		if s.Phase == "run" && s.AtS-runStart >= o.Warmup.Seconds() {
			after = append(after, s)
		}
	}
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("\nEdge over time (every minute; all samples every %v in soak.json):\n\n", o.Sample)
	p("| min | phase | RSS | Go heap in use | goroutines | edge CPU (cores) | messages sent / acked |\n|---|---|---|---|---|---|---|\n")
	next := 0.0
	for _, s := range r.Samples {
		if s.AtS >= next || s.Phase == "end" {
			p("| %.1f | %s | %s | %s | %d | %.2f | %d / %d |\n", s.AtS/60, s.Phase, mb(s.EdgeRSSKB), mb(s.EdgeHeapKB), s.EdgeGoroutines, s.EdgeCPU, s.Sent, s.Acked)
			next = s.AtS + 60 - o.Sample.Seconds()/2
		}
	}
	if len(after) < 6 {
		p("\nToo few samples after the %v warm-up to judge flatness (%d): run longer.\n", o.Warmup, len(after))
		return sb.String()
	}
	rss := func(s sample) float64 { return float64(s.EdgeRSSKB) }
	gor := func(s sample) float64 { return float64(s.EdgeGoroutines) }
	heap := func(s sample) float64 { return float64(s.EdgeHeapKB) }
	first3 := func(f func(sample) float64) float64 { return (f(after[0]) + f(after[1]) + f(after[2])) / 3 }
	last3 := func(f func(sample) float64) float64 {
		n := len(after)
		return (f(after[n-1]) + f(after[n-2]) + f(after[n-3])) / 3
	}
	slope := func(f func(sample) float64) float64 { // per minute
		var sx, sy, sxx, sxy float64
		n := float64(len(after))
		for _, s := range after {
			x := s.AtS / 60
			sx, sy, sxx, sxy = sx+x, sy+f(s), sxx+x*x, sxy+x*f(s)
		}
		return (n*sxy - sx*sy) / (n*sxx - sx*sx)
	}
	span := (after[len(after)-1].AtS - after[0].AtS) / 60
	rssGrowth := (last3(rss) - first3(rss)) / first3(rss)
	gorChange := last3(gor) - first3(gor)
	p("\nAfter the %v warm-up (%.1f min, %d samples):\n\n", o.Warmup, span, len(after))
	p("- RSS %s → %s (%+.1f%%), slope %+.0f KB/min\n", mb(int64(first3(rss))), mb(int64(last3(rss))), rssGrowth*100, slope(rss))
	p("- Go heap in use %s → %s, slope %+.0f KB/min\n", mb(int64(first3(heap))), mb(int64(last3(heap))), slope(heap))
	p("- goroutines %.0f → %.0f (%+.0f), slope %+.2f/min\n", first3(gor), last3(gor), gorChange, slope(gor))
	flat := math.Abs(rssGrowth) < 0.05 && math.Abs(gorChange) <= math.Max(10, 0.005*first3(gor))
	verdict := "**flat**"
	if !flat {
		verdict = "**not flat**"
	}
	p("\nVerdict: %s (the rule: RSS within ±5%% and goroutines within ±max(10, 0.5%%) between the first and last three samples after the warm-up).\n", verdict)
	return sb.String()
}
