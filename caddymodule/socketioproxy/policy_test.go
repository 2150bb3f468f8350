package socketioproxy

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
)

type fakeRoot struct{ n int }

func (*fakeRoot) CaddyModule() caddy.ModuleInfo { return caddy.ModuleInfo{} }

func testPolicy(max int64) *policy {
	return (&Handler{MaxPayload: max}).newPolicy()
}

// A reload makes the new config's policy current; a config that fails to
// load (provisioned, then cleaned up) leaves the running one in force;
// the last one stays for the sessions that outlive every config.
func TestPolicySlotFollowsTheConfigThatServes(t *testing.T) {
	const path = "/slot-test/"
	r1, r2, r3 := &fakeRoot{1}, &fakeRoot{2}, &fakeRoot{3}
	running, failed, next := testPolicy(1), testPolicy(2), testPolicy(3)
	s := loadPolicySlot(path, r1, running)
	assert.Same(t, running, s.now(running))

	loadPolicySlot(path, r2, failed)
	assert.Same(t, failed, s.now(running))
	s.release(path, r2, failed)
	assert.Same(t, running, s.now(running), "a failed load leaves the running policy")

	loadPolicySlot(path, r3, next)
	s.release(path, r1, running)
	assert.Same(t, next, s.now(running))
	s.release(path, r3, next)
	assert.Same(t, next, s.now(running), "kept for live sessions")
}

// Two sites on one path: a live session follows the new config's policy
// that equals its own, and keeps its own when the reload changed it,
// never another site's.
func TestPolicySlotNeverSwapsTheSitesOfOnePath(t *testing.T) {
	const path = "/two-sites/"
	r1, r2 := &fakeRoot{1}, &fakeRoot{2}
	a, b := testPolicy(10), testPolicy(20)
	s := loadPolicySlot(path, r1, a)
	loadPolicySlot(path, r1, b)
	a2, b2 := testPolicy(10), testPolicy(30) // the reload changed b only
	loadPolicySlot(path, r2, b2)
	loadPolicySlot(path, r2, a2)
	s.release(path, r1, a)
	s.release(path, r1, b)
	assert.Same(t, a2, s.now(a))
	assert.Same(t, b, s.now(b))
}
