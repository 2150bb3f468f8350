package socketioproxy

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/identity"
)

// watched is a session's filters whose checks are counted, its cookie
// expiring after expires.
func watched(expires time.Duration, checks *atomic.Int64) *sessionFilters {
	f := &sessionFilters{pol: func() *policy { checks.Add(1); return &policy{} }, live: new(liveIdentity)}
	f.live.init(identity.Identity{Expires: time.Now().Add(expires)}, zap.NewNop())
	return f
}

// The wheel checks a session when its cookie expires, then every
// roleCheckInterval, each check on a goroutine of its own; stopped, it is
// never checked again; and the wheel's goroutine ends once no session is
// left on it.
func TestTheRoleWheelChecksEachSessionWhenDueUntilStopped(t *testing.T) {
	const n = 1000
	var checks atomic.Int64
	ws := make([]*roleWatch, n)
	start := time.Now()
	for i := range ws {
		ws[i] = new(roleWatch)
		ws[i].start(watched(300*time.Millisecond, &checks))
	}
	require.Eventually(t, func() bool { return checks.Load() == n }, 3*time.Second, 10*time.Millisecond,
		"each session checked once as its cookie expired")
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, 300*time.Millisecond, "checked before its cookie expired")
	assert.Less(t, took, 300*time.Millisecond+3*roleTick, "checked long after its cookie expired")

	// The next checks are roleCheckInterval away; stop half of them now,
	// concurrently, and the other half once their check has run.
	var wg sync.WaitGroup
	for _, w := range ws[:n/2] {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop() }()
	}
	wg.Wait()
	roleChecks.mu.Lock()
	assert.Equal(t, n/2, roleChecks.n)
	roleChecks.mu.Unlock()
	require.Eventually(t, func() bool { return checks.Load() == n+n/2 }, roleCheckInterval+time.Second, 20*time.Millisecond,
		"the sessions left checked again after roleCheckInterval")
	for _, w := range ws[n/2:] {
		w.stop()
	}
	require.Eventually(t, func() bool {
		roleChecks.mu.Lock()
		defer roleChecks.mu.Unlock()
		return !roleChecks.running
	}, time.Second, 10*time.Millisecond, "the wheel's goroutine runs on with no session on it")
	assert.Equal(t, int64(n+n/2), checks.Load(), "a stopped session was checked")
	for _, w := range ws {
		assert.EqualValues(t, -1, w.slot)
	}
}
