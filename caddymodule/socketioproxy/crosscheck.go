package socketioproxy

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// crossCheck compares the handler with the origin guards (edge_cors)
// provisioned before it in its server, which are the ones in front of
// it. With none, it logs a warning: the proxy works, but any site can
// open a Socket.IO session, WebSocket included, with the user's cookies.
// With guards of which none checks this handler's path, it is an error:
// the two were written to work together and leave the handshakes
// unguarded. Provision calls it once the defaults are set.
func (h *Handler) crossCheck(ctx caddy.Context) error {
	path := h.Path
	if path == "" {
		path = DefaultPath
	}
	unguarded, err := crosscheck.CheckEngineIOPath(ctx, "socketio_proxy", path)
	if unguarded {
		h.logger.Warn("socketio_proxy has no origin guard in front of it: any site can open a Socket.IO session, WebSocket included, with your users' cookies; "+
			"put edge_cors before it (`edge_cors https://app.example.com`), or write the site with flask_socketio, which does",
			zap.String("path", path))
	}
	return err
}
