package crosscheck

import (
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// The settings directives must agree on, as keys of the Caddyfile
// adapter's block state.
const (
	EngineIOPath = "flaskedge.engineio_path"
	ClientPath   = "flaskedge.client_path"
)

// A Note is one directive's value of a setting and where it was written.
type Note struct {
	// Directive and Subdirective name the setting as the user wrote it
	// (or would have): "socketio_proxy", "path". Subdirective is empty
	// when the setting is the directive's argument (socketio_client's
	// path).
	Directive, Subdirective string
	Value                   string
	// Written is false when the directive did not name the setting and
	// Value is its default.
	Written bool
	File    string
	Line    int
}

// NoteAt is a Note for the token d is on: the subdirective's line when
// written, the directive's line for a default.
func NoteAt(d *caddyfile.Dispenser, directive, subdirective, value string, written bool) Note {
	return Note{Directive: directive, Subdirective: subdirective, Value: value, Written: written, File: d.File(), Line: d.Line()}
}

func (n Note) String() string {
	if n.Written {
		return fmt.Sprintf("%s (%s:%d)", n.setting(n.Value), n.File, n.Line)
	}
	return fmt.Sprintf("%s (its default; %s at %s:%d)", n.setting(n.Value), n.Directive, n.File, n.Line)
}

// setting is n's setting with value v: the directive, its subdirective
// if any, the value.
func (n Note) setting(v string) string {
	if n.Subdirective == "" {
		return n.Directive + " " + v
	}
	return n.Directive + " " + n.Subdirective + " " + v
}

// line is the line to write to give n's setting value v.
func (n Note) line(v string) string {
	if n.Subdirective == "" {
		return fmt.Sprintf("`%s %s`", n.Directive, v)
	}
	return fmt.Sprintf("`%s %s` in %s", n.Subdirective, v, n.Directive)
}

// Agree notes n under setting (EngineIOPath or ClientPath) for the
// block being adapted and refuses it when another directive noted
// another value before it in the same block or an enclosing one. Two
// directives of the same name may differ (two proxies for two apps);
// what must agree is each pair that works together.
//
// The notes live in the adapter's block state: directives in sibling
// blocks (two handle blocks) do not see each other's, and a block does
// not see those of its nested blocks, only of the blocks around it that
// came before.
func Agree(h httpcaddyfile.Helper, setting string, n Note) error {
	notes, _ := h.BlockState[setting].([]Note)
	for _, other := range notes {
		if other.Directive != n.Directive && other.Value != n.Value {
			hint := ", or use flask_socketio, which writes it once"
			if n.Directive == "flask_socketio" || other.Directive == "flask_socketio" {
				hint = ""
			}
			return fmt.Errorf("%s:%d: %s disagrees with %s: write the same prefix in both (%s)%s",
				n.File, n.Line, n, other, fixFor(n, other), hint)
		}
	}
	// A new slice: the adapter copies block state into nested blocks by
	// value, so an append in place would leak a nested block's note out.
	h.BlockState[setting] = append(slices.Clip(notes), n)
	return nil
}

// fixFor says which line to write to make a and b agree: the one that
// was left at its default, else the later one (a).
func fixFor(a, b Note) string {
	if !b.Written {
		return "e.g. " + b.line(a.Value)
	}
	return "e.g. " + a.line(b.Value)
}

// NoteIn is the Note of a directive's setting: the line of subdirective
// sub in d's block when it is written there, else the line of the
// directive with value as its default. It resets d.
func NoteIn(d *caddyfile.Dispenser, directive, sub, value string) Note {
	d.Reset()
	d.Next()
	n := NoteAt(d, directive, sub, value, false)
	d.RemainingArgs()
	for d.NextBlock(0) {
		if d.Nesting() == 1 && d.Val() == sub {
			n = NoteAt(d, directive, sub, value, true)
		}
		d.RemainingArgs()
	}
	d.Reset()
	return n
}
