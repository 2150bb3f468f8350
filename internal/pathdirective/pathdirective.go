// Package pathdirective is the Caddyfile syntax shared by socketio_client
// and socketio_dashboard: a handler served under a path prefix of its
// own that names the Engine.IO path of a socketio_proxy,
//
//	<directive> [<matcher>] [<path>] {
//		engineio_path <prefix>
//	}
//
// Caddy reads a first argument that starts with "/" as a path matcher;
// here a lone one is the path, so `socketio_client /js/edge/` serves the
// client under /js/edge/, and a matcher comes before the path. Each
// module keeps its own Handler, defaults and godoc; this reads the
// tokens into its fields and notes its paths for the cross-checks
// (package crosscheck).
package pathdirective

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

// Syntax is one directive of this shape.
type Syntax struct {
	// Directive is its name, e.g. "socketio_client".
	Directive string
	// DefaultPath and DefaultEngineIOPath are the handler's defaults,
	// for the messages and the cross-checks.
	DefaultPath, DefaultEngineIOPath string
	// PathSetting is the crosscheck setting the path must agree on
	// (crosscheck.ClientPath), or "" when it need agree with nothing.
	PathSetting string
}

// Fields are the handler's fields the directive sets.
type Fields struct {
	Path, EngineIOPath *string
}

// Route reads the directive h is on into f and returns the route of
// handler, whose fields f are, under the directive's matcher. The
// handler's paths, written or default, are noted for the cross-checks,
// and a disagreement with a directive before it is refused naming both
// lines.
func (s Syntax) Route(h httpcaddyfile.Helper, handler caddyhttp.MiddlewareHandler, f Fields) ([]httpcaddyfile.ConfigValue, error) {
	h.Next() // directive name
	args := h.RemainingArgs()
	h.Reset()
	h.Next()
	var matcherSet caddy.ModuleMap
	if len(args) > 1 || len(args) == 1 && !strings.HasPrefix(args[0], "/") {
		var err error
		if matcherSet, err = h.ExtractMatcherSet(); err != nil {
			return nil, err
		}
	}
	h.Reset()
	if err := s.Unmarshal(h.Dispenser, f); err != nil {
		return nil, err
	}
	if err := s.agree(h, f); err != nil {
		return nil, err
	}
	return h.NewRoute(matcherSet, handler), nil
}

// agree notes the paths for the cross-checks (see crosscheck.Agree).
func (s Syntax) agree(h httpcaddyfile.Helper, f Fields) error {
	if s.PathSetting != "" {
		// The path is the directive's argument: its line either way.
		h.Reset()
		h.Next()
		note := crosscheck.NoteAt(h.Dispenser, s.Directive, "", or(*f.Path, s.DefaultPath), *f.Path != "")
		if err := crosscheck.Agree(h, s.PathSetting, note); err != nil {
			return err
		}
	}
	note := crosscheck.NoteIn(h.Dispenser, s.Directive, "engineio_path", or(*f.EngineIOPath, s.DefaultEngineIOPath))
	return crosscheck.Agree(h, crosscheck.EngineIOPath, note)
}

// Unmarshal reads the directive d is on, matcher already removed, into f.
func (s Syntax) Unmarshal(d *caddyfile.Dispenser, f Fields) error {
	d.Next() // directive name
	if d.NextArg() {
		*f.Path = d.Val()
	}
	if d.NextArg() {
		return d.Errf("%s takes one path, got also %q; write `%s [<matcher>] [<path>]`, e.g. `%s %s`", s.Directive, d.Val(), s.Directive, s.Directive, s.DefaultPath)
	}
	for d.NextBlock(0) {
		ok, err := s.UnmarshalSubdirective(d, f)
		if err != nil {
			return err
		}
		if !ok {
			return d.Errf("unknown subdirective %q; %s knows %s", d.Val(), s.Directive, strings.Join(Subdirectives(), ", "))
		}
	}
	return nil
}

// UnmarshalSubdirective reads the subdirective d is on into f. It is
// false, with no error, when the directive has no subdirective of that
// name.
func (s Syntax) UnmarshalSubdirective(d *caddyfile.Dispenser, f Fields) (bool, error) {
	parse, ok := subdirectives[d.Val()]
	if !ok {
		return false, nil
	}
	return true, parse(s, d, f)
}

// Subdirectives are the names of the subdirectives, sorted.
func Subdirectives() []string {
	names := make([]string, 0, len(subdirectives))
	for name := range subdirectives {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// subdirectives parse each subdirective, by name, with d on the name.
var subdirectives = map[string]func(s Syntax, d *caddyfile.Dispenser, f Fields) error{
	"engineio_path": func(s Syntax, d *caddyfile.Dispenser, f Fields) error {
		if !d.NextArg() {
			return d.Errf("engineio_path needs socketio_proxy's path, e.g. `engineio_path %s`", s.DefaultEngineIOPath)
		}
		*f.EngineIOPath = d.Val()
		if d.NextArg() {
			return d.Errf("engineio_path takes one value, got also %q; write e.g. `engineio_path %s`", d.Val(), s.DefaultEngineIOPath)
		}
		return nil
	},
}

// or is v, or def when v is empty.
func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Validate checks the paths of a handler served under path beside the
// socketio_proxy at enginePath, and reports every problem at once;
// example is a path to suggest.
func Validate(module, path, enginePath, example string) error {
	var errs []error
	if !isPrefix(path) || path == "/" {
		errs = append(errs, fmt.Errorf("%s: path %q must be a prefix of its own that starts and ends with a slash, e.g. %q", module, path, example))
	}
	if !isPrefix(enginePath) {
		errs = append(errs, fmt.Errorf("%s: engineio_path %q must start and end with a slash, as socketio_proxy's path, e.g. \"/socket.io/\"", module, enginePath))
	}
	if len(errs) == 0 && (strings.HasPrefix(path, enginePath) || strings.HasPrefix(enginePath, path)) {
		errs = append(errs, fmt.Errorf("%s: path %q overlaps the Engine.IO path %q; give it a prefix of its own, e.g. %q", module, path, enginePath, example))
	}
	return errors.Join(errs...)
}

// isPrefix reports whether p is a path prefix as the handlers take them:
// a slash at both ends, no query or fragment, no wildcard.
func isPrefix(p string) bool {
	return strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/") && !strings.ContainsAny(p, "?#*")
}
