package testenv

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB whose cleanups run when the test says so and
// whose errors are kept, so the leak check can be watched failing.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errors   []string
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(f, a...))
}

func (r *recorder) finish() []string {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return r.errors
}

func TestVerifyNoLeaksReportsAGoroutineThatOutlivesTheTest(t *testing.T) {
	defer func(g time.Duration) { leakGrace = g }(leakGrace)
	leakGrace = 200 * time.Millisecond

	// A goroutine started before the check is registered is not the
	// test's: it must not be reported.
	earlier := make(chan struct{})
	go func() { <-earlier }()
	defer close(earlier)

	leaky := &recorder{TB: t}
	VerifyNoLeaks(leaky)
	VerifyNoLeaks(leaky) // a second call registers nothing
	if len(leaky.cleanups) != 1 {
		t.Fatalf("VerifyNoLeaks registered %d cleanups for one test, want 1", len(leaky.cleanups))
	}
	stop := make(chan struct{})
	go leakedByTheTest(stop)
	errs := leaky.finish()
	close(stop)
	if len(errs) != 1 || !strings.Contains(errs[0], "leakedByTheTest") {
		t.Fatalf("a goroutine left running was not reported by name; errors: %q", errs)
	}
	if strings.Contains(errs[0], "TestVerifyNoLeaksReportsAGoroutineThatOutlivesTheTest.func") {
		t.Fatalf("the goroutine started before the check was reported: %s", errs[0])
	}

	// The same, with the goroutine stopped by a cleanup registered after
	// the check (as testenv's process kills are): no error.
	clean := &recorder{TB: t}
	VerifyNoLeaks(clean)
	stop2 := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); leakedByTheTest(stop2) }()
	clean.Cleanup(func() { close(stop2) })
	if errs := clean.finish(); len(errs) != 0 {
		t.Fatalf("a goroutine stopped by the test's cleanup was reported: %q", errs)
	}
	<-done
}

//go:noinline
func leakedByTheTest(stop <-chan struct{}) { <-stop }
