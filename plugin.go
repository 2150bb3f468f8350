// Package flaskedge is the Caddy plugin that makes Caddy the production
// edge of a Flask / Flask-SocketIO application. Importing it registers
// the edge's Caddy modules:
//
//   - http.handlers.edge_cors: CORS for the app's origins, preflights and
//     the WebSocket Origin guard;
//   - http.authentication.providers.flask_session: Flask's signed session
//     cookie verified at the edge (Caddyfile directive flask_session);
//   - http.handlers.socketio_proxy: the Socket.IO-aware proxy;
//   - http.handlers.socketio_dashboard: the live dashboard of a
//     socketio_proxy, for operators;
//   - http.handlers.socketio_client: the browser client (client.js and
//     its config.json);
//   - admin.api.socketio and admin.api.edge_cors: their admin routes;
//   - http.reverse_proxy.upstreams.file: workers read from a file, a
//     dynamic upstream source for socketio_proxy and reverse_proxy;
//
// and the Caddyfile directive flask_socketio, which writes them (with
// reverse_proxy for the rest of the app) in the order they run, every
// path once.
//
// xcaddy builds it in with
//
//	xcaddy build --with github.com/flaskedge/flaskedge
package flaskedge

import (
	_ "github.com/flaskedge/flaskedge/caddymodule/edgecors"
	_ "github.com/flaskedge/flaskedge/caddymodule/flasksession"
	_ "github.com/flaskedge/flaskedge/caddymodule/flasksocketio"
	_ "github.com/flaskedge/flaskedge/caddymodule/socketioclient"
	_ "github.com/flaskedge/flaskedge/caddymodule/socketiodashboard"
	_ "github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
	_ "github.com/flaskedge/flaskedge/caddymodule/upstreamfile"
)
