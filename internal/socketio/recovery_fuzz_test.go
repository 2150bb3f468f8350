package socketio

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzRecoveryOf checks what the edge relies on when it strips a
// reconnecting client's CONNECT: whatever is left reaches python with the
// same head and no member python reads as pid or offset, and stripping
// twice finds nothing more.
func FuzzRecoveryOf(f *testing.F) {
	for _, c := range recoveryCases {
		f.Add([]byte(c.in))
	}
	for _, s := range []string{`40{"pid":1}`, `40{"p\u0069d":"a","pid":"b","offset":"c","x":{"pid":[1,"]"]}}`,
		`401-/a?b,12 {"offset":"o" , "k":"\"}"}`, `40{"pid":"\ud800"}`, `40/a,{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		pid, offset, stripped, found, err := RecoveryOf(p)
		if !bytes.Equal(in, p) {
			t.Fatal("RecoveryOf modified its input")
		}
		if err != nil {
			if found || stripped != nil || pid != "" || offset != "" {
				t.Fatalf("RecoveryOf(%q) = %q, %q, %q, %v with error %v", p, pid, offset, stripped, found, err)
			}
			return
		}
		before, _ := Read(p, false)
		after, err := Read(stripped, false)
		if err != nil || after.Kind != Message || after.Type != before.Type || !bytes.Equal(after.Namespace, before.Namespace) ||
			after.Attachments != before.Attachments || !bytes.Equal(after.ID, before.ID) {
			t.Fatalf("Read(%q) = %s, but Read of stripped %q = %s, %v", p, describe(before), stripped, describe(after), err)
		}

		// Go's decoder, like json.loads, unescapes keys and keeps the
		// last of duplicates.
		var obj map[string]json.RawMessage
		if json.Unmarshal(before.Data, &obj) == nil && obj != nil {
			var wantPid, wantOffset string
			json.Unmarshal(obj["pid"], &wantPid)
			json.Unmarshal(obj["offset"], &wantOffset)
			if _, ok := obj["pid"]; found != ok || pid != wantPid || offset != wantOffset {
				t.Fatalf("RecoveryOf(%q) = %q, %q, found %v; Go's decoder reads %v", p, pid, offset, found, obj)
			}
		} else if found {
			t.Fatalf("RecoveryOf(%q) found a pid in data that is no object", p)
		}
		var rest map[string]json.RawMessage
		if json.Unmarshal(after.Data, &rest) == nil {
			if _, ok := rest["pid"]; ok {
				t.Fatalf("stripped %q still has a pid", stripped)
			}
			if _, ok := rest["offset"]; ok {
				t.Fatalf("stripped %q still has an offset", stripped)
			}
		}

		_, _, again, found2, err := RecoveryOf(stripped)
		if err != nil || found2 || !bytes.Equal(again, stripped) {
			t.Fatalf("RecoveryOf(stripped %q) = %q, %v, %v; want it unchanged", stripped, again, found2, err)
		}
	})
}

// FuzzWithOffset checks that an event with an offset is the same event
// with one more argument, the offset, as python-socketio (and so Read)
// reads both.
func FuzzWithOffset(f *testing.F) {
	for _, s := range []string{`42["ev"]`, `42/chat,7["ev",{"a":[1,"]"]}]`, `451-/ns,7["ev",{"_placeholder":true,"num":0}]`,
		`42[ "ev" , [[]] ] `, `42[]`, `40{"sid":"a"}`, `42["\u00e9v","日本"]`} {
		f.Add([]byte(s), "o1")
	}
	f.Add([]byte(`42["ev"]`), "\"\\<\u2028\xff")
	f.Fuzz(func(t *testing.T, p []byte, offset string) {
		in := bytes.Clone(p)
		out, err := WithOffset(p, offset)
		if !bytes.Equal(in, p) {
			t.Fatal("WithOffset modified its input")
		}
		if err != nil {
			return
		}
		h, _ := ReadWorker(p, true)
		if h2, ok := ReadWorker(out, true); !ok || !reflect.DeepEqual(h, h2) {
			t.Fatalf("WithOffset(%q) = %q, whose head %+v is not %+v", p, out, h2, h)
		}
		before, err1 := Read(p, false)
		after, err2 := Read(out, false)
		if err1 != nil {
			return
		}
		if err2 != nil || after.Type != before.Type || !bytes.Equal(after.Namespace, before.Namespace) ||
			after.Attachments != before.Attachments || !bytes.Equal(after.ID, before.ID) {
			t.Fatalf("Read(%q) = %s, Read(%q) = %s, %v", p, describe(before), out, describe(after), err2)
		}
		var args, got []json.RawMessage
		if err := json.Unmarshal(before.Data, &args); err != nil || len(args) == 0 {
			t.Fatalf("WithOffset(%q) accepted data that is no array with elements: %v", p, err)
		}
		if err := json.Unmarshal(after.Data, &got); err != nil || len(got) != len(args)+1 {
			t.Fatalf("WithOffset(%q) = %q: %v", p, out, err)
		}
		if want, _ := json.Marshal(offset); !bytes.Equal(got[len(args)], want) {
			t.Fatalf("WithOffset(%q, %q) = %q: last argument %s, want %s", p, offset, out, got[len(args)], want)
		}
		for i := range args {
			if !bytes.Equal(got[i], args[i]) {
				t.Fatalf("WithOffset(%q) = %q changed argument %d", p, out, i)
			}
		}
	})
}
