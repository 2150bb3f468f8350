package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadWorker(t *testing.T) {
	for _, tc := range []struct {
		in    string
		whole bool
		ok    bool
		typ   Type
		ns    string
		att   int64
	}{
		{`40{"sid":"a"}`, true, true, Connect, "/", 0},
		{`40/chat,{"sid":"a"}`, true, true, Connect, "/chat", 0},
		{`41`, true, true, Disconnect, "/", 0},
		{`41/chat,`, true, true, Disconnect, "/chat", 0},
		{`41/chat`, true, true, Disconnect, "/chat", 0},
		{`41/chat`, false, false, 0, "", 0},
		{`42/admin,7["x"]`, false, true, Event, "/admin", 0},
		{`43["x"]`, false, true, Ack, "/", 0},
		{`451-/admin,["a",{"_placeholder":true,"num":0}]`, false, true, BinaryEvent, "/admin", 1},
		{`4612-["a"]`, false, true, BinaryAck, "/", 12},
		{`451`, false, false, 0, "", 0},
		{`45-[]`, true, false, 0, "", 0},
		{`45["x"]`, true, false, 0, "", 0}, // no attachment count
		{`42/admin`, false, false, 0, "", 0},
		{`40`, false, false, 0, "", 0}, // a namespace may follow
		{`45x-[]`, true, false, 0, "", 0},
		{`47`, true, false, 0, "", 0},
		{`2`, true, false, 0, "", 0},
		{`4`, true, false, 0, "", 0},
		{``, true, false, 0, "", 0},
		{`b4AQI=`, true, false, 0, "", 0},
	} {
		h, ok := ReadWorker([]byte(tc.in), tc.whole)
		require.Equal(t, tc.ok, ok, "%q", tc.in)
		if ok {
			assert.Equal(t, tc.typ, h.Type, "%q", tc.in)
			assert.Equal(t, tc.ns, string(h.Namespace), "%q", tc.in)
			assert.Equal(t, tc.att, h.Attachments, "%q", tc.in)
		}
	}
}

func TestNamespaceRunsOn(t *testing.T) {
	for in, want := range map[string]bool{
		"40/adm": true, "41/a": true, "40/admin,{": false, "41/a,": false,
		"40{": false, "40": false, "42/adm": false, "2": false,
	} {
		assert.Equal(t, want, NamespaceRunsOn([]byte(in)), in)
	}
}

// The one denial predicate holds for the reply and its peeked head, and
// only the edge's own markers become CONNECT_ERRORs.
func TestDenialRoundTrip(t *testing.T) {
	d := Denial{Namespace: "/admin", Message: "no", Data: map[string]any{"reason": "role"}}
	connect := d.Connect()
	require.True(t, strings.HasPrefix(string(connect), "40"+DenialPrefix))
	// python-socketio answers with the marker namespace.
	reply := append([]byte("44"), connect[2:]...)
	reply = append(reply, `"Unable to connect"`...)
	assert.True(t, IsDenialReply(reply))
	assert.True(t, IsDenialReply(reply[:2+len(DenialPrefix)]), "the head alone tells")
	ce, ok := DenialConnectError(reply)
	require.True(t, ok)
	assert.Equal(t, `44/admin,{"message":"no","data":{"reason":"role"}}`, string(ce))
	for _, p := range []string{
		"44/admin,{}", "42" + DenialPrefix + "x,[]", "44" + DenialPrefix + "!!,", "44" + DenialPrefix[:5],
		"44" + DenialPrefix + "eyJuIjoiYWRtaW4ifQ,", // {"n":"admin"}: no leading slash
	} {
		_, ok := DenialConnectError([]byte(p))
		assert.False(t, ok, p)
	}
}

// TestReadWorkerAgreesWithPythonSocketIO encodes packets with
// python-socketio's own Packet.encode, as a worker does, and reads them
// back whole and from every prefix a relay may peek at.
func TestReadWorkerAgreesWithPythonSocketIO(t *testing.T) {
	if err := exec.Command(python, "-c", "import socketio").Run(); err != nil {
		msg := fmt.Sprintf("%s with python-socketio is needed (apt-get install python3-socketio): %v", python, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	type in struct {
		Type      int    `json:"type"`
		Namespace string `json:"namespace,omitempty"`
		ID        *int   `json:"id,omitempty"`
		Data      any    `json:"data,omitempty"`
		Binary    bool   `json:"binary,omitempty"`
	}
	seven := 7
	var cases []in
	for _, ns := range []string{"", "/", "/admin", "/a-b", "/x/y", "/.flaskedge-denied/eyJuIjoiLyJ9", "/" + strings.Repeat("n", 40)} {
		cases = append(cases,
			in{Type: 0, Namespace: ns, Data: map[string]any{"sid": "abc"}},
			in{Type: 1, Namespace: ns},
			in{Type: 2, Namespace: ns, Data: []any{"ev", 1}},
			in{Type: 2, Namespace: ns, ID: &seven, Data: []any{"ev"}},
			in{Type: 3, Namespace: ns, ID: &seven, Data: []any{"ok"}},
			in{Type: 4, Namespace: ns, Data: map[string]any{"message": "no"}},
			in{Type: 5, Namespace: ns, Data: "ev", Binary: true},
			in{Type: 6, Namespace: ns, ID: &seven, Data: nil, Binary: true},
		)
	}
	var stdin bytes.Buffer
	for _, c := range cases {
		js, _ := json.Marshal(c)
		stdin.Write(append(js, '\n'))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/pyencode.py")
	cmd.Stdin = &stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, len(cases))
	for i, line := range lines {
		var got struct {
			Text        string `json:"text"`
			Attachments int64  `json:"attachments"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &got))
		c := cases[i]
		wantNS := c.Namespace
		if wantNS == "" {
			wantNS = "/"
		}
		p := []byte(got.Text)
		h, ok := ReadWorker(p, true)
		require.True(t, ok, "%q", p)
		assert.Equal(t, Type(c.Type), h.Type, "%q", p)
		assert.Equal(t, wantNS, string(h.Namespace), "%q", p)
		assert.Equal(t, got.Attachments, h.Attachments, "%q", p)
		assert.Equal(t, strings.HasPrefix(wantNS, DenialPrefix) && (c.Type == 0 || c.Type == 4), IsDenialReply(p), "%q", p)
		for k := range len(p) {
			if hp, ok := ReadWorker(p[:k], false); ok && !assert.Equal(t, h, hp, "%q read from its first %d bytes", p, k) {
				break
			}
		}
	}
}

// FuzzReadWorker checks that a head read from the first bytes of a
// message is the one read from the whole message, that ReadWorker never
// reads past its input, and that the denial predicate agrees with the
// head.
func FuzzReadWorker(f *testing.F) {
	for _, s := range []string{`40{"sid":"a"}`, `41/chat,`, `451-/admin,[]`, `4612-["a"]`, "44" + DenialPrefix + "e30,", `43[]`, `4`, `2probe`} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, p []byte, cut uint8) {
		in := bytes.Clone(p)
		h, ok := ReadWorker(p, true)
		if !bytes.Equal(in, p) {
			t.Fatal("ReadWorker modified its input")
		}
		if ok {
			if len(h.Namespace) == 0 || h.Namespace[0] != '/' || bytes.IndexByte(h.Namespace, ',') >= 0 {
				t.Fatalf("%q: namespace %q", p, h.Namespace)
			}
			if h.Attachments < 0 || (h.Attachments > 0) != (h.Type == BinaryEvent || h.Type == BinaryAck) && h.Attachments != 0 {
				t.Fatalf("%q: attachments %d on %v", p, h.Attachments, h.Type)
			}
			if typ, tok := WorkerType(p); !tok || typ != h.Type {
				t.Fatalf("%q: WorkerType %v %v, head %v", p, typ, tok, h.Type)
			}
		}
		k := int(cut)
		if k > len(p) {
			k = len(p)
		}
		if hp, pok := ReadWorker(p[:k], false); pok {
			if !ok || hp.Type != h.Type || !bytes.Equal(hp.Namespace, h.Namespace) || hp.Attachments != h.Attachments {
				t.Fatalf("%q: head of the first %d bytes %+v (%v), of the whole %+v (%v)", p, k, hp, pok, h, ok)
			}
		}
		if IsDenialReply(p) && (!ok || !bytes.HasPrefix(h.Namespace, []byte(DenialPrefix))) {
			t.Fatalf("%q: a denial reply whose head is %+v (%v)", p, h, ok)
		}
		if _, dok := DenialConnectError(p); dok && !IsDenialReply(p) {
			t.Fatalf("%q: converted without being a denial reply", p)
		}
	})
}
