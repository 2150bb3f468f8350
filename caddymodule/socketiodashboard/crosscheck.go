package socketiodashboard

import (
	"slices"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// crossCheck warns when the origin guards (edge_cors) in front of the
// dashboard in its server all guard another Engine.IO path than the one
// it shows: the proxy it names is then not this site's, or not there.
// It is a warning, not an error as for socketio_proxy and the client:
// the dashboard shows a proxy of any site by path, and needs no guard.
//
// Whether a socketio_proxy serves EngineIOPath cannot be known here: the
// config's proxies may come after the dashboard in its routes (as
// flask_socketio writes them), and during a reload socketioproxy.Serves
// answers for the running config. data warns of that once the config
// runs. Provision calls crossCheck once the defaults are set.
func (h *Handler) crossCheck(ctx caddy.Context) {
	guards, ok := crosscheck.Guards(ctx)
	if !ok || len(guards) == 0 {
		return
	}
	var paths []string
	for _, g := range guards {
		if g.EngineIOPath == h.EngineIOPath {
			return
		}
		paths = append(paths, g.EngineIOPath)
	}
	h.logger.Warn("the dashboard's engineio_path is not the engineio_path of the edge_cors in front of it, so the socketio_proxy it shows is none that edge_cors guards; set engineio_path to socketio_proxy's path",
		zap.String("engineio_path", h.EngineIOPath), zap.Strings("guarded", slices.Compact(paths)))
}
