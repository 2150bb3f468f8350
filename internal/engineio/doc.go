// Package engineio holds the parts of the Engine.IO v4 protocol the edge
// needs to read: what an Engine.IO HTTP request asks for (its query
// string), the packets of a polling payload, and the error replies a
// client library understands. It has no Caddy imports and no I/O of its
// own, so every function here is a pure parser or formatter that can be
// fuzzed.
//
// Names follow the specification at
// https://github.com/socketio/engine.io-protocol (v4): open, close, ping,
// pong, message, upgrade, noop.
package engineio
