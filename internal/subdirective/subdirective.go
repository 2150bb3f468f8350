// Package subdirective is the table every module's Caddyfile parser is:
// each subdirective's name and the function that reads it, so that
// flask_socketio can offer every module's subdirectives in one block and
// docs/REFERENCE.md can be checked against the names.
package subdirective

import (
	"maps"
	"slices"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Table parses the subdirectives of a module whose config is T, by name,
// each with the dispenser on its name.
type Table[T any] map[string]func(d *caddyfile.Dispenser, v T) error

// Unmarshal reads the subdirective d is on into v. It is false, with no
// error, when the table has no subdirective of that name.
func (t Table[T]) Unmarshal(d *caddyfile.Dispenser, v T) (bool, error) {
	parse, ok := t[d.Val()]
	if !ok {
		return false, nil
	}
	return true, parse(d, v)
}

// Names are the table's subdirectives, sorted.
func (t Table[T]) Names() []string { return slices.Sorted(maps.Keys(t)) }
