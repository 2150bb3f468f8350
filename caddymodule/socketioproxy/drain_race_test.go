package socketioproxy

import (
	"testing"
	"time"
)

// Attack 6: an operator undoes a drain just as its drain_timeout runs
// out. The timer's func may already be on its way when undrain stops it
// (Stop then returns false) and cancel the worker's cut after undrain
// looked at it: the worker, no longer draining, takes new sessions, but
// serving() is false and every relay it gets is cut at once, for good
// (until another drain is undone).
func TestAttack6UndrainAtTheDrainTimeoutLeavesTheWorkerCut(t *testing.T) {
	s := &upstreamState{addr: "race"}
	s.checkedHealthy.Store(true)
	s.drainState.init()
	for i := range 8000 {
		timeout := time.Duration(20+i%60) * time.Microsecond
		s.drain(drainedByAdmin, timeout, time.Now())
		time.Sleep(timeout)
		s.undrain(drainedByAdmin)
		if i%200 == 0 {
			time.Sleep(time.Millisecond)
		}
		if s.cutOff().Err() != nil {
			// Give a timer that fired late its chance; then it is
			// settled.
			if draining, _ := s.draining(); !draining {
				t.Fatalf("iteration %d: the worker is not draining, yet its sessions are cut (serving() = %v)", i, s.serving())
			}
		}
	}
	time.Sleep(5 * time.Millisecond)
	if s.cutOff().Err() != nil {
		t.Fatalf("undrained worker left cut")
	}
}
