package socketioclient

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// crossCheck compares the handler's paths with the origin guards
// (edge_cors) provisioned before it in its server, the ones in front of
// it, as the Caddyfile adapter does for a block (see package
// crosscheck): with guards, one of them must make Path public (its
// client_path), or pages on other origins cannot load the client, and
// check the handshakes under EngineIOPath, where the client connects.
// Without guards nothing is said: socketio_proxy warns of that itself.
// Provision calls it once the defaults are set.
func (h *Handler) crossCheck(ctx caddy.Context) error {
	if err := crosscheck.CheckClientPath(ctx, "socketio_client", h.Path); err != nil {
		return err
	}
	_, err := crosscheck.CheckEngineIOPath(ctx, "socketio_client", h.EngineIOPath)
	return err
}
