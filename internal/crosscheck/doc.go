// Package crosscheck holds the settings that several of the edge's
// modules must agree on, so that a layout written with separate
// directives cannot leave a gap between them:
//
//   - the Engine.IO path: socketio_proxy's path, edge_cors's
//     engineio_path (the handshakes its origin guard checks) and the
//     client's and the dashboard's engineio_path;
//   - the client path: where socketio_client serves the browser client
//     and the prefix edge_cors makes public (its client_path).
//
// It checks them twice. While a Caddyfile is adapted, each directive
// notes its value with Agree, and the second of two directives that
// disagree is refused with both lines named (caddyfile.go). While a
// config is provisioned, edge_cors notes what it guards with AddGuard
// and the handlers after it in the same server compare their paths with
// Guards (provision.go), which covers JSON configs too, without lines.
//
// flask_socketio writes every path once and cannot disagree with
// itself; it notes its paths as well, for the directives written beside
// it.
package crosscheck
