package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// requirePythonSocketIO requires /usr/bin/python3 with python-socketio;
// with CI=true its absence fails the test.
func requirePythonSocketIO(t *testing.T) {
	t.Helper()
	ok := exec.Command(python, "-c", "import socketio").Run() == nil
	testenv.Require(t, python+" with python-socketio", ok, "apt-get install python3-socketio")
}

// requireSocketIOParser requires node and the repository's node_modules
// with socket.io-parser, which socket.io-client decodes with.
func requireSocketIOParser(t *testing.T) {
	t.Helper()
	testenv.RequireNode(t)
	_, err := os.Stat(filepath.Join(testenv.RepoRoot(t), "node_modules", "socket.io-parser", "package.json"))
	testenv.Require(t, "node_modules/socket.io-parser", err == nil, "run npm ci in the repository root")
}

// runJSONLines runs a testdata script with one JSON line per input on
// stdin and returns its one JSON line per input.
func runJSONLines(t *testing.T, interpreter, script string, in []any) []json.RawMessage {
	t.Helper()
	var stdin bytes.Buffer
	enc := json.NewEncoder(&stdin)
	enc.SetEscapeHTML(false)
	for _, v := range in {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, script)
	cmd.Stdin = &stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.Bytes())
	}
	lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	if len(lines) != len(in) {
		t.Fatalf("%s wrote %d lines for %d inputs:\n%s", script, len(lines), len(in), out)
	}
	res := make([]json.RawMessage, len(lines))
	for i, l := range lines {
		res[i] = l
	}
	return res
}

func decodeLine[T any](t *testing.T, line json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return v
}

type nodePacket struct {
	Type  int    `json:"type"`
	Nsp   string `json:"nsp"`
	ID    *int   `json:"id"`
	Data  any    `json:"data"`
	Error string `json:"error"`
}

// TestWithPidAndWithOffsetAreReadBySocketIOClientsParser encodes replies
// and events with python-socketio's encoder, adds a pid or an offset, and
// decodes both versions with the socket.io-parser socket.io-client uses:
// the pid is data.pid, the offset the last argument, and nothing else
// changes.
func TestWithPidAndWithOffsetAreReadBySocketIOClientsParser(t *testing.T) {
	requirePythonSocketIO(t)
	requireSocketIOParser(t)
	type pyIn struct {
		Type      int    `json:"type"`
		Namespace string `json:"namespace,omitempty"`
		ID        *int   `json:"id,omitempty"`
		Data      any    `json:"data"`
		Binary    bool   `json:"binary,omitempty"`
	}
	seven := 7
	worker := []pyIn{
		{Type: 0, Data: map[string]any{"sid": "abc"}},
		{Type: 0, Namespace: "/chat", Data: map[string]any{"sid": "abc"}},
		{Type: 0, Namespace: "/ünï", Data: map[string]any{"sid": "abc", "pid": "old"}},
		{Type: 2, Data: []any{"ev"}},
		{Type: 2, Namespace: "/chat", Data: []any{"ev", 1.5, "two", nil, true}},
		{Type: 2, Namespace: "/chat", ID: &seven, Data: []any{"ev", "x"}},
		{Type: 2, Data: []any{"é日本🙂", map[string]any{"k]": "[v\"", "n": []any{[]any{}, []any{1.0, []any{2.0}}}}}},
		{Type: 2, Data: []any{"ev", []any{[]any{[]any{}}}}},
		// pyencode.py makes ["ev", <bytes>] of "ev": one attachment.
		{Type: 5, Binary: true, Data: "ev"},
		{Type: 5, Binary: true, Namespace: "/ns", ID: &seven, Data: "ev"},
	}
	ins := make([]any, len(worker))
	for i, w := range worker {
		ins[i] = w
	}
	type pyOut struct {
		Text        string `json:"text"`
		Attachments int    `json:"attachments"`
	}
	var nodeIns []any
	type check struct {
		in, out string
		value   string
	}
	var checks []check
	for i, line := range runJSONLines(t, python, "testdata/pyencode.py", ins) {
		enc := decodeLine[pyOut](t, line)
		for _, v := range []string{"p1", `quote"back\slash<>&`, "ünï🙂\u2028", ""} {
			var out []byte
			var err error
			if worker[i].Type == 0 {
				out, err = WithPid([]byte(enc.Text), v)
			} else {
				out, err = WithOffset([]byte(enc.Text), v)
			}
			if err != nil {
				t.Fatalf("%#q with %q: %v", enc.Text, v, err)
			}
			checks = append(checks, check{enc.Text, string(out), v})
			nodeIns = append(nodeIns,
				map[string]any{"decode": enc.Text, "attachments": enc.Attachments},
				map[string]any{"decode": string(out), "attachments": enc.Attachments})
		}
	}
	res := runJSONLines(t, "node", "testdata/sioparser.mjs", nodeIns)
	for i, c := range checks {
		orig, got := decodeLine[nodePacket](t, res[2*i]), decodeLine[nodePacket](t, res[2*i+1])
		if orig.Error != "" || got.Error != "" {
			t.Errorf("socket.io-parser: %#q: %s; %#q: %s", c.in, orig.Error, c.out, got.Error)
			continue
		}
		if got.Type != orig.Type || got.Nsp != orig.Nsp || !reflect.DeepEqual(got.ID, orig.ID) {
			t.Errorf("%#q decodes as %+v, %#q as %+v", c.in, orig, c.out, got)
			continue
		}
		want := orig.Data
		if orig.Type == int(Connect) {
			obj := maps.Clone(orig.Data.(map[string]any))
			obj["pid"] = c.value
			want = obj
		} else {
			want = append(orig.Data.([]any), c.value)
		}
		if !reflect.DeepEqual(got.Data, want) {
			t.Errorf("%#q decodes as %v, want %v", c.out, got.Data, want)
		}
	}
}

type pyPacketData struct {
	Type      int     `json:"type"`
	Namespace *string `json:"namespace"`
	ID        *int    `json:"id"`
	Data      any     `json:"data"`
	Error     string  `json:"error"`
}

// TestRecoveryOfLeavesPythonTheAuthWithoutPidAndOffset takes the CONNECTs
// socket.io-client sends (encoded by its own expression and parser) and
// the table's odd ones, and checks with python-socketio's decoder that the
// pid and offset RecoveryOf returns are those python reads in p, and that
// python reads stripped as p without them.
func TestRecoveryOfLeavesPythonTheAuthWithoutPidAndOffset(t *testing.T) {
	requirePythonSocketIO(t)
	requireSocketIOParser(t)
	type client struct {
		Nsp    string `json:"nsp,omitempty"`
		Pid    string `json:"pid,omitempty"`
		Offset string `json:"offset,omitempty"`
		Auth   any    `json:"auth,omitempty"`
	}
	clients := []client{
		{},
		{Auth: map[string]any{"token": "t"}},
		{Pid: "P"},
		{Pid: "P", Offset: "O"},
		{Nsp: "/chat", Pid: "P", Offset: "O", Auth: map[string]any{"token": "t", "n": []any{1, map[string]any{"pid": "x"}}}},
		{Nsp: "/ünï", Pid: "ünï🙂", Offset: `q"\`, Auth: map[string]any{"é": "日本"}},
		// Auth members override the client's own: its pid is sent.
		{Pid: "P", Offset: "O", Auth: map[string]any{"pid": "mine", "offset": "o", "x": 1}},
		// Object.assign spreads a string auth into indexed members.
		{Pid: "P", Offset: "O", Auth: "ab"},
	}
	var nodeIns []any
	for _, c := range clients {
		nodeIns = append(nodeIns, map[string]any{"connect": c})
	}
	var packets []string
	for _, line := range runJSONLines(t, "node", "testdata/sioparser.mjs", nodeIns) {
		packets = append(packets, decodeLine[struct{ Text string }](t, line).Text)
	}
	for _, c := range recoveryCases {
		packets = append(packets, c.in)
	}

	type result struct {
		pid, offset, stripped string
		found                 bool
	}
	var results []result
	var pyIns []any
	for _, p := range packets {
		pid, offset, stripped, found, err := RecoveryOf([]byte(p))
		if err != nil {
			t.Fatalf("RecoveryOf(%#q): %v", p, err)
		}
		results = append(results, result{pid, offset, string(stripped), found})
		pyIns = append(pyIns, map[string]string{"text": p}, map[string]string{"text": string(stripped)})
	}
	py := runJSONLines(t, python, "testdata/pydata.py", pyIns)
	for i, p := range packets {
		r := results[i]
		orig, got := decodeLine[pyPacketData](t, py[2*i]), decodeLine[pyPacketData](t, py[2*i+1])
		if orig.Error != "" || got.Error != "" {
			t.Errorf("python: %#q: %s; stripped %#q: %s", p, orig.Error, r.stripped, got.Error)
			continue
		}
		if got.Type != orig.Type || !reflect.DeepEqual(got.Namespace, orig.Namespace) || !reflect.DeepEqual(got.ID, orig.ID) {
			t.Errorf("python reads %#q as %+v, stripped %#q as %+v", p, orig, r.stripped, got)
			continue
		}
		want, wantPid, wantOffset, wantFound := orig.Data, "", "", false
		if obj, ok := orig.Data.(map[string]any); ok {
			pid, hasPid := obj["pid"]
			offset, hasOffset := obj["offset"]
			wantFound = hasPid
			if hasPid {
				wantPid = pid.(string)
			}
			if hasOffset {
				wantOffset = offset.(string)
			}
			rest := maps.Clone(obj)
			delete(rest, "pid")
			delete(rest, "offset")
			if len(rest) < len(obj) {
				want = rest
				if len(rest) == 0 {
					want = nil
				}
			}
		}
		if r.found != wantFound || r.pid != wantPid || r.offset != wantOffset {
			t.Errorf("RecoveryOf(%#q) = %q, %q, found %v; python reads pid %q, offset %q in %v",
				p, r.pid, r.offset, r.found, wantPid, wantOffset, orig.Data)
		}
		if !reflect.DeepEqual(got.Data, want) {
			t.Errorf("python reads stripped %#q as auth %#v, want %#v (from %#q)", r.stripped, got.Data, want, p)
		}
	}
}
