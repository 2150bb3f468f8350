package socketioproxy

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// What socketio_proxy shows of itself to the modules that report on it
// (socketio_dashboard, socketio_client): read-only views computed on
// demand from the state the proxy keeps anyway, the worker and session
// registries, its metrics and the policy slot of each Engine.IO path
// (policy.go). Nothing here changes that state, and the proxy works the
// same whether anyone observes it or not.
//
// A view is found by Engine.IO path, the one key that names a proxy
// across configs: the handlers of the running config serving that path
// (one per site that has one). During a reload, the newest config that
// has loaded is the running one.

// Serves reports whether a socketio_proxy handler of the running config
// serves the Engine.IO path enginePath, e.g. "/socket.io/".
func Serves(enginePath string) bool {
	return len(servingPolicies(enginePath)) > 0
}

// Snapshot is what the socketio_proxy handlers on one Engine.IO path are
// doing at one moment. Counters are totals since the process started;
// rates are the differences between successive snapshots.
type Snapshot struct {
	// Time is when the snapshot was taken, in UTC.
	Time time.Time `json:"time"`

	// Path is the Engine.IO path observed.
	Path string `json:"path"`

	// Sessions are the live Engine.IO sessions on the path's workers,
	// by transport.
	Sessions TransportCounts `json:"sessions"`

	// Upstreams are the workers the path's handlers name, sorted by
	// address.
	Upstreams []UpstreamSnapshot `json:"upstreams"`

	// Namespaces are a copy of the namespace rules of the path's
	// handler (see Handler.Namespaces); nil without rules. When several
	// sites serve the path, those of the first in the config.
	Namespaces map[string]*NamespaceRule `json:"namespaces,omitempty"`

	// LiveNamespaces are the live sessions on the path's workers
	// connected to each Socket.IO namespace, most first.
	LiveNamespaces []NamespaceStatus `json:"live_namespaces"`

	// Messages and Bytes relayed by the whole process, by direction
	// ("client_to_upstream", "upstream_to_client") and transport: the
	// caddy_socketio_messages_total and caddy_socketio_bytes_total
	// counters, which do not tell Engine.IO paths apart.
	Messages map[string]TransportCounts `json:"messages"`
	Bytes    map[string]TransportCounts `json:"bytes"`

	// Recovery is what Socket.IO connection state recovery is doing on
	// the edge; all zeros while recovery is off.
	Recovery RecoveryCounts `json:"recovery"`
}

// RecoveryCounts is Socket.IO connection state recovery in a Snapshot:
// worker sessions the edge holds for a client that went away, so that
// the client, reconnecting with its pid within the window, finds its
// session (socket.io-client's socket.recovered) and the packets it
// missed. The totals run since the process started, as the
// caddy_socketio_recoveries_total and
// caddy_socketio_replayed_packets_total counters do.
type RecoveryCounts struct {
	// WindowSeconds is how long a session is held for its client; 0
	// when recovery is off.
	WindowSeconds float64 `json:"window_seconds"`

	// Held are the worker sessions held now for a client that is away
	// (caddy_socketio_sessions_held).
	Held uint64 `json:"held"`

	// Recovered are the reconnections that found their held session.
	Recovered uint64 `json:"recovered"`

	// Expired are the held sessions ended because the window passed
	// before their client came back.
	Expired uint64 `json:"expired"`

	// Overflowed are the held sessions ended because their bounded
	// buffer of missed packets filled.
	Overflowed uint64 `json:"overflowed"`

	// Refused are the reconnections with a pid that was not recovered:
	// unknown, forged, of another user or namespace, or of another edge.
	Refused uint64 `json:"refused"`

	// Replayed are the packets delivered to clients on recovery.
	Replayed uint64 `json:"replayed"`
}

// TransportCounts is a count split by Engine.IO transport.
type TransportCounts struct {
	Total     uint64 `json:"total"`
	Polling   uint64 `json:"polling"`
	WebSocket uint64 `json:"websocket"`
}

func (tc *TransportCounts) add(transport string, n uint64) {
	tc.Total += n
	switch transport {
	case "polling":
		tc.Polling += n
	case "websocket":
		tc.WebSocket += n
	}
}

// UpstreamSnapshot is a worker in a Snapshot: its state and live
// sessions, as the admin API gives them, and the sessions opened on it
// since the process started (caddy_socketio_handshakes_total).
type UpstreamSnapshot struct {
	UpstreamStatus
	Handshakes TransportCounts `json:"handshakes"`
}

// Observe returns a snapshot of the socketio_proxy handlers serving the
// Engine.IO path enginePath. ok is false when no handler of the running
// config serves it; the snapshot then has the process's counters and no
// worker.
func Observe(enginePath string) (snap Snapshot, ok bool) {
	snap = Snapshot{
		Time:     clock().UTC(),
		Path:     enginePath,
		Messages: map[string]TransportCounts{},
		Bytes:    map[string]TransportCounts{},
	}
	for vec, into := range map[*prometheus.CounterVec]map[string]TransportCounts{metrics.messages: snap.Messages, metrics.bytes: snap.Bytes} {
		eachCounter(vec, func(l map[string]string, n uint64) {
			tc := into[l["direction"]]
			tc.add(l["transport"], n)
			into[l["direction"]] = tc
		})
	}
	policies := servingPolicies(enginePath)
	workers := map[string]bool{}
	for _, p := range policies {
		for _, addr := range p.workers() {
			workers[addr] = true
		}
	}
	keep := func(addr string) bool { return workers[addr] }
	if len(policies) > 0 {
		snap.Namespaces = copyRules(policies[0].namespaces)
		if w := policies[0].recoverWindow; w > 0 {
			snap.Recovery = recoverySnapshot(w)
		}
	}
	snap.LiveNamespaces = namespaceSnapshot(keep)

	handshakes := map[string]*TransportCounts{}
	eachCounter(metrics.handshakes, func(l map[string]string, n uint64) {
		if !keep(l["upstream"]) {
			return
		}
		if handshakes[l["upstream"]] == nil {
			handshakes[l["upstream"]] = new(TransportCounts)
		}
		handshakes[l["upstream"]].add(l["transport"], n)
	})
	for _, st := range snapshot(keep) {
		u := UpstreamSnapshot{UpstreamStatus: st}
		if hs := handshakes[st.Address]; hs != nil {
			u.Handshakes = *hs
		}
		snap.Upstreams = append(snap.Upstreams, u)
		snap.Sessions.add("polling", uint64(st.Polling))
		snap.Sessions.add("websocket", uint64(st.WebSocket))
	}
	return snap, len(policies) > 0
}

// servingPolicies are the policies of the running config's handlers on
// the Engine.IO path, in the order provisioned; none when no config
// serves it.
func servingPolicies(enginePath string) []*policy {
	var c *slotConfig
	policySlots.Range(func(key, value any) bool {
		if key == enginePath {
			c = value.(*policySlot).current.Load()
			return false
		}
		return true
	})
	if c == nil {
		return nil
	}
	return c.policies
}

// copyRules is a copy of namespace rules the observer may keep or change
// without touching the proxy's.
func copyRules(rules map[string]*NamespaceRule) map[string]*NamespaceRule {
	if rules == nil {
		return nil
	}
	out := make(map[string]*NamespaceRule, len(rules))
	for ns, r := range rules {
		out[ns] = &NamespaceRule{Access: r.Access, Roles: slices.Clone(r.Roles)}
	}
	return out
}

// allWorkers keeps every worker, for the views of the whole process (the
// admin API, the metrics).
func allWorkers(string) bool { return true }

// eachCounter reads every series of a counter vector.
func eachCounter(c prometheus.Collector, fn func(labels map[string]string, n uint64)) {
	ch := make(chan prometheus.Metric, 8)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) != nil || pb.Counter == nil {
			continue
		}
		labels := make(map[string]string, len(pb.Label))
		for _, l := range pb.Label {
			labels[l.GetName()] = l.GetValue()
		}
		fn(labels, uint64(pb.Counter.GetValue()))
	}
}

func recoverySnapshot(window time.Duration) RecoveryCounts {
	recoveryTotals.Lock()
	defer recoveryTotals.Unlock()
	return RecoveryCounts{
		WindowSeconds: window.Seconds(),
		Held:          uint64(bridges.heldCount()),
		Recovered:     recoveryTotals.recovered,
		Expired:       recoveryTotals.expired,
		Overflowed:    recoveryTotals.overflowed,
		Refused:       recoveryTotals.refused,
		Replayed:      recoveryTotals.replayed,
	}
}
