package socketio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/engineio"
)

const python = "/usr/bin/python3"

// TestReadAgreesWithRecordedPythonSocketIO checks Read against what
// python-socketio 5.7.2 did with the corpus when the golden file was
// written, so it runs without Python.
func TestReadAgreesWithRecordedPythonSocketIO(t *testing.T) {
	golden, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	checkCorpus(t, loadCorpus(t), readJSONLines[pyEntry](t, golden))
}

// TestReadAgreesWithPythonSocketIO runs the real decoder on the corpus,
// checks Read against it and checks the golden file is up to date.
func TestReadAgreesWithPythonSocketIO(t *testing.T) {
	if err := exec.Command(python, "-c", "import socketio, engineio").Run(); err != nil {
		msg := fmt.Sprintf("%s with python-socketio is needed (apt-get install python3-socketio): %v", python, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	corpus, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/pydecode.py")
	cmd.Stdin = bytes.NewReader(corpus)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydecode.py: %v\n%s", err, stderr.Bytes())
	}
	checkCorpus(t, loadCorpus(t), readJSONLines[pyEntry](t, out))
	golden, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, golden) {
		t.Errorf("%s is stale: regenerate it with\n\tcd internal/socketio && %s testdata/pydecode.py < %s > %s",
			goldenFile, python, corpusFile, goldenFile)
	}
}

type diffStats struct{ exact, malformed, ambiguous, bodies int }

func checkCorpus(t *testing.T, corpus []corpusEntry, py []pyEntry) {
	t.Helper()
	if len(py) != len(corpus) {
		t.Fatalf("python reported %d entries for %d in the corpus", len(py), len(corpus))
	}
	var st diffStats
	for i, e := range corpus {
		p := py[i]
		if p.Name != e.Name {
			t.Fatalf("entry %d: python reported %q for %q", i, p.Name, e.Name)
		}
		t.Run(e.Name, func(t *testing.T) {
			if e.Body != nil {
				st.bodies++
				checkBody(t, []byte(*e.Body), p)
				return
			}
			frames := e.frames()
			if len(p.Frames) != len(frames) {
				t.Fatalf("python reported %d frames for %d", len(p.Frames), len(frames))
			}
			for j, f := range frames {
				// Only the first packet of a session is read by python
				// without a pending binary packet: compare it exactly, and
				// check the safety property on every packet.
				checkFrame(t, j, f.bytes(t), f.Binary, p.Frames[j], j == 0, &st)
			}
		})
	}
	t.Logf("%d entries: %d packets read exactly as python does, %d malformed (python drops them too), %d refused as ambiguous, %d polling bodies",
		len(corpus), st.exact, st.malformed, st.ambiguous, st.bodies)
}

func checkFrame(t *testing.T, j int, raw []byte, binary bool, py pyFrame, fresh bool, st *diffStats) {
	t.Helper()
	pkt, err := Read(raw, binary)
	tag := fmt.Sprintf("frame %d %q", j, raw)
	if len(tag) > 120 {
		tag = tag[:120] + "…"
	}

	// Safety, on every packet: whatever python connects or disconnects,
	// Read reports the same type and namespace, or refuses.
	for _, a := range py.Actions {
		kind, ns := a[0].(string), fmt.Sprint(a[1])
		want := map[string]Type{"connect": Connect, "disconnect": Disconnect}
		typ, ok := want[kind]
		if !ok || err != nil {
			continue
		}
		if pkt.Kind != Message || pkt.Type != typ || string(pkt.Namespace) != ns {
			t.Errorf("%s: python does %s %q, Read says %+v", tag, kind, ns, describe(pkt))
		}
	}
	if !fresh {
		return
	}

	switch {
	case errors.Is(err, ErrMalformed):
		st.malformed++
		if len(py.Actions) != 0 {
			t.Errorf("%s: Read says %v, but python acts on it: %v", tag, err, py.Actions)
		}
	case errors.Is(err, ErrAmbiguous):
		st.ambiguous++
	case err != nil:
		t.Errorf("%s: error %v wraps neither ErrMalformed nor ErrAmbiguous", tag, err)
	case pkt.Kind == Control:
		st.exact++
		if py.EIO.Type == nil || *py.EIO.Type == 4 {
			t.Errorf("%s: Read says Engine.IO control, python-engineio says %+v", tag, py.EIO)
		}
	case pkt.Kind == Attachment:
		st.exact++
		if py.EIO.Data != "bytes" || len(py.Actions) != 0 {
			t.Errorf("%s: Read says attachment, python says %+v, actions %v", tag, py.EIO, py.Actions)
		}
	case py.EIO.Error != "":
		// Python refuses the whole frame (invalid UTF-8 outside the
		// namespace): Read judging it is only stricter.
		st.exact++
	default:
		st.exact++
		h := py.Header
		if py.EIO.Data != "str" || h == nil || h.Error != "" || h.Type == nil {
			t.Fatalf("%s: Read says %+v, python-socketio's header: eio %+v header %+v", tag, describe(pkt), py.EIO, h)
		}
		pyNS := "/"
		if h.NS != nil {
			pyNS = *h.NS
		}
		pyID := ""
		if h.ID != nil {
			pyID = *h.ID
		}
		if int(pkt.Type) != *h.Type || string(pkt.Namespace) != pyNS || pkt.Attachments != h.Attachments || idValue(pkt.ID) != pyID {
			t.Errorf("%s: Read says %+v, python says type %d ns %q attachments %d id %q",
				tag, describe(pkt), *h.Type, pyNS, h.Attachments, pyID)
		}
		for _, a := range py.Actions {
			kind, ns := a[0].(string), fmt.Sprint(a[1])
			want := map[string][]Type{"connect": {Connect}, "disconnect": {Disconnect}, "event": {Event},
				"ack": {Ack}, "binary-pending": {BinaryEvent, BinaryAck}}[kind]
			if !containsType(want, pkt.Type) || ns != string(pkt.Namespace) {
				t.Errorf("%s: python does %s %q, Read says %+v", tag, kind, ns, describe(pkt))
			}
		}
		if len(py.Actions) == 0 && py.Error == "" {
			t.Errorf("%s: python neither acts nor fails", tag)
		}
	}
}

// checkBody splits a polling body as the edge does and checks that every
// CONNECT python makes of it is one Read reports, unless Read refuses a
// record (the edge then refuses the whole body).
func checkBody(t *testing.T, body []byte, py pyEntry) {
	t.Helper()
	var got []Packet
	err := engineio.Packets(body, func(rec []byte) error {
		pkt, err := Read(rec, false)
		got = append(got, pkt)
		return err
	})
	if err != nil {
		return
	}
	for _, a := range py.Actions {
		if a[0] != "connect" {
			continue
		}
		found := false
		for _, pkt := range got {
			found = found || pkt.Kind == Message && pkt.Type == Connect && string(pkt.Namespace) == fmt.Sprint(a[1])
		}
		if !found {
			t.Errorf("python connects to %q; Read accepts every record and reports none", a[1])
		}
	}
}

func containsType(ts []Type, t Type) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// idValue is the ack id as python's str(int(...)) prints it.
func idValue(id []byte) string {
	if id == nil {
		return ""
	}
	s := strings.TrimLeft(string(id), "0")
	if s == "" {
		return "0"
	}
	return s
}

func describe(p Packet) string {
	switch p.Kind {
	case Control:
		return "Engine.IO control packet"
	case Attachment:
		return "binary attachment"
	}
	return fmt.Sprintf("%v ns %q attachments %d id %q data %.40q", p.Type, p.Namespace, p.Attachments, p.ID, p.Data)
}
