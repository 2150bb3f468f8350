package socketioproxy

import (
	"errors"
	"github.com/flaskedge/flaskedge/internal/park"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flaskedge/flaskedge/internal/security"
)

// Metrics, in Caddy's registry under the caddy_socketio_ prefix. The
// collectors are made once per process and registered anew in each
// config's registry, as Caddy's own modules do, so their values carry
// across reloads.
var metrics = struct {
	handshakes *prometheus.CounterVec
	messages   *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	inFlight   prometheus.Gauge
	live       prometheus.Collector
	// relays counts the relayed WebSockets by engine (relayEngine).
	relays *prometheus.GaugeVec
	// heapReturns counts the collections the memory settler forced
	// (see memory.go).
	heapReturns prometheus.Counter
	// parked counts the connections parked (see waitingPoll, keeper),
	// by state: waiting (a GET waits for its worker's answer) or idle
	// (a kept connection waits for its client's next request).
	parked *prometheus.GaugeVec
	// asleep counts the parked connections put to sleep (park.Hold),
	// clients' and workers'.
	asleep prometheus.GaugeFunc

	// Socket.IO connection state recovery (recoveryHeld,
	// recoveryResult, recoveryReplayed).
	held       prometheus.Gauge
	recoveries *prometheus.CounterVec
	replayed   prometheus.Counter
}{}

// The result label values of caddy_socketio_recoveries_total, the only
// ones recoveryResult takes.
const (
	// recoveryRecovered: a client reconnected with its pid within the
	// window and found its held session.
	recoveryRecovered = "recovered"
	// recoveryExpired: a held session ended because the window passed.
	recoveryExpired = "expired"
	// recoveryOverflowed: a held session ended because its bounded
	// buffer of missed packets filled.
	recoveryOverflowed = "overflowed"
	// recoveryRefused: a reconnection with a pid that was not recovered
	// (unknown, forged, of another user or namespace, of another edge).
	recoveryRefused = "refused"
)

// recoveryResults are the result label values, in the order the
// dashboard shows them.
var recoveryResults = []string{recoveryRecovered, recoveryExpired, recoveryOverflowed, recoveryRefused}

// recoveryCounters are the children of caddy_socketio_recoveries_total
// by result, made at init so that every result is exported (at 0) from
// the start and a count costs one atomic add.
var recoveryCounters = map[string]prometheus.Counter{}

// parkedWaiting and parkedIdle are metrics.parked's two series.
var parkedWaiting, parkedIdle prometheus.Gauge

func init() {
	const ns, sub = "caddy", "socketio"
	metrics.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "handshakes_total",
		Help: "Engine.IO sessions opened through the edge, by worker and transport.",
	}, []string{"upstream", "transport"})
	metrics.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "messages_total",
		Help: "Engine.IO packets relayed (WebSocket messages, polling records), by direction and transport.",
	}, []string{"direction", "transport"})
	metrics.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "bytes_total",
		Help: "Engine.IO payload bytes relayed, by direction and transport.",
	}, []string{"direction", "transport"})
	metrics.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "requests_in_flight",
		Help: "Engine.IO requests the edge is serving (long-polls, POSTs, upgrades not yet relaying); max_requests_per_ip bounds them per client.",
	})
	metrics.relays = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "websocket_relays",
		Help: "WebSockets the edge relays now, by engine: event (an idle one holds no goroutine and no buffer; plain TCP on Linux) or goroutine (TLS connections, and where the worker's first bytes were read ahead).",
	}, []string{"engine"})
	for _, engine := range []string{"event", "goroutine"} {
		metrics.relays.WithLabelValues(engine)
	}
	metrics.heapReturns = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "heap_returns_total",
		Help: "Times the edge, gone quiet after work or after many sessions ended, collected and returned the free heap to the system.",
	})
	metrics.parked = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "parked_connections",
		Help: "Long-polling client connections the edge holds without a goroutine or a buffer, by state: waiting (a GET waits for its worker's answer) or idle (a kept connection waits for its client's next request).",
	}, []string{"state"})
	parkedWaiting, parkedIdle = metrics.parked.WithLabelValues("waiting"), metrics.parked.WithLabelValues("idle")
	metrics.asleep = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "parked_asleep",
		Help: "Parked connections, clients' and workers', that waited a quarter of a second and sleep: their socket watched, the Go runtime's state of them let go.",
	}, func() float64 { return float64(park.Sleeping()) })
	metrics.held = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "sessions_held",
		Help: "Worker sessions the edge holds for a Socket.IO client that went away, for connection state recovery.",
	})
	metrics.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "recoveries_total",
		Help: "Ends of held sessions and reconnections with a pid, by result: recovered, expired (the window passed), overflowed (the buffer filled), refused (a pid not recovered).",
	}, []string{"result"})
	metrics.replayed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "replayed_packets_total",
		Help: "Packets a held session buffered and the edge delivered to its client on recovery.",
	})
	for _, result := range recoveryResults {
		recoveryCounters[result] = metrics.recoveries.WithLabelValues(result)
	}
	metrics.live = liveCollector{
		sessions: prometheus.NewDesc(ns+"_"+sub+"_sessions",
			"Live Engine.IO sessions on this edge, by worker and transport.", []string{"upstream", "transport"}, nil),
		namespaces: prometheus.NewDesc(ns+"_"+sub+"_namespace_sessions",
			"Live Engine.IO sessions on this edge connected to each Socket.IO namespace.", []string{"namespace"}, nil),
		healthy: prometheus.NewDesc(ns+"_"+sub+"_upstream_healthy",
			"Whether the worker is healthy (1) or not (0): its active health check passes and it was reachable; a worker drained for a deploy stays healthy (see caddy_socketio_upstream_draining).", []string{"upstream"}, nil),
		draining: prometheus.NewDesc(ns+"_"+sub+"_upstream_draining",
			"1 while a Socket.IO worker is drained for a deploy (no new sessions), else 0.", []string{"upstream"}, nil),
	}
	for d, direction := range []string{fromClient, fromUpstream} {
		for t, transport := range []string{"polling", "websocket"} {
			flows[d][t] = flow{
				messages: metrics.messages.WithLabelValues(direction, transport),
				bytes:    metrics.bytes.WithLabelValues(direction, transport),
			}
		}
	}
}

// registerMetrics adds the collectors, and the refusal counter the edge
// modules share, to a config's registry.
func registerMetrics(registry *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{metrics.handshakes, metrics.messages, metrics.bytes, metrics.inFlight, metrics.live,
		metrics.relays, metrics.heapReturns, metrics.parked, metrics.asleep, metrics.held, metrics.recoveries, metrics.replayed} {
		if err := registry.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return security.RegisterMetrics(registry)
}

// recoveryHeld adds delta (+1 when the edge starts holding a worker
// session for a client that went away, -1 when it stops: the client
// recovered it, or it expired or overflowed) to the
// caddy_socketio_sessions_held gauge.
func recoveryHeld(delta int) {
	metrics.held.Add(float64(delta))
}

// recoveryResult counts one result of connection state recovery in
// caddy_socketio_recoveries_total: "recovered", "expired",
// "overflowed" or "refused" (the recovery* constants). Any other value
// is a bug of the caller and panics, so that the result label keeps
// exactly these values.
func recoveryResult(result string) {
	c, ok := recoveryCounters[result]
	if !ok {
		panic("socketioproxy: recoveryResult(" + strconv.Quote(result) + "): want one of " + strings.Join(recoveryResults, ", "))
	}
	c.Inc()
}

// recoveryReplayed counts n packets delivered to a client on recovery
// (the missed packets its held session buffered) in
// caddy_socketio_replayed_packets_total. n must not be negative.
func recoveryReplayed(n int) {
	metrics.replayed.Add(float64(n))
}

// Direction labels.
const (
	fromClient   = "client_to_upstream"
	fromUpstream = "upstream_to_client"
)

// flow is the pair of counters of one direction and transport, resolved
// once so that counting a relayed message costs two atomic adds.
type flow struct{ messages, bytes prometheus.Counter }

// flows by direction (0 from the client, 1 from the worker) and transport
// (0 polling, 1 websocket).
var flows [2][2]flow

// count adds n packets of size bytes relayed one way.
func count(clientToUpstream, websocket bool, n int, size int64) {
	f := &flows[boolIndex(!clientToUpstream)][boolIndex(websocket)]
	f.messages.Add(float64(n))
	f.bytes.Add(float64(size))
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// liveCollector reports the session registry and the workers' health as
// they are at scrape time.
type liveCollector struct {
	sessions, namespaces, healthy, draining *prometheus.Desc
}

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.namespaces
	ch <- c.healthy
	ch <- c.draining
}

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range namespaceSnapshot(allWorkers) {
		ch <- prometheus.MustNewConstMetric(c.namespaces, prometheus.GaugeValue, float64(st.Sessions), st.Namespace)
	}
	for _, st := range snapshot(allWorkers) {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.Polling), st.Address, "polling")
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.WebSocket), st.Address, "websocket")
		healthy := 0.0
		if st.Healthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy, st.Address)
		draining := 0.0
		if st.Draining {
			draining = 1
		}
		ch <- prometheus.MustNewConstMetric(c.draining, prometheus.GaugeValue, draining, st.Address)
	}
}

// relayEngine is the engine label of caddy_socketio_websocket_relays.
func relayEngine(evented bool) string {
	if evented {
		return "event"
	}
	return "goroutine"
}
