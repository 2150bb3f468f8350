// Package testenv starts the real components the edge is tested against:
// Flask-SocketIO workers (examples/flask_app), redis-server, and the
// official socket.io-client driven by probe.mjs.
//
// Every helper takes a testing.TB. Each process it starts runs in its own
// process group, which is killed in t.Cleanup (and, should the test binary
// die first, by the kernel through Pdeathsig); its output is kept and
// logged only when the test fails. Readiness is decided by polling the
// component's own protocol against a deadline, never by sleeping.
//
// A missing component (the Debian Python packages, redis-server, node or
// node_modules) skips the test, or fails it when CI=true; see Require.
//
// Every helper that requires or starts a component also registers
// VerifyNoLeaks for the test, so each integration test fails if a
// goroutine it started in the test binary outlives it (go.uber.org/goleak);
// VerifyTestMain does the same for a whole package.
//
// The package is Linux-only, like the machines the tests run on.
package testenv
