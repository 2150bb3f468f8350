package crosscheck

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func note(directive, sub, value string, written bool, line int) Note {
	return Note{Directive: directive, Subdirective: sub, Value: value, Written: written, File: "Caddyfile", Line: line}
}

func TestAgreeRefusesTheSecondOfTwoDirectivesThatDisagreeNamingBothLines(t *testing.T) {
	state := map[string]any{}
	h := httpcaddyfile.Helper{State: state, BlockState: state}
	if err := Agree(h, EngineIOPath, note("edge_cors", "engineio_path", "/socket.io/", false, 2)); err != nil {
		t.Fatal(err)
	}
	err := Agree(h, EngineIOPath, note("socketio_proxy", "path", "/ws/", true, 7))
	if err == nil {
		t.Fatal("disagreeing paths accepted")
	}
	for _, want := range []string{"Caddyfile:7: socketio_proxy path /ws/ (Caddyfile:7)", "edge_cors engineio_path /socket.io/ (its default; edge_cors at Caddyfile:2)", "`engineio_path /ws/` in edge_cors", "flask_socketio"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nwant it to contain %s", err, want)
		}
	}
}

func TestAgreeAcceptsSameValuesAndTwoOfTheSameDirective(t *testing.T) {
	state := map[string]any{}
	h := httpcaddyfile.Helper{State: state, BlockState: state}
	for _, n := range []Note{
		note("edge_cors", "engineio_path", "/socket.io/", false, 2),
		note("socketio_proxy", "path", "/socket.io/", false, 3),
		// A second proxy for another app; the guard's path agrees with
		// the first, which is all one guard can do.
		note("socketio_proxy", "path", "/socket.io/", true, 9),
	} {
		if err := Agree(h, EngineIOPath, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := Agree(h, ClientPath, note("edge_cors", "client_path", "/c/", true, 4)); err != nil {
		t.Fatal("the client path is a setting of its own:", err)
	}
}

// The adapter copies block state into a nested block: a note made there
// must not leak out to a sibling block or back to the parent.
func TestAgreeKeepsNestedBlocksApart(t *testing.T) {
	parent := map[string]any{}
	h := httpcaddyfile.Helper{State: parent, BlockState: parent}
	if err := Agree(h, EngineIOPath, note("edge_cors", "engineio_path", "/socket.io/", false, 2)); err != nil {
		t.Fatal(err)
	}
	child := func() httpcaddyfile.Helper {
		c := map[string]any{}
		for k, v := range parent {
			c[k] = v
		}
		return httpcaddyfile.Helper{State: parent, BlockState: c}
	}
	a, b := child(), child()
	if err := Agree(a, EngineIOPath, note("edge_cors", "engineio_path", "/a/", true, 5)); err != nil {
		t.Fatal(err)
	}
	if err := Agree(b, EngineIOPath, note("socketio_proxy", "path", "/socket.io/", false, 9)); err != nil {
		t.Fatalf("a sibling block's note leaked: %v", err)
	}
	if err := Agree(a, EngineIOPath, note("socketio_proxy", "path", "/socket.io/", false, 6)); err == nil {
		t.Fatal("in its block, the proxy disagrees with the guard at line 5")
	}
	if notes := parent[EngineIOPath].([]Note); len(notes) != 1 {
		t.Fatalf("the parent sees %d notes, want its own 1", len(notes))
	}
}

// socketio_client's path is its argument, not a subdirective: the
// message quotes and suggests the directive's own line.
func TestAgreeWritesADirectivesArgumentAsTheDirectiveLine(t *testing.T) {
	state := map[string]any{}
	h := httpcaddyfile.Helper{State: state, BlockState: state}
	if err := Agree(h, ClientPath, note("socketio_client", "", "/socket.io-edge/", false, 2)); err != nil {
		t.Fatal(err)
	}
	err := Agree(h, ClientPath, note("edge_cors", "client_path", "/js/", true, 4))
	if err == nil {
		t.Fatal("disagreeing paths accepted")
	}
	for _, want := range []string{"edge_cors client_path /js/ (Caddyfile:4)", "socketio_client /socket.io-edge/ (its default; socketio_client at Caddyfile:2)", "(e.g. `socketio_client /js/`)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nwant it to contain %s", err, want)
		}
	}
}
