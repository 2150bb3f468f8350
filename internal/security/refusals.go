package security

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The reasons caddy_socketio_refusals_total counts. Each edge module
// counts the refusals it decides, so one series per reason answers
// "why are clients turned away" whichever module turned them away.
const (
	// ReasonOrigin: edge_cors refused an Engine.IO handshake or a
	// WebSocket upgrade from an origin it does not allow, or a preflight
	// (foreign origin, or a method, header or Private Network Access
	// request it does not allow).
	ReasonOrigin = "origin"
	// ReasonAuth: flask_session's require refused a request without a
	// verified user: no cookie, or one that failed verification.
	ReasonAuth = "auth"
	// ReasonRole: a verified user without the role that flask_session's
	// require asks for.
	ReasonRole = "role"
	// ReasonNamespace: a Socket.IO CONNECT a namespace rule denied.
	ReasonNamespace = "namespace"
	// ReasonRate: over a connect or message rate.
	ReasonRate = "rate"
	// ReasonSize: a polling body or a WebSocket message over max_payload.
	ReasonSize = "size"
	// ReasonMalformed: Engine.IO or Socket.IO input the edge refuses to
	// forward.
	ReasonMalformed = "malformed"
	// ReasonSID: a sid this edge did not seal, or whose worker is gone.
	ReasonSID = "sid"
	// ReasonIdentity: a request of an Engine.IO session from another
	// user than the one who opened it (a login, a logout, or another
	// user's cookie on the session's sid).
	ReasonIdentity = "identity"
	// ReasonUpstream: no healthy worker for a handshake, or the session's
	// worker is unhealthy.
	ReasonUpstream = "upstream"
)

// Reasons lists every reason, each reported from the first scrape.
var Reasons = []string{ReasonOrigin, ReasonAuth, ReasonRole, ReasonNamespace, ReasonRate,
	ReasonSize, ReasonMalformed, ReasonSID, ReasonIdentity, ReasonUpstream}

// refusals is made once per process and registered in each config's
// registry, so its values carry across reloads as Caddy's own metrics do.
var refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "caddy", Subsystem: "socketio", Name: "refusals_total",
	Help: "Requests, upgrades and Socket.IO packets the edge refused (edge_cors, flask_session, socketio_proxy), by reason.",
}, []string{"reason"})

var reasonCounters = func() map[string]prometheus.Counter {
	m := make(map[string]prometheus.Counter, len(Reasons))
	for _, r := range Reasons {
		m[r] = refusals.WithLabelValues(r)
	}
	return m
}()

// Refused counts one refusal. reason must be one of the Reason constants.
func Refused(reason string) {
	c, ok := reasonCounters[reason]
	if !ok {
		panic("security: unknown refusal reason " + reason)
	}
	c.Inc()
}

// RegisterMetrics adds the refusal counter to a config's registry
// (caddy.Context.GetMetricsRegistry); every module that counts refusals
// calls it in Provision, and registering it twice is harmless.
func RegisterMetrics(registry *prometheus.Registry) error {
	if err := registry.Register(refusals); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return err
	}
	return nil
}

// RefusalCounts is the count of refusals by reason since the process
// started.
func RefusalCounts() map[string]uint64 {
	out := make(map[string]uint64, len(reasonCounters))
	for r, c := range reasonCounters {
		var m dto.Metric
		if c.Write(&m) == nil {
			out[r] = uint64(m.GetCounter().GetValue())
		}
	}
	return out
}
