package socketioproxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The recovery metrics are in a config's registry from the start, every
// result at 0 included, and the functions the recovery code calls move
// them.
func TestRecoveryMetricsCountWhatTheyAreTold(t *testing.T) {
	registry := prometheus.NewRegistry()
	require.NoError(t, registerMetrics(registry))
	families, err := registry.Gather()
	require.NoError(t, err)
	results := map[string]bool{}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetName() == "caddy_socketio_recoveries_total" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					results[l.GetName()+"="+l.GetValue()] = true
				}
			}
		}
	}
	for _, name := range []string{"caddy_socketio_sessions_held", "caddy_socketio_recoveries_total", "caddy_socketio_replayed_packets_total"} {
		assert.True(t, names[name], "%s not registered", name)
	}
	assert.Equal(t, map[string]bool{"result=recovered": true, "result=expired": true, "result=overflowed": true, "result=refused": true}, results)

	held := value(t, metrics.held)
	before := map[string]float64{}
	for _, r := range recoveryResults {
		before[r] = value(t, metrics.recoveries.WithLabelValues(r))
	}
	replayed := value(t, metrics.replayed)

	recoveryHeld(1)
	recoveryHeld(1)
	recoveryHeld(-1)
	recoveryResult("recovered")
	recoveryResult("recovered")
	recoveryResult("expired")
	recoveryResult("overflowed")
	recoveryResult("refused")
	recoveryResult("refused")
	recoveryResult("refused")
	recoveryReplayed(7)
	recoveryReplayed(0)
	t.Cleanup(func() { recoveryHeld(-1) })

	assert.Equal(t, held+1, value(t, metrics.held))
	for r, n := range map[string]float64{"recovered": 2, "expired": 1, "overflowed": 1, "refused": 3} {
		assert.Equal(t, before[r]+n, value(t, metrics.recoveries.WithLabelValues(r)), r)
	}
	assert.Equal(t, replayed+7, value(t, metrics.replayed))

	// Another result would be a label value nobody queries.
	assert.PanicsWithValue(t, `socketioproxy: recoveryResult("timeout"): want one of recovered, expired, overflowed, refused`,
		func() { recoveryResult("timeout") })
	series := 0
	eachCounter(metrics.recoveries, func(l map[string]string, _ uint64) {
		series++
		assert.Contains(t, recoveryResults, l["result"])
	})
	assert.Equal(t, 4, series, "a series per result, no other")
}

// value is the value of a gauge or counter.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	require.NoError(t, m.Write(&pb))
	if pb.Gauge != nil {
		return pb.Gauge.GetValue()
	}
	return pb.Counter.GetValue()
}
