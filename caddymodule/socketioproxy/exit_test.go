package socketioproxy

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/sticky"
)

// stopped records the reason a relay's Stopper got.
func stopped(t *testing.T, s interface{ OnStop(func(string)) }) <-chan string {
	t.Helper()
	ch := make(chan string, 1)
	s.OnStop(func(reason string) { ch <- reason })
	return ch
}

func stopReasonWithin(t *testing.T, ch <-chan string) (string, bool) {
	t.Helper()
	select {
	case r := <-ch:
		return r, true
	case <-time.After(2 * time.Second):
		return "", false
	}
}

// The relays of a worker end when its drain_timeout cuts it, or when its
// config retires it, each with the drain's reason; the relays of other
// workers, and of the same worker in another config, go on. One watch per
// worker's context serves every relay on it, and none is left once they
// have ended.
func TestRelaysEndWithTheirWorkersCutAndRetirement(t *testing.T) {
	reg := &registry{relays: make(map[*relayStop]struct{}), watches: make(map[context.Context]*ctxWatch)}
	newUp := func(state *upstreamState) *upstream {
		retired, retire := context.WithCancel(context.Background())
		return &upstream{upstreamState: state, retired: retired, retire: retire}
	}
	a := &upstreamState{addr: "a"}
	a.drainState.init()
	b := &upstreamState{addr: "b"}
	b.drainState.init()
	ua, ua2, ub := newUp(a), newUp(a), newUp(b)

	type run struct {
		stopped <-chan string
		done    func()
	}
	start := func(u *upstream) run {
		rs := new(relayStop)
		st := reg.relaying(rs, 0, u)
		return run{stopped(t, st), func() { reg.unrelay(rs) }}
	}
	var onA, onA2, onB []run
	for range 3 {
		onA = append(onA, start(ua))
		onA2 = append(onA2, start(ua2))
		onB = append(onB, start(ub))
	}
	reg.mu.Lock()
	assert.Len(t, reg.watches, 5, "one watch per context: the cuts of a and b, and the three configs' retired")
	reg.mu.Unlock()

	ua.retire()
	for _, r := range onA {
		reason, ok := stopReasonWithin(t, r.stopped)
		require.True(t, ok, "a relay of the retired config went on")
		assert.Equal(t, errWorkerDrained.Error(), reason)
	}
	for _, r := range append(onA2, onB...) {
		select {
		case <-r.stopped:
			t.Fatal("a relay of another config or worker was stopped")
		default:
		}
	}

	// drain_timeout: every relay of worker a, whatever its config.
	a.drain(drainedByAdmin, time.Millisecond, time.Now())
	for _, r := range onA2 {
		_, ok := stopReasonWithin(t, r.stopped)
		require.True(t, ok, "a relay of the cut worker went on")
	}
	for _, r := range onB {
		select {
		case <-r.stopped:
			t.Fatal("a relay of another worker was stopped")
		default:
		}
	}
	// A relay that starts on a worker already cut ends at once.
	late := start(ua2)
	_, ok := stopReasonWithin(t, late.stopped)
	assert.True(t, ok, "a relay started on a cut worker went on")

	var wg sync.WaitGroup
	for _, r := range append(append(append(onA, onA2...), onB...), late) {
		wg.Add(1)
		go func() { defer wg.Done(); r.done() }()
	}
	wg.Wait()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	assert.Empty(t, reg.relays)
	assert.Empty(t, reg.watches, "watches left after their relays ended")
}

// A dynamic worker's relays opened through a config outlive it: when
// that config ends before the next one has asked its source, the
// worker's retirement must still be the one the next config shares, so
// that the worker's leaving ends the old config's relays too. Failed in
// CI when the old config's cleanup came first: its upstream let go of
// the retirement, the next config made a fresh one, and the relays
// opened before the reload ran on after the worker left.
func TestADynamicWorkersRelaysKeepItsRetirementAcrossAReload(t *testing.T) {
	reg := &registry{relays: make(map[*relayStop]struct{}), watches: make(map[context.Context]*ctxWatch)}
	key := "test-source\x00" + t.Name()
	newUp := func() *upstream { return sharingUpstream(key) }
	old := newUp()
	rs := new(relayStop)
	reason := stopped(t, reg.relaying(rs, 0, old))
	// The reload: the old config is cleaned up first, then the new one
	// asks its source.
	old.close()
	next := newUp()
	assert.Same(t, old.shared, next.shared, "the new config made a retirement of its own while a relay held the old one")
	next.retire()
	_, ok := stopReasonWithin(t, reason)
	assert.True(t, ok, "the old config's relay outlived the worker's leaving")
	reg.unrelay(rs)
	next.close()
	retirements.mu.Lock()
	defer retirements.mu.Unlock()
	assert.NotContains(t, retirements.m, key, "a retirement left after its last holder")
}

// A dynamic source is the same source across a reload that changes only
// how it asks: its workers' retirements are shared under one key.
func TestASourceIsTheSameWhateverItsTuning(t *testing.T) {
	same := [][2]string{
		{`{"source":"file","path":"/w","refresh":100000000}`, `{"refresh":200000000,"path":"/w","source":"file"}`},
		{`{"source":"a","name":"w.internal","port":"5000","refresh":1000000000,"resolver":{"addresses":["10.0.0.1"]}}`,
			`{"source":"a","name":"w.internal","port":"5000","dial_timeout":3000000000}`},
		{`{"source":"multi","sources":[{"source":"a","name":"x","refresh":1},{"source":"file","path":"/w"}]}`,
			`{"source":"multi","sources":[{"source":"a","name":"x","refresh":2},{"source":"file","path":"/w"}]}`},
	}
	for _, p := range same {
		assert.Equal(t, sourceKey([]byte(p[0])), sourceKey([]byte(p[1])), "%s and %s", p[0], p[1])
	}
	differ := [][2]string{
		{`{"source":"file","path":"/w"}`, `{"source":"file","path":"/v"}`},
		{`{"source":"a","name":"w.internal","port":"5000"}`, `{"source":"a","name":"w.internal","port":"5001"}`},
		{`{"source":"a","name":"x"}`, `{"source":"srv","name":"x"}`},
		{`{"source":"multi","sources":[{"source":"a","name":"x"}]}`, `{"source":"multi","sources":[{"source":"a","name":"y"}]}`},
	}
	for _, p := range differ {
		assert.NotEqual(t, sourceKey([]byte(p[0])), sourceKey([]byte(p[1])), "%s and %s", p[0], p[1])
	}
	assert.NotContains(t, sourceKey([]byte(`{"source":"file","path":"/a\u0000b"}`)), "\x00", "a key with a NUL of its own")
}

// sharingUpstream is a dynamic worker's upstream as a config builds it,
// sharing the retirement under key.
func sharingUpstream(key string) *upstream {
	u := newUpstream("127.0.0.1:1", sticky.Tag{1}, time.Second, nil)
	u.retireWith(key)
	return u
}
