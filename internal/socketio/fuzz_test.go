package socketio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzConnectNamespace checks Read against an independent, line-by-line
// transliteration of python-socketio's Packet.decode, plus the properties
// the edge relies on. Its seeds are the differential corpus, so every
// input starts from a packet Python has been asked about.
func FuzzConnectNamespace(f *testing.F) {
	for _, e := range loadCorpus(f) {
		if e.Body != nil {
			f.Add([]byte(*e.Body))
			continue
		}
		for _, fr := range e.frames() {
			f.Add(fr.bytes(f))
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		pkt, err := Read(p, false)
		if !bytes.Equal(in, p) {
			t.Fatal("Read modified its input")
		}
		if err != nil {
			if errors.Is(err, ErrMalformed) == errors.Is(err, ErrAmbiguous) {
				t.Fatalf("error %v must wrap exactly one of ErrMalformed and ErrAmbiguous", err)
			}
			if pkt.Kind != Control || pkt.Namespace != nil || pkt.ID != nil || pkt.Data != nil {
				t.Fatalf("Read returned %+v with error %v", pkt, err)
			}
		}

		// A packet starting with "40" is a CONNECT unless
		// python-engineio decodes it as a JSON float first ("40.5",
		// "40e3"), which python-socketio compares with the packet types
		// instead of reading it as a packet; Read refuses those.
		if bytes.HasPrefix(p, []byte("40")) {
			if err != nil && !errors.Is(err, ErrJSONMessage) && !errors.Is(err, ErrUnicodeDigit) &&
				!errors.Is(err, ErrNamespaceUTF8) && !errors.Is(err, ErrTooManyAttachments) && !errors.Is(err, ErrIDTooLong) {
				t.Fatalf("Read(%q) = %v: a packet starting with 40 is a CONNECT or refused for a reason python shares", p, err)
			}
			if err == nil && (pkt.Kind != Message || pkt.Type != Connect) {
				t.Fatalf("Read(%q) = %s, want a CONNECT", p, describe(pkt))
			}
		}
		if err != nil || pkt.Kind != Message {
			checkModelRefuses(t, p, err)
			return
		}

		ns := pkt.Namespace
		if len(ns) == 0 || ns[0] != '/' || bytes.ContainsAny(ns, ",?") || !utf8.Valid(ns) {
			t.Fatalf("Read(%q) returned namespace %q", p, ns)
		}
		if pkt.Type > BinaryAck {
			t.Fatalf("Read(%q) returned type %d", p, pkt.Type)
		}
		m, merr := pyDecode(string(p[1:]))
		if merr != nil {
			t.Fatalf("Read(%q) = %s, but packet.py raises %v", p, describe(pkt), merr)
		}
		if int(pkt.Type) != m.typ || string(ns) != m.ns || pkt.Attachments != m.attachments ||
			string(pkt.ID) != m.id || string(pkt.Data) != m.data {
			t.Fatalf("Read(%q) = %s, packet.py reads %+v", p, describe(pkt), m)
		}

		// The namespace Read reports is one a canonical CONNECT names
		// the same way, so a rule keyed on it matches either.
		canon := append([]byte("40"+string(ns)+","), pkt.Data...)
		if back, err := Read(canon, false); string(ns) != "/" && (err != nil || string(back.Namespace) != string(ns)) {
			t.Fatalf("canonical %q reads as %s, %v; want namespace %q", canon, describe(back), err, ns)
		}
	})
}

// checkModelRefuses checks the refusals the model can judge: a packet
// packet.py cannot decode is never accepted, and one Read calls too long
// is one packet.py raises on.
func checkModelRefuses(t *testing.T, p []byte, err error) {
	if errors.Is(err, ErrTooManyAttachments) || errors.Is(err, ErrIDTooLong) || errors.Is(err, ErrUnknownType) {
		m, merr := pyDecode(string(p[1:]))
		if merr == nil && m.typ <= int(BinaryAck) {
			t.Fatalf("Read(%q) = %v, but packet.py reads %+v", p, err, m)
		}
	}
}

type pyPacket struct {
	typ         int
	ns          string
	attachments int64
	id, data    string
}

// pyDecode transliterates socketio/packet.py Packet.decode (lines 75-115)
// statement by statement for text whose first character is an ASCII digit,
// with str.isdigit() narrowed to ASCII (Read refuses every input where
// the difference matters).
func pyDecode(ep string) (pyPacket, error) {
	isdigit := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return s != ""
	}
	var pkt pyPacket
	pkt.typ = int(ep[0] - '0')          // self.packet_type = int(ep[0:1])
	ep = ep[1:]                         // ep = ep[1:]
	dash := strings.Index(ep, "-")      // dash = ep.find('-')
	if dash > 0 && isdigit(ep[:dash]) { // if dash > 0 and ep[0:dash].isdigit():
		if dash > 10 {
			return pkt, errors.New("too many attachments")
		}
		for _, c := range ep[:dash] {
			pkt.attachments = pkt.attachments*10 + int64(c-'0')
		}
		ep = ep[dash+1:]
	}
	ns := ""
	if ep != "" && ep[0] == '/' { // if ep and ep[0:1] == '/':
		sep := strings.Index(ep, ",")
		if sep == -1 {
			ns, ep = ep, ""
		} else {
			ns, ep = ep[:sep], ep[sep+1:]
		}
		if q := strings.Index(ns, "?"); q != -1 {
			ns = ns[:q]
		}
	}
	pkt.ns = ns
	if ns == "" { // namespace or '/' in server.py
		pkt.ns = "/"
	}
	if ep != "" && isdigit(ep[:1]) { // if ep and ep[0].isdigit():
		i := 1
		for i < len(ep) {
			if !isdigit(ep[i:i+1]) || i >= 100 {
				break
			}
			i++
		}
		pkt.id, ep = ep[:i], ep[i:]
		if ep != "" && isdigit(ep[:1]) {
			return pkt, errors.New("id field is too long")
		}
	}
	pkt.data = ep
	if pkt.typ > int(BinaryAck) {
		return pkt, errors.New("Unknown packet type.")
	}
	return pkt, nil
}

// FuzzReadHead checks the promise a relay streams messages on: whenever
// ReadHead decides from a message's first n bytes, Read of the whole
// message agrees, so no packet Read refuses (or reads as another type or
// namespace) slips through unread.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		`42["chat","hi"]`, `4217["echo",{"n":1}]`, `42/admin,["x"]`, `40{"token":"t"}`,
		`451-["up",{"_placeholder":true,"num":0}]`, `42/a?x=1,5[1]`, `42.5["x"]`, `4٠/admin,{}`,
		`42/ns`, `2probe`, `bAAEC`, `41/admin,`, `4"0/admin,"`, `42 [1]`,
	} {
		f.Add([]byte(s), uint8(3))
		f.Add([]byte(s), uint8(32))
	}
	f.Fuzz(func(t *testing.T, p []byte, n uint8) {
		k := min(int(n), len(p))
		head, decided := ReadHead(p[:k])
		if !decided {
			return
		}
		whole, err := Read(p, false)
		if err != nil {
			t.Fatalf("ReadHead(%q) decided %s, but Read of %q refuses it: %v", p[:k], describe(head), p, err)
		}
		if whole.Kind != head.Kind || whole.Type != head.Type || !bytes.Equal(whole.Namespace, head.Namespace) ||
			whole.Attachments != head.Attachments || !bytes.Equal(whole.ID, head.ID) {
			t.Fatalf("ReadHead(%q) = %s, Read(%q) = %s", p[:k], describe(head), p, describe(whole))
		}
	})
}
