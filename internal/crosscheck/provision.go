package crosscheck

import (
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Guard is what one origin guard (edge_cors) covers.
type Guard struct {
	// EngineIOPath is the prefix under which it checks handshakes.
	EngineIOPath string
	// ClientPath is the prefix it makes public for the browser client.
	ClientPath string
}

// guards are the origin guards of each server of each loaded config, in
// the order they were provisioned, which is their order in the server's
// routes (Caddy provisions a route list, subroutes included, in order).
var guards = struct {
	sync.Mutex
	byServer map[*caddyhttp.Server][]owned
}{byServer: make(map[*caddyhttp.Server][]owned)}

type owned struct {
	owner any
	Guard
}

// server is the HTTP server whose routes ctx is provisioning, if any.
func server(ctx caddy.Context) *caddyhttp.Server {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return srv
}

// AddGuard notes, while owner is provisioned, that it guards g in its
// server. RemoveGuard(owner) undoes it at Cleanup.
func AddGuard(ctx caddy.Context, owner any, g Guard) {
	srv := server(ctx)
	if srv == nil {
		return
	}
	guards.Lock()
	defer guards.Unlock()
	guards.byServer[srv] = append(guards.byServer[srv], owned{owner, g})
}

// RemoveGuard forgets owner's guard.
func RemoveGuard(owner any) {
	guards.Lock()
	defer guards.Unlock()
	for srv, list := range guards.byServer {
		for i, o := range list {
			if o.owner == owner {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(guards.byServer, srv)
		} else {
			guards.byServer[srv] = list
		}
	}
}

// Guards returns the origin guards provisioned so far in the server ctx
// is provisioning: those in front of the caller in its routes. ok is
// false outside an HTTP server (a handler provisioned on its own, as in
// unit tests), where nothing can be said.
func Guards(ctx caddy.Context) (gs []Guard, ok bool) {
	srv := server(ctx)
	if srv == nil {
		return nil, false
	}
	guards.Lock()
	defer guards.Unlock()
	for _, o := range guards.byServer[srv] {
		gs = append(gs, o.Guard)
	}
	return gs, true
}

// CheckEngineIOPath says whether a handler serving Engine.IO (or a page
// of it) under path has an origin guard in front of it that checks the
// handshakes under that path. It returns unguarded when the server has
// no guard before the handler (a warning: the handler works, unguarded),
// and an error when guards exist but none covers path (a config that
// leaves a gap between two modules written to work together).
func CheckEngineIOPath(ctx caddy.Context, module, path string) (unguarded bool, err error) {
	gs, ok := Guards(ctx)
	if !ok {
		return false, nil
	}
	if len(gs) == 0 {
		return true, nil
	}
	var paths []string
	for _, g := range gs {
		if g.EngineIOPath == path {
			return false, nil
		}
		paths = append(paths, g.EngineIOPath)
	}
	return false, fmt.Errorf("%s: Engine.IO path %q is not the engineio_path of the edge_cors in front of it (%s), so its origin guard does not check these handshakes; set edge_cors's engineio_path to %q",
		module, path, strings.Join(paths, ", "), path)
}

// CheckClientPath says whether the browser client served under path has
// an edge_cors in front of it whose client_path is the same, which pages
// on other origins need to load it. Without any guard it is nil.
func CheckClientPath(ctx caddy.Context, module, path string) error {
	gs, ok := Guards(ctx)
	if !ok || len(gs) == 0 {
		return nil
	}
	var paths []string
	for _, g := range gs {
		if g.ClientPath == path {
			return nil
		}
		paths = append(paths, g.ClientPath)
	}
	return fmt.Errorf("%s: path %q is not the client_path of the edge_cors in front of it (%s), so pages on other origins cannot load the client; set edge_cors's client_path to %q",
		module, path, strings.Join(paths, ", "), path)
}
