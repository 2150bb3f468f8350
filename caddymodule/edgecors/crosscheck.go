package edgecors

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// noteGuard tells the handlers after this one in its server what its
// origin guard covers, so that a socketio_proxy whose path it does not
// guard, or a client it does not make public, is refused at load (see
// package crosscheck). Provision calls it once the paths are resolved;
// Cleanup forgets it.
func (h *Handler) noteGuard(ctx caddy.Context) {
	crosscheck.AddGuard(ctx, h, crosscheck.Guard{EngineIOPath: h.engineIOPath, ClientPath: h.clientPath})
}
