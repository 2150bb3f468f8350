package socketioproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
)

// policy is what decides a session's traffic once it is open: who may
// connect to which namespace, how fast it may send, how large a message
// may be. A polling request is served by the config of the moment, but a
// WebSocket relay outlives the config that upgraded it; so live sessions
// read the policy through their handler's policySlot, which `caddy
// reload` moves to the new config's policy, and apply it from their next
// packet on while keeping their worker.
type policy struct {
	namespaces map[string]*NamespaceRule
	messages   *Rate // nil: no message rate limit
	maxPayload int64
}

func (h *Handler) newPolicy() *policy {
	p := &policy{namespaces: h.Namespaces, maxPayload: h.MaxPayload}
	if h.RateLimits != nil {
		p.messages = h.RateLimits.Messages
	}
	return p
}

// hasRules reports whether any namespace rule applies.
func (p *policy) hasRules() bool { return len(p.namespaces) > 0 }

// policySlots holds a *policySlot per handler: the sessions of one
// socketio_proxy, across reloads.
var policySlots = caddy.NewUsagePool()

// policySlot is the current policy of one handler. Each config's handler
// adds its policy in Provision and removes it in Cleanup; the newest one
// still present is current. So a reload switches live sessions to the new
// policy, and a config that fails to load (provisioned, then cleaned up
// without ever serving) leaves the running one in force.
type policySlot struct {
	mu      sync.Mutex
	configs []*policy // in the order provisioned
	current atomic.Pointer[policy]
}

// Destruct implements caddy.Destructor.
func (*policySlot) Destruct() error { return nil }

// ordinals numbers, within one config, the handlers that share an
// Engine.IO path and sticky key (several sites of one Caddyfile may):
// the same Caddyfile provisions them in the same order every time, so
// the Nth such handler of a new config takes over the Nth of the old.
var ordinals struct {
	mu   sync.Mutex
	root caddy.Module // the app of the config being provisioned
	next map[string]int
}

// policyKey names a handler across reloads: its path, a digest of its
// sticky key (never the key), and its ordinal among the handlers of its
// config that share both.
func policyKey(ctx caddy.Context, path string, stickyKey []byte) string {
	sum := sha256.Sum256(append([]byte("socketio_proxy policy\x00"), stickyKey...))
	base := path + "\x00" + hex.EncodeToString(sum[:8])
	var root caddy.Module
	if mods := ctx.Modules(); len(mods) > 0 {
		root = mods[0]
	}
	ordinals.mu.Lock()
	defer ordinals.mu.Unlock()
	if ordinals.next == nil || root != ordinals.root {
		ordinals.root, ordinals.next = root, make(map[string]int)
	}
	n := ordinals.next[base]
	ordinals.next[base]++
	return base + "\x00" + strconv.Itoa(n)
}

func loadPolicySlot(key string, p *policy) *policySlot {
	v, _, _ := policySlots.LoadOrNew(key, func() (caddy.Destructor, error) {
		return new(policySlot), nil
	})
	s := v.(*policySlot)
	s.mu.Lock()
	s.configs = append(s.configs, p)
	s.current.Store(p)
	s.mu.Unlock()
	return s
}

// release removes a config's policy. When it was current, the newest
// remaining one becomes current; the last one stays current for the
// sessions that outlive every config.
func (s *policySlot) release(key string, p *policy) {
	s.mu.Lock()
	s.configs = slices.DeleteFunc(s.configs, func(q *policy) bool { return q == p })
	if n := len(s.configs); n > 0 {
		s.current.Store(s.configs[n-1])
	}
	s.mu.Unlock()
	_, _ = policySlots.Delete(key)
}

// now returns the policy in force.
func (s *policySlot) now() *policy { return s.current.Load() }
