package socketioproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the live state of the edge on Caddy's admin endpoint,
// as reverse_proxy serves /reverse_proxy/upstreams:
//
//	GET /socketio/upstreams
//
// answers a JSON list with, for each worker, its address, whether it takes
// new sessions, and its live sessions on this edge by transport;
//
//	GET /socketio/namespaces
//
// answers, for each Socket.IO namespace, how many live sessions of this
// edge its workers have connected to it;
//
//	POST   /socketio/upstreams/<address>/drain
//	DELETE /socketio/upstreams/<address>/drain
//
// drains a worker for a deploy, and undoes it (see drain.go): no new
// sessions go to it, its live ones go on up to drain_timeout. The answer
// is the worker's status. (edge_cors serves its own /socketio/origins.)
type adminAPI struct{}

// UpstreamStatus is one worker in the admin API's answer.
type UpstreamStatus struct {
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	// Draining is set while the worker is drained for a deploy: it
	// takes no new sessions. DrainingSince says since when.
	Draining      bool       `json:"draining"`
	DrainingSince *time.Time `json:"draining_since,omitempty"`

	Sessions  int `json:"sessions"`
	Polling   int `json:"polling"`
	WebSocket int `json:"websocket"`
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.socketio",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/socketio/upstreams", Handler: adminJSON(func() any { return snapshot(allWorkers) })},
		{Pattern: "/socketio/namespaces", Handler: adminJSON(func() any { return namespaceSnapshot(allWorkers) })},
		{Pattern: "/socketio/upstreams/", Handler: caddy.AdminHandlerFunc(serveDrain)},
	}
}

// adminJSON answers GET with the JSON of what state returns.
func adminJSON(state func() any) caddy.AdminHandler {
	return caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(state()); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		return nil
	})
}

// snapshot is the state and live sessions of every configured worker
// that keep selects, sorted by address.
func snapshot(keep func(addr string) bool) []UpstreamStatus {
	now := time.Now()
	byAddr := map[string]*UpstreamStatus{}
	upstreamStates.Range(func(key, value any) bool {
		st := value.(*upstreamState)
		if !keep(st.addr) {
			return true
		}
		status := &UpstreamStatus{Address: st.addr, Healthy: st.healthy(now)}
		if draining, since := st.draining(); draining {
			status.Draining, status.DrainingSince = true, &since
		}
		byAddr[st.addr] = status
		return true
	})
	registries.Range(func(_, value any) bool {
		value.(*registry).each(func(up *upstreamState, websocket bool, _ []string) {
			st, ok := byAddr[up.addr]
			if !ok {
				return // a worker no config names any more, or not kept
			}
			st.Sessions++
			if websocket {
				st.WebSocket++
			} else {
				st.Polling++
			}
		})
		return true
	})
	out := make([]UpstreamStatus, 0, len(byAddr))
	for _, st := range byAddr {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b UpstreamStatus) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// NamespaceStatus is one namespace in the admin API's answer.
type NamespaceStatus struct {
	Namespace string `json:"namespace"`
	Sessions  int    `json:"sessions"`
}

// maxNamespacesShown bounds the namespaces listed (and labelled in the
// metrics): an app that accepts every namespace lets clients invent them.
// The rest are summed under "(other)".
const maxNamespacesShown = 100

// namespaceSnapshot is the live sessions of each namespace, most first,
// counting the sessions on the workers that keep selects.
func namespaceSnapshot(keep func(addr string) bool) []NamespaceStatus {
	counts := map[string]int{}
	registries.Range(func(_, value any) bool {
		value.(*registry).each(func(up *upstreamState, _ bool, namespaces []string) {
			if !keep(up.addr) {
				return
			}
			for _, ns := range namespaces {
				counts[ns]++
			}
		})
		return true
	})
	out := make([]NamespaceStatus, 0, len(counts))
	for ns, n := range counts {
		out = append(out, NamespaceStatus{ns, n})
	}
	slices.SortFunc(out, func(a, b NamespaceStatus) int {
		if a.Sessions != b.Sessions {
			return b.Sessions - a.Sessions
		}
		return strings.Compare(a.Namespace, b.Namespace)
	})
	if len(out) > maxNamespacesShown {
		other := NamespaceStatus{Namespace: "(other)"}
		for _, st := range out[maxNamespacesShown-1:] {
			other.Sessions += st.Sessions
		}
		out = append(out[:maxNamespacesShown-1], other)
	}
	return out
}

// Interface guard
var _ caddy.AdminRouter = (*adminAPI)(nil)

// serveDrain drains (POST) or undrains (DELETE) the worker named in
// /socketio/upstreams/<address>/drain.
func serveDrain(w http.ResponseWriter, r *http.Request) error {
	addr, ok := strings.CutPrefix(r.URL.Path, "/socketio/upstreams/")
	if ok {
		addr, ok = strings.CutSuffix(addr, "/drain")
	}
	if !ok || addr == "" {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such route; drain a worker with POST /socketio/upstreams/<address>/drain")}
	}
	v, known := upstreamStates.References(addr)
	if !known || v == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no Socket.IO worker %q in the running config; GET /socketio/upstreams lists them", addr)}
	}
	st := loadUpstreamState(addr)
	defer upstreamStates.Delete(addr)
	logger := caddy.Log().Named("admin.api.socketio")
	switch r.Method {
	case http.MethodPost:
		reg := loadRegistry()
		beginDrain(logger, reg, st, drainedByAdmin)
		_, _ = registries.Delete(registryKey)
	case http.MethodDelete:
		if st.undrain(drainedByAdmin) {
			logger.Warn("Socket.IO worker no longer draining: takes new sessions", zap.String("upstream", addr), zap.String("by", drainedByAdmin))
		}
	default:
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("POST drains the worker, DELETE undoes it")}
	}
	for _, s := range snapshot(func(a string) bool { return a == addr }) {
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(s)
	}
	return nil
}
