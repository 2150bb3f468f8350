package socketioproxy

import (
	"time"

	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
)

// policy is what decides a session's traffic once it is open: who may
// connect to which namespace, how fast it may send, how large a message
// may be. A polling request is served by the config of the moment, which
// applies its own policy; but a WebSocket relay outlives the config that
// upgraded it, so it reads the policy through its Engine.IO path's
// policySlot, which `caddy reload` moves to the new config, and applies it
// from its next packet on while keeping its worker.
type policy struct {
	namespaces map[string]*NamespaceRule
	messages   *Rate // nil: no message rate limit
	maxPayload int64
	digest     string // the settings above, to find an unchanged policy in a new config
	// upstreams are the handler's workers, for Observe to tell which
	// workers serve the path; not part of the digest: a live session
	// keeps its worker whatever the new config lists.
	workers func() []string
	// recoverWindow is the handler's Recover window, for Observe; 0
	// without recovery.
	recoverWindow time.Duration
}

func (h *Handler) newPolicy() *policy {
	p := &policy{namespaces: h.Namespaces, maxPayload: h.MaxPayload}
	if h.RateLimits != nil {
		p.messages = h.RateLimits.Messages
	}
	if h.Recover != nil {
		p.recoverWindow = time.Duration(h.Recover.Window)
	}
	p.workers = func() []string { return nil }
	if h.pool != nil {
		p.workers = h.pool.addrs
	}
	js, _ := json.Marshal([]any{p.namespaces, p.messages, p.maxPayload})
	p.digest = string(js)
	return p
}

// hasRules reports whether any namespace rule applies.
func (p *policy) hasRules() bool { return len(p.namespaces) > 0 }

// policySlots holds a *policySlot per Engine.IO path.
var policySlots = caddy.NewUsagePool()

// policySlot follows the policies of the handlers that serve one
// Engine.IO path, config after config. Each handler adds its policy in
// Provision and removes it in Cleanup; the newest config still present is
// current. So a reload moves live sessions to the new config's policy,
// and a config that fails to load (provisioned, then cleaned up without
// ever serving) leaves the running one in force.
//
// One config may hold several handlers on the same path (one per site).
// Caddy does not say which handler of a new config takes over which of
// the old, so then a live session follows the new config's policy that
// is the same as its own (a site the reload left alone), and keeps its
// own otherwise; only a path served by one handler is unambiguous.
type policySlot struct {
	mu      sync.Mutex
	configs []*slotConfig // in the order provisioned
	current atomic.Pointer[slotConfig]
}

// slotConfig is one config's policies for the path.
type slotConfig struct {
	root     caddy.Module // the app of the config, which tells configs apart
	policies []*policy
}

// Destruct implements caddy.Destructor.
func (*policySlot) Destruct() error { return nil }

// configRoot is the first module of a config's lineage (its http app),
// a different value for every config load.
func configRoot(ctx caddy.Context) caddy.Module {
	if mods := ctx.Modules(); len(mods) > 0 {
		return mods[0]
	}
	return nil
}

func loadPolicySlot(path string, root caddy.Module, p *policy) *policySlot {
	v, _, _ := policySlots.LoadOrNew(path, func() (caddy.Destructor, error) {
		return new(policySlot), nil
	})
	s := v.(*policySlot)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.configs, func(c *slotConfig) bool { return c.root == root })
	if i < 0 {
		s.configs = append(s.configs, &slotConfig{root: root})
		i = len(s.configs) - 1
	}
	// A new value, so readers of the current one never see it change.
	c := &slotConfig{root: root, policies: append(slices.Clone(s.configs[i].policies), p)}
	s.configs[i] = c
	s.publish()
	return s
}

// publish makes the newest config current; under mu.
func (s *policySlot) publish() {
	if n := len(s.configs); n > 0 {
		s.current.Store(s.configs[n-1])
	}
}

// release removes a config's policy. The last one stays current for the
// sessions that outlive every config.
func (s *policySlot) release(path string, root caddy.Module, p *policy) {
	s.mu.Lock()
	if i := slices.IndexFunc(s.configs, func(c *slotConfig) bool { return c.root == root }); i >= 0 {
		rest := slices.DeleteFunc(slices.Clone(s.configs[i].policies), func(q *policy) bool { return q == p })
		if len(rest) == 0 {
			s.configs = slices.Delete(s.configs, i, i+1)
		} else {
			s.configs[i] = &slotConfig{root: root, policies: rest}
		}
		s.publish()
	}
	s.mu.Unlock()
	_, _ = policySlots.Delete(path)
}

// now returns the policy in force for a session that began under own.
func (s *policySlot) now(own *policy) *policy {
	c := s.current.Load()
	if c == nil {
		return own
	}
	if len(c.policies) == 1 {
		return c.policies[0]
	}
	for _, p := range c.policies {
		if p == own || p.digest == own.digest {
			return p
		}
	}
	return own
}
