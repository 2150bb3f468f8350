package socketioproxy

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("socketio_proxy", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("socketio_proxy", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var sp Handler
	err := sp.UnmarshalCaddyfile(h.Dispenser)
	return &sp, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	socketio_proxy [<matcher>] [<upstreams...>] {
//		to           <upstreams...>
//		path         <prefix>
//		max_payload  <size>
//		dial_timeout <duration>
//	}
//
// Upstreams are the Flask-SocketIO workers, host:port. path is the
// Engine.IO endpoint (default /socket.io/); requests outside it go to the
// next handler. max_payload takes a byte count or a size such as 1MB.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.Upstreams = append(h.Upstreams, d.RemainingArgs()...)
	for d.NextBlock(0) {
		switch d.Val() {
		case "to":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("to needs at least one upstream, e.g. `to 127.0.0.1:5001`")
			}
			h.Upstreams = append(h.Upstreams, args...)
		case "path":
			if !d.NextArg() {
				return d.Errf("path needs the Engine.IO endpoint, e.g. `path /socket.io/`")
			}
			h.Path = d.Val()
			if d.NextArg() {
				return d.Errf("path takes one argument, got also %q", d.Val())
			}
		case "max_payload":
			if !d.NextArg() {
				return d.Errf("max_payload needs a size, e.g. `max_payload 1MB`")
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("max_payload %q is not a size; write e.g. `max_payload 1MB` or `max_payload 1000000`", d.Val())
			}
			h.MaxPayload = int64(size)
			if d.NextArg() {
				return d.Errf("max_payload takes one argument, got also %q", d.Val())
			}
		case "dial_timeout":
			if !d.NextArg() {
				return d.Errf("dial_timeout needs a duration, e.g. `dial_timeout 5s`")
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("dial_timeout %q is not a positive duration; write e.g. `dial_timeout 5s`", d.Val())
			}
			h.DialTimeout = caddy.Duration(dur)
			if d.NextArg() {
				return d.Errf("dial_timeout takes one argument, got also %q", d.Val())
			}
		default:
			return d.Errf("unknown subdirective %q; socketio_proxy knows to, path, max_payload and dial_timeout", d.Val())
		}
	}
	if len(h.Upstreams) == 0 {
		return d.Errf("socketio_proxy needs an upstream, e.g. `socketio_proxy 127.0.0.1:5001` or `to 127.0.0.1:5001` in its block")
	}
	for _, u := range h.Upstreams {
		if _, err := parseUpstream(u); err != nil && !strings.Contains(u, "{") {
			return d.Err(err.Error())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
