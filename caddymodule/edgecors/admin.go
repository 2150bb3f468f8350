package edgecors

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves on Caddy's admin endpoint what the edge_cors handlers
// allow:
//
//	GET /socketio/origins
//
// answers, for each edge_cors handler of the running configs, its
// effective allowed-origin set by source (the Caddyfile's list, the app's
// environment, any_loopback_port), its environment and whether it allows
// credentials: a JSON list of OriginSet. The path sits beside
// socketio_proxy's /socketio/upstreams and /socketio/namespaces.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.edge_cors",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/socketio/origins", Handler: caddy.AdminHandlerFunc(serveOrigins)}}
}

func serveOrigins(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed; use GET")}
	}
	sets := EffectiveOrigins()
	if sets == nil {
		sets = []OriginSet{}
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(sets); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return nil
}

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

// Interface guards
var (
	_ caddy.CleanerUpper = (*Handler)(nil)
	_ caddy.AdminRouter  = (*adminAPI)(nil)
)
