// Command xcaddy-build is Caddy with its standard modules and this
// project's edge modules linked in. It is the same program that
//
//	xcaddy build --with github.com/flaskedge/flaskedge=.
//
// produces, built with nothing but the Go toolchain:
//
//	go build -o bin/caddy ./cmd/xcaddy-build
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/flaskedge/flaskedge"
)

func main() {
	caddycmd.Main()
}
