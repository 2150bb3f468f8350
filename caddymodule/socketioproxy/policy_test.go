package socketioproxy

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/stretchr/testify/assert"
)

// A reload makes the new config's policy current; a config that fails to
// load (provisioned, then cleaned up) leaves the running one in force;
// the last one stays for the sessions that outlive every config.
func TestPolicySlotFollowsTheConfigThatServes(t *testing.T) {
	const key = "test-slot"
	running, failed, next := &policy{maxPayload: 1}, &policy{maxPayload: 2}, &policy{maxPayload: 3}
	s := loadPolicySlot(key, running)
	assert.Same(t, running, s.now())

	loadPolicySlot(key, failed)
	assert.Same(t, failed, s.now())
	s.release(key, failed)
	assert.Same(t, running, s.now(), "a failed load leaves the running policy")

	loadPolicySlot(key, next)
	s.release(key, running)
	assert.Same(t, next, s.now())
	s.release(key, next)
	assert.Same(t, next, s.now(), "kept for live sessions")
}

// Handlers of one config that share a path and sticky key get their own
// slots, in the same order in every config.
func TestPolicyKeysNumberHandlersWithinAConfig(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := policyKey(ctx, "/socket.io/", []byte("k"))
	b := policyKey(ctx, "/socket.io/", []byte("k"))
	c := policyKey(ctx, "/other/", []byte("k"))
	assert.NotEqual(t, a, b)
	assert.NotEqual(t, a, c)
}
