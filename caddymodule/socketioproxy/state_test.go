package socketioproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A worker one request failed to reach leaves rotation for new sessions
// only; its live sessions are cut off by nothing but an active health
// check's verdict.
func TestPassiveMarkSteersNewSessionsWithoutCuttingLiveOnes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := &upstreamState{addr: "w:1"}
	s.checkedHealthy.Store(true)
	assert.True(t, s.healthy(now))

	s.markDown(now, 10*time.Second)
	assert.False(t, s.healthy(now), "no new sessions while marked down")
	assert.True(t, s.serving(), "live sessions keep their worker")
	assert.True(t, s.healthy(now.Add(10*time.Second)), "back in rotation after fail_duration")

	s.checkedHealthy.Store(false)
	assert.False(t, s.serving(), "an active check's verdict ends live sessions")
	assert.False(t, s.healthy(now.Add(time.Hour)))
}
