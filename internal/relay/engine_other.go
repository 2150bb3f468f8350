//go:build !linux

package relay

import "github.com/gorilla/websocket"

// startEvented reports that there is no event engine on this system.
func startEvented(*websocket.Conn, *websocket.Conn, Options, func(error)) bool {
	return false
}
