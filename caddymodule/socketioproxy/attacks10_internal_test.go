package socketioproxy

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// atk10NewReg is an empty registry, as exit_test.go makes them.
func atk10NewReg() *registry {
	return &registry{relays: make(map[*relayStop]struct{}), watches: make(map[context.Context]*ctxWatch)}
}

// A storm of 30 configs of one dynamic source, each built while the last
// is cleaned up (in either order), with relays starting and ending on
// each concurrently, and the worker leaving at configs 10 and 20 (and
// coming back with the next): every relay that ran on a config while
// the worker left is stopped, none of those that started after it came
// back is, and once every relay has ended and every config is closed
// there is no retirement left under the key, nor any watch. HOLDS at
// HEAD.
func TestAttack10RetirementStormLeavesNothing(t *testing.T) {
	reg := atk10NewReg()
	key := "atk10-source\x00" + t.Name()
	newUp := func() *upstream { return sharingUpstream(key) }
	type run struct {
		stopped <-chan string
		done    func()
		gen     int
		ended   bool
	}
	var (
		mu   sync.Mutex
		runs []run
		wg   sync.WaitGroup
	)
	start := func(u *upstream, gen int) {
		rs := new(relayStop)
		ch := stopped(t, reg.relaying(rs, 0, u))
		done := func() { reg.unrelay(rs) }
		mu.Lock()
		runs = append(runs, run{stopped: ch, done: done, gen: gen})
		mu.Unlock()
	}
	var old *upstream
	gen := 0 // the worker's stay: a leave starts the next
	for cfg := range 30 {
		var next *upstream
		if rand.IntN(2) == 0 && old != nil {
			old.close()
			next = newUp()
		} else {
			next = newUp()
			if old != nil {
				old.close()
			}
		}
		for range 5 {
			wg.Add(1)
			go func() { defer wg.Done(); start(next, gen) }()
		}
		// Some relays end while the storm goes on.
		mu.Lock()
		if len(runs) > 3 {
			i := rand.IntN(len(runs))
			if !runs[i].ended {
				runs[i].ended = true
				runs[i].done()
			}
		}
		mu.Unlock()
		wg.Wait()
		if cfg == 10 || cfg == 20 {
			next.retire()
			gen++
		}
		old = next
	}
	for _, r := range runs {
		if r.gen < gen && !r.ended {
			_, ok := stopReasonWithin(t, r.stopped)
			assert.True(t, ok, "a relay of stay %d outlived the worker's leaving", r.gen)
		}
	}
	// Those of the current stay were not stopped (checked without wait).
	for _, r := range runs {
		if r.gen == gen {
			select {
			case <-r.stopped:
				t.Error("a relay opened after the worker came back was stopped")
			default:
			}
		}
	}
	old.close()
	var ends sync.WaitGroup
	for _, r := range runs {
		if r.ended {
			continue
		}
		ends.Add(1)
		go func() { defer ends.Done(); r.done() }()
	}
	ends.Wait()
	retirements.mu.Lock()
	assert.NotContains(t, retirements.m, key, "a retirement left after its last holder")
	retirements.mu.Unlock()
	reg.mu.Lock()
	assert.Empty(t, reg.watches)
	assert.Empty(t, reg.relays)
	reg.mu.Unlock()
}

// Broke before the fix that followed it (retirement.hold), found by this
// attack session: a WebSocket handshake through the old config whose relay starts
// after that config was cleaned up (the reload came while the edge
// waited for the worker's 101), when the old config's cleanup came
// before the new config's first refresh and no other relay held the
// worker's retirement: the cleanup let go of it (refs 0, forgotten), the
// relay then holds the forgotten retirement (registry.relaying ->
// shared.hold() does not put it back, and hold() of a retirement at 0
// refs is not refused), the new config shares a fresh one, and the
// worker's leaving ends the new config's relays but not this one.
// Expected: the late relay ends with the worker's leaving (or is refused
// at once, as a relay on a retired worker is).
func TestAttack10RelayStartingAfterItsConfigsCleanupKeepsTheRetirement(t *testing.T) {
	reg := atk10NewReg()
	key := "atk10-source\x00" + t.Name()
	newUp := func() *upstream { return sharingUpstream(key) }
	old := newUp()
	// The reload: the old config is cleaned up, its handshake in flight
	// still to finish; then the new config asks its source.
	old.close()
	rs := new(relayStop)
	reason := stopped(t, reg.relaying(rs, 0, old))
	done := func() { reg.unrelay(rs) }
	next := newUp()
	assert.Same(t, old.shared, next.shared, "the new config made a retirement of its own while a relay held the old one")
	next.retire() // the worker leaves
	_, ok := stopReasonWithin(t, reason)
	assert.True(t, ok, "the relay that started after its config's cleanup outlived the worker's leaving")
	done()
	next.close()
	retirements.mu.Lock()
	defer retirements.mu.Unlock()
	require.NotContains(t, retirements.m, key)
}
