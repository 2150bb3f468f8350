package testenv

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// VerifyNoLeaks fails t if a goroutine the test started is still running
// once the test and its cleanups are over.
//
// Every helper of this package that requires or starts a component calls
// it, so an integration test gets the check without asking; a test that
// registers cleanups of its own before its first testenv call, or starts
// goroutines before it, calls VerifyNoLeaks first. Calling it again for
// the same test does nothing.
//
// The check runs in a t.Cleanup registered on the first call. Cleanups
// run last-in first-out, so it runs after the cleanups registered later:
// those that kill the test's processes, close its servers and wait for
// its probes. It ignores the goroutines that were running when it was
// registered (those of the testing package, of earlier tests, and, in a
// subtest, of the parent test), so it holds the test to the goroutines
// it started itself. It is not for tests that call t.Parallel: goleak
// cannot tell one test's goroutines from another's (none of this
// repository's tests do; VerifyTestMain covers a whole package).
//
// Before looking, it closes the idle keep-alive connections of
// http.DefaultTransport, which every http.Client without a Transport
// shares: a connection parked in the pool is not a leak, but its
// persistConn read and write loops would look like one. Connections to
// the test's processes end anyway once they are killed; those to servers
// inside the test binary (httptest) end when the client closes them.
//
// Goroutines may take a moment to return after what stops them (a closed
// listener's Serve, a killed process's Wait), so the check polls until
// none is left or leakGrace has passed, then reports their stacks.
func VerifyNoLeaks(t testing.TB) {
	t.Helper()
	if _, dup := verifying.LoadOrStore(t, true); dup {
		return
	}
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		defer verifying.Delete(t)
		if err := settle(append(leakOptions(), before)...); err != nil {
			t.Errorf("testenv: goroutines the test started outlive it: %v", err)
		}
	})
}

// verifying holds the tests (testing.TB) VerifyNoLeaks has registered its
// check for.
var verifying sync.Map

// leakGrace is how long a check waits for goroutines to return. It is a
// variable so this package's own test of the check need not wait it out.
var leakGrace = 10 * time.Second

// settle closes idle HTTP connections and polls goleak.Find until it
// finds no goroutine or leakGrace has passed; it returns the last error.
// goleak.Find itself retries for about half a second before answering.
func settle(opts ...goleak.Option) error {
	deadline := time.Now().Add(leakGrace)
	for {
		closeIdleConnections()
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

func closeIdleConnections() {
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// leakOptions is the ignore list of every check in this package. It is
// short on purpose: the edge's goroutines run in the Caddy process, not
// in the test binary, and everything the tests start in the binary (the
// Wait of each process, servers, probes, HTTP connections) is stopped by
// the test or its cleanups, so any goroutine left is a bug of the test,
// the harness or, in the packages that run modules in the binary, the
// product. goleak itself ignores the testing package's goroutines and
// os/signal's; idle HTTP keep-alive connections are closed, not ignored
// (see VerifyNoLeaks).
func leakOptions() []goleak.Option {
	return []goleak.Option{
		// Tests that run Caddy inside the test binary (caddy.Load, e.g.
		// edge_cors behind reverse_proxy) make certmagic take a storage
		// lock; the goroutine that keeps the lock file fresh sleeps
		// lockFreshnessInterval (5 s) between checks and returns at the
		// first check after the lock is released, "up to
		// lockFreshnessInterval after", as certmagic documents. Nothing
		// can wake it sooner, so without this entry every such package
		// would wait 5 s for it.
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	}
}

// VerifyTestMain runs the package's tests and, if they passed, fails the
// run if a goroutine is still running once they are over: goleak's
// VerifyTestMain, after the idle connections of http.DefaultTransport are
// closed and goroutines have had leakGrace to return. Use it in TestMain:
//
//	func TestMain(m *testing.M) { testenv.VerifyTestMain(m) }
//
// It also covers the tests that never call VerifyNoLeaks (unit tests, and
// tests that run in parallel).
func VerifyTestMain(m goleak.TestingM, opts ...goleak.Option) {
	goleak.VerifyTestMain(settlingM{m, opts}, append(leakOptions(), opts...)...)
}

// settlingM runs the tests, then gives their goroutines time to return
// before goleak.VerifyTestMain looks.
type settlingM struct {
	m    goleak.TestingM
	opts []goleak.Option
}

func (s settlingM) Run() int {
	code := s.m.Run()
	if code == 0 {
		_ = settle(append(leakOptions(), s.opts...)...)
	}
	return code
}
