// Package flasksocketio is the flask_socketio Caddyfile directive: the
// whole edge of a Flask-SocketIO application in one directive, as
// php_fastcgi is for PHP. It is not a module of its own: it expands into
// the edge's modules and Caddy's reverse_proxy, in the order they must
// run, with every path written once.
package flasksocketio

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/flaskedge/flaskedge/caddymodule/edgecors"
	"github.com/flaskedge/flaskedge/caddymodule/flasksession"
	"github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
	"github.com/flaskedge/flaskedge/internal/crosscheck"
	"github.com/flaskedge/flaskedge/internal/secretsafe"
	"github.com/flaskedge/flaskedge/internal/upstreamtls"
)

func init() {
	httpcaddyfile.RegisterDirective("flask_socketio", parseCaddyfile)
	// Among the terminal handlers, as php_fastcgi: it ends in a
	// reverse_proxy that answers every request, so the site's handle
	// blocks, redirects and file servers must come before it.
	httpcaddyfile.RegisterDirectiveOrder("flask_socketio", httpcaddyfile.After, "reverse_proxy")
}

// Defaults of flask_socketio's own settings.
const (
	DefaultClientPath    = "/socket.io-edge/"
	DefaultDashboardRole = "admin"
)

// site is one flask_socketio directive as read.
type site struct {
	directive caddyfile.Token
	workers   []string
	// path is the Engine.IO path, "" for the default; pathAt is where
	// it was written.
	path       string
	pathAt     *caddyfile.Token
	clientPath string // "off": no client
	clientAt   *caddyfile.Token
	dashboard  *dashboard

	cors    edgecors.Handler
	session flasksession.FlaskSession
	// sessionAt is the first flask_session subdirective, nil when the
	// site has no session.
	sessionAt *caddyfile.Token
	proxy     socketioproxy.Handler
	// reverseProxy is the reverse_proxy sub-block, name and braces
	// included; reverseProxyAt is its line.
	reverseProxy   caddyfile.Segment
	reverseProxyAt *caddyfile.Token
	// transport is the transport block, name and braces included, nil
	// when not written; its TLS settings are in proxy.TLS too.
	transport caddyfile.Segment
	// rpTransport is the protocol of a transport written in the
	// reverse_proxy block ("" if none), and rpTransportEnd the index of
	// its closing brace in reverseProxy, where the TLS settings go.
	rpTransport    string
	rpTransportEnd int
}

type dashboard struct {
	path  string
	roles []string
	at    caddyfile.Token
}

// parseCaddyfile expands flask_socketio. Syntax:
//
//	flask_socketio [<matcher>] [<workers...>] {
//		to            <workers...>
//		transport     http {
//			<reverse_proxy's tls_* settings>
//		}
//		path          <prefix>
//		client_path   <prefix>|off
//		dashboard     <path> [role <roles...>]
//		reverse_proxy {
//			<reverse_proxy's subdirectives>
//		}
//		session_max_age <duration>
//		cors_max_age    <duration>
//		<every subdirective of edge_cors, flask_session and socketio_proxy>
//	}
//
// It expands, in this order, into edge_cors (the origin guard and CORS),
// flask_session's authentication handler when a secret_key is given,
// the browser client (socketio_client at client_path, default
// /socket.io-edge/), the dashboard (socketio_dashboard, in a route for
// path <path>* behind flask_session with `require role <roles>`, default
// role admin; off unless dashboard is written), socketio_proxy, and
// reverse_proxy to the same workers for the rest of the app, with the
// contents of the reverse_proxy block (health_uri, header_up, ...).
//
// The workers, the Engine.IO path (socketio_proxy's path, edge_cors's
// engineio_path, the client's and the dashboard's), client_path (the
// client's path and edge_cors's client_path) and the TLS to the workers
// are written once. transport http, with reverse_proxy's tls_* settings
// only (tls_trust_pool, tls_server_name, tls_client_auth, ...; see
// package upstreamtls), becomes socketio_proxy's TLS, reverse_proxy's
// transport and flask_session's whoami trust. Every
// other subdirective goes to the module that has it, with that module's
// syntax; max_age, which edge_cors and flask_session both have, is
// written cors_max_age or session_max_age. With a matcher, the whole
// expansion is in one route under it.
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	h.Next() // the directive name, before a matcher
	matcher, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	s, err := read(h.Dispenser)
	if err != nil {
		return nil, err
	}
	if err := s.agree(h); err != nil {
		return nil, err
	}
	subroute, err := s.expand(h)
	if err != nil {
		return nil, err
	}
	if matcher != nil {
		return []httpcaddyfile.ConfigValue{{
			Class: "route",
			Value: caddyhttp.Route{
				MatcherSetsRaw: []caddy.ModuleMap{matcher},
				HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(subroute, "handler", "subroute", nil)},
			},
		}}, nil
	}
	// As php_fastcgi: the literal subroute keeps the routes together and
	// in order; the adapter inlines it.
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: subroute}}, nil
}

// read reads the directive's tokens from the start of d.
func read(d *caddyfile.Dispenser) (*site, error) {
	d.Next()
	s := &site{directive: d.Token()}
	s.workers = d.RemainingArgs()
	last := "" // the subdirective before this one
	for d.NextBlock(0) {
		name, at := d.Val(), d.Token()
		prev := last
		last = name
		// Each subdirective gets a dispenser of its own line (and
		// block), so no parser can read into the next one.
		seg := d.NextSegment()
		sd := caddyfile.NewDispenser(seg)
		sd.Next()
		if parse, ok := own[name]; ok {
			if err := parse(s, sd, at); err != nil {
				return nil, err
			}
			continue
		}
		if hint, ok := refused[name]; ok {
			return nil, sd.Errf("flask_socketio: %s", hint)
		}
		ok, err := s.dispatch(sd)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, secretsafe.UnknownSubdirective(sd, prev, "flask_socketio", Subdirectives())
		}
	}
	return s, s.complete()
}

// dispatch gives the subdirective sd is on to the module that has it.
func (s *site) dispatch(sd *caddyfile.Dispenser) (bool, error) {
	if ok, err := s.cors.UnmarshalSubdirective(sd); ok {
		return true, err
	}
	at := sd.Token()
	if ok, err := s.session.UnmarshalSubdirective(sd); ok {
		if s.sessionAt == nil {
			s.sessionAt = &at
		}
		return true, err
	}
	return s.proxy.UnmarshalSubdirective(sd)
}

// own are flask_socketio's own subdirectives: the settings it shares
// between modules, the dashboard, the reverse_proxy block, and the two
// names for max_age.
var own = map[string]func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error{
	"to": func(s *site, d *caddyfile.Dispenser, _ caddyfile.Token) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("flask_socketio: to needs at least one worker, e.g. `to 127.0.0.1:5001 127.0.0.1:5002`")
		}
		s.workers = append(s.workers, args...)
		return nil
	},
	"path": func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error {
		s.pathAt = &at
		return oneArg(d, &s.path, "path /socket.io/")
	},
	"client_path": func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error {
		s.clientAt = &at
		return oneArg(d, &s.clientPath, "client_path /socket.io-edge/` or `client_path off")
	},
	"dashboard": func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error {
		args := d.RemainingArgs()
		const usage = "flask_socketio: dashboard takes a path and optionally the roles that may see it, e.g. `dashboard /_edge/dashboard/ role admin`"
		switch {
		case len(args) == 1:
			s.dashboard = &dashboard{path: args[0], roles: []string{DefaultDashboardRole}, at: at}
		case len(args) >= 3 && args[1] == "role":
			s.dashboard = &dashboard{path: args[0], roles: args[2:], at: at}
		default:
			return d.Err(usage)
		}
		return nil
	},
	"transport": func(s *site, d *caddyfile.Dispenser, _ caddyfile.Token) error {
		if s.transport != nil {
			return d.Errf("flask_socketio: transport given twice; write every TLS setting in one `transport http { ... }` block")
		}
		t, err := upstreamtls.Parse(d)
		if err != nil {
			return fmt.Errorf("flask_socketio: %w", err)
		}
		if t == nil {
			return d.Errf("flask_socketio: transport http has no TLS setting; workers are plain http without it, or add e.g. `tls_trust_pool file /etc/flaskedge/workers-ca.pem`")
		}
		s.proxy.TLS = t
		d.Reset()
		d.Next()
		s.transport = d.NextSegment()
		return nil
	},
	"reverse_proxy": func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error {
		if d.NextArg() {
			return d.Errf("flask_socketio: reverse_proxy takes no upstream here: it proxies to flask_socketio's workers; write its subdirectives in its block, e.g. `reverse_proxy { health_uri /healthz }`")
		}
		if s.reverseProxy != nil {
			return d.Errf("flask_socketio: reverse_proxy given twice; write its subdirectives in one block")
		}
		d.Reset()
		d.Next()
		s.reverseProxy = d.NextSegment()
		s.reverseProxyAt = &at
		return s.findReverseProxyTransport()
	},
	"session_max_age": renamed("max_age", func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error {
		if s.sessionAt == nil {
			s.sessionAt = &at
		}
		_, err := s.session.UnmarshalSubdirective(d)
		return err
	}),
	"cors_max_age": renamed("max_age", func(s *site, d *caddyfile.Dispenser, _ caddyfile.Token) error {
		_, err := s.cors.UnmarshalSubdirective(d)
		return err
	}),
}

// refused are the modules' subdirectives that flask_socketio writes
// itself or could not tell apart.
var refused = map[string]string{
	"engineio_path":    "engineio_path is written once, as path: `path /socket.io/` sets socketio_proxy's path and edge_cors's engineio_path",
	"whoami_transport": "the transport is written once: `transport http { tls_trust_pool file ca.pem }` applies to socketio_proxy, reverse_proxy and whoami alike",
	"max_age": "max_age is edge_cors's (how long browsers cache a preflight) and flask_session's (the oldest session cookie accepted); " +
		"write cors_max_age or session_max_age",
}

// renamed reads a subdirective that a module knows under another name:
// parse gets a dispenser on the module's name, and at, the token as
// written.
func renamed(name string, parse func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error) func(*site, *caddyfile.Dispenser, caddyfile.Token) error {
	return func(s *site, d *caddyfile.Dispenser, at caddyfile.Token) error {
		d.Reset()
		d.Next()
		seg := d.NextSegment()
		seg[0].Text = name
		nd := caddyfile.NewDispenser(seg)
		nd.Next()
		return parse(s, nd, at)
	}
}

// Subdirectives are the names flask_socketio takes, sorted: its own and
// every subdirective of edge_cors, flask_session and socketio_proxy but
// those it writes itself.
func Subdirectives() []string {
	var names []string
	for _, list := range [][]string{edgecors.Subdirectives(), flasksession.Subdirectives(), socketioproxy.Subdirectives()} {
		for _, name := range list {
			if _, r := refused[name]; !r {
				names = append(names, name)
			}
		}
	}
	for name := range own {
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// complete checks that what the site needs was written.
func (s *site) complete() error {
	if len(s.workers) == 0 && s.proxy.DynamicUpstreamsRaw == nil {
		return s.errAt(s.directive, "flask_socketio needs the Flask-SocketIO workers, e.g. `flask_socketio 127.0.0.1:5001 127.0.0.1:5002`, or a source of them, e.g. `dynamic file /etc/caddy/workers`")
	}
	if s.sessionAt != nil && len(s.session.SecretKeys) == 0 {
		return s.errAt(*s.sessionAt, "flask_socketio: "+s.sessionAt.Text+" is flask_session's, which needs the app's key: add `secret_key {env.FLASK_SECRET_KEY}`")
	}
	if len(s.session.SecretKeys) == 0 {
		if s.dashboard != nil {
			return s.errAt(s.dashboard.at, "flask_socketio: the dashboard is for users with a role, which the edge reads from the Flask session: add `secret_key {env.FLASK_SECRET_KEY}`")
		}
		for _, ns := range slices.Sorted(maps.Keys(s.proxy.Namespaces)) {
			if rule := s.proxy.Namespaces[ns]; rule.Access == socketioproxy.AccessAuthenticated || rule.Access == socketioproxy.AccessRole {
				return s.errAt(s.directive, "flask_socketio: namespace "+ns+" is for "+rule.Access+" users, whom the edge knows from the Flask session: add `secret_key {env.FLASK_SECRET_KEY}`")
			}
		}
	}
	return nil
}

func (s *site) errAt(t caddyfile.Token, msg string) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{t})
	d.Next()
	return d.Err(msg)
}

// enginePath is the Engine.IO path, written or default.
func (s *site) enginePath() string {
	if s.path == "" {
		return socketioproxy.DefaultPath
	}
	return s.path
}

// agree notes the site's paths for the directives written beside it
// (see package crosscheck).
func (s *site) agree(h httpcaddyfile.Helper) error {
	note := func(sub, value string, at *caddyfile.Token) crosscheck.Note {
		t := s.directive
		if at != nil {
			t = *at
		}
		return crosscheck.Note{Directive: "flask_socketio", Subdirective: sub, Value: value, Written: at != nil, File: t.File, Line: t.Line}
	}
	if err := crosscheck.Agree(h, crosscheck.EngineIOPath, note("path", s.enginePath(), s.pathAt)); err != nil {
		return err
	}
	if s.clientPath == "off" {
		return nil
	}
	client := s.clientPath
	if client == "" {
		client = DefaultClientPath
	}
	return crosscheck.Agree(h, crosscheck.ClientPath, note("client_path", client, s.clientAt))
}

// expand writes the site's routes, in the order they run.
func (s *site) expand(h httpcaddyfile.Helper) (caddyhttp.Subroute, error) {
	var warnings []caddyconfig.Warning
	handler := func(v any, name string) json.RawMessage {
		return caddyconfig.JSONModuleObject(v, "handler", name, &warnings)
	}
	var routes caddyhttp.RouteList
	add := func(v any, name string) {
		routes = append(routes, caddyhttp.Route{HandlersRaw: []json.RawMessage{handler(v, name)}})
	}

	client := s.clientPath
	switch client {
	case "off":
	case "":
		client = DefaultClientPath
	default:
		s.cors.ClientPath = client
	}
	s.cors.EngineIOPath = s.path
	s.proxy.Path = s.path
	s.proxy.Upstreams = s.workers
	if s.session.Whoami != nil && s.proxy.TLS != nil {
		tlsCopy := *s.proxy.TLS
		s.session.Whoami.TLS = &tlsCopy
	}
	add(&s.cors, "edge_cors")
	if len(s.session.SecretKeys) > 0 {
		add(flasksession.Authentication(&s.session), "authentication")
	}
	if client != "off" {
		add(pathsJSON{Path: client, EngineIOPath: s.enginePath()}, "socketio_client")
	}
	if dash := s.dashboard; dash != nil {
		guard := s.session
		guard.Require = &flasksession.Require{Roles: dash.roles}
		inner := caddyhttp.Subroute{Routes: caddyhttp.RouteList{
			{HandlersRaw: []json.RawMessage{handler(flasksession.Authentication(&guard), "authentication")}},
			{HandlersRaw: []json.RawMessage{handler(pathsJSON{Path: dash.path, EngineIOPath: s.enginePath()}, "socketio_dashboard")}},
		}}
		routes = append(routes, caddyhttp.Route{
			MatcherSetsRaw: []caddy.ModuleMap{{"path": h.JSON(caddyhttp.MatchPath{dash.path + "*"})}},
			HandlersRaw:    []json.RawMessage{handler(inner, "subroute")},
		})
	}
	add(&s.proxy, "socketio_proxy")

	rp, err := s.reverseProxyHandler(h)
	if err != nil {
		return caddyhttp.Subroute{}, err
	}
	add(rp, "reverse_proxy")
	if len(warnings) > 0 {
		return caddyhttp.Subroute{}, s.errAt(s.directive, "flask_socketio: "+warnings[0].Message)
	}
	return caddyhttp.Subroute{Routes: routes}, nil
}

// pathsJSON is the configuration of the client and the dashboard
// handlers: where they are served and the Engine.IO path they use.
type pathsJSON struct {
	Path         string `json:"path"`
	EngineIOPath string `json:"engineio_path"`
}

// reverseProxyHandler is reverse_proxy to the workers, read by
// reverse_proxy's own parser with the site's reverse_proxy block.
func (s *site) reverseProxyHandler(h httpcaddyfile.Helper) (*reverseproxy.Handler, error) {
	at := s.directive
	if s.reverseProxyAt != nil {
		at = *s.reverseProxyAt
	}
	// The name and the workers on the block's line, as if written
	// `reverse_proxy <workers...> {`.
	tokens := []caddyfile.Token{{Text: "reverse_proxy", File: at.File, Line: at.Line}}
	for _, w := range s.workers {
		tokens = append(tokens, caddyfile.Token{Text: w, File: at.File, Line: at.Line})
	}
	switch {
	case s.transport != nil:
		// The block, with the TLS settings in its transport; the tokens
		// are renumbered so that each line follows the one before, as
		// the dispenser reads lines by number.
		tokens = append(tokens, caddyfile.Token{Text: "{", File: at.File, Line: at.Line})
		next := at.Line + 1
		switch s.rpTransport {
		case "":
			if len(s.reverseProxy) > 2 {
				tokens, next = relined(tokens, s.reverseProxy[2:len(s.reverseProxy)-1], next)
			}
			tokens, next = relined(tokens, s.transport, next)
		case "http":
			// Into reverse_proxy's own transport http block, before its
			// closing brace.
			tokens, next = relined(tokens, s.reverseProxy[2:s.rpTransportEnd], next)
			tokens, next = relined(tokens, s.transport[3:len(s.transport)-1], next)
			tokens, next = relined(tokens, s.reverseProxy[s.rpTransportEnd:len(s.reverseProxy)-1], next)
		default:
			return nil, s.errAt(s.transport[0], "flask_socketio: the workers are reached with transport http and TLS, but the reverse_proxy block has transport "+s.rpTransport)
		}
		tokens = append(tokens, caddyfile.Token{Text: "}", File: at.File, Line: next})
	case len(s.reverseProxy) > 1:
		tokens = append(tokens, s.reverseProxy[1:]...)
	}
	rp := new(reverseproxy.Handler)
	d := caddyfile.NewDispenser(tokens)
	if err := rp.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	if err := rp.FinalizeUnmarshalCaddyfile(h.WithDispenser(d)); err != nil {
		return nil, err
	}
	if len(s.workers) == 0 {
		// The workers of the dynamic source, as socketio_proxy's.
		rp.DynamicUpstreamsRaw = s.proxy.DynamicUpstreamsRaw
	}
	return rp, nil
}

// findReverseProxyTransport finds a transport in the reverse_proxy block,
// which may hold reverse_proxy's own settings (dial_timeout, keepalive,
// ...) but no TLS: the TLS to the workers is written once, in
// flask_socketio's transport, for every module that reaches them.
func (s *site) findReverseProxyTransport() error {
	block := s.reverseProxy
	depth := 0
	for i := 2; i < len(block)-1; i++ {
		t := block[i]
		switch {
		case t.Text == "{":
			depth++
		case t.Text == "}":
			depth--
			if depth == 0 && s.rpTransport != "" && s.rpTransportEnd == 0 {
				s.rpTransportEnd = i
			}
		case depth == 0 && t.Text == "transport" && i+1 < len(block):
			s.rpTransport = block[i+1].Text
		case depth == 1 && s.rpTransport != "" && s.rpTransportEnd == 0 && strings.HasPrefix(t.Text, "tls"):
			d := caddyfile.NewDispenser([]caddyfile.Token{t})
			d.Next()
			return d.Errf("flask_socketio: %s goes in flask_socketio's own `transport http { ... }`, beside reverse_proxy, so that socketio_proxy, reverse_proxy and whoami all reach the workers with it", t.Text)
		}
	}
	return nil
}

// relined appends seg to tokens, its lines shifted to start at line, and
// returns the line after it.
func relined(tokens []caddyfile.Token, seg caddyfile.Segment, line int) ([]caddyfile.Token, int) {
	shift := line - seg[0].Line
	for _, t := range seg {
		t.Line += shift
		tokens = append(tokens, t)
		line = t.Line + t.NumLineBreaks() + 1
	}
	return tokens, line
}

// oneArg reads the one argument of the subdirective d is on into v.
func oneArg(d *caddyfile.Dispenser, v *string, example string) error {
	sub := d.Val()
	if !d.NextArg() {
		return d.Errf("flask_socketio: %s needs a value, e.g. `%s`", sub, example)
	}
	val := d.Val()
	if d.NextArg() {
		return d.Errf("flask_socketio: %s takes one value, got also %q; write e.g. `%s`", sub, d.Val(), example)
	}
	*v = val
	return nil
}
