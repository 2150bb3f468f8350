package edgecors

import (
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// OriginSet is the effective allowed-origin set of one edge_cors handler
// of the running config, by source, as the admin API shows it.
type OriginSet struct {
	Environment string         `json:"environment"`
	Credentials bool           `json:"credentials"`
	Sources     []OriginSource `json:"sources"`
}

// OriginSource is one place allowed origins come from: the Caddyfile's
// list, the app's environment, or any_loopback_port.
type OriginSource = diagnosisSource

// live holds the OriginSet of every provisioned handler until its config
// is cleaned up.
var live sync.Map // *Handler → OriginSet

// EffectiveOrigins lists the origin sets of the handlers in the running
// configs (during a reload, the old config's too, until it is cleaned
// up).
func EffectiveOrigins() []OriginSet {
	var out []OriginSet
	live.Range(func(_, v any) bool {
		out = append(out, v.(OriginSet))
		return true
	})
	slices.SortFunc(out, func(a, b OriginSet) int { return strings.Compare(describe(a), describe(b)) })
	return out
}

func describe(s OriginSet) string {
	var b strings.Builder
	for _, src := range s.Sources {
		b.WriteString(src.Source)
		b.WriteString(strings.Join(src.Origins, " "))
	}
	return b.String()
}

// Cleanup forgets the handler's origin set and its guard.
func (h *Handler) Cleanup() error {
	live.Delete(h)
	crosscheck.RemoveGuard(h)
	return nil
}

// Interface guard
var _ caddy.CleanerUpper = (*Handler)(nil)
