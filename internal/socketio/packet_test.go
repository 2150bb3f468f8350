package socketio

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type readCase struct {
	name   string
	in     string
	binary bool
	want   Packet // compared by describe; Namespace as text
	ns     string
	err    error
}

func runReadCases(t *testing.T, cases []readCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Read([]byte(c.in), c.binary)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Read(%q) error = %v, want %v", c.in, err, c.err)
				}
				if got.Kind != Control || got.Namespace != nil {
					t.Errorf("Read(%q) returned %+v with its error", c.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read(%q): %v", c.in, err)
			}
			want := c.want
			if want.Kind == Message {
				want.Namespace = []byte(c.ns)
			}
			if describe(got) != describe(want) {
				t.Errorf("Read(%q) = %s, want %s", c.in, describe(got), describe(want))
			}
		})
	}
}

func msg(t Type, attachments int64, id, data string) Packet {
	p := Packet{Kind: Message, Type: t, Attachments: attachments}
	if id != "" {
		p.ID = []byte(id)
	}
	if data != "" {
		p.Data = []byte(data)
	}
	return p
}

func TestReadCanonicalPackets(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "connect to the main namespace", in: "40", want: msg(Connect, 0, "", ""), ns: "/"},
		{name: "connect with auth", in: `40{"token":"x"}`, want: msg(Connect, 0, "", `{"token":"x"}`), ns: "/"},
		{name: "connect to a namespace", in: "40/admin,", want: msg(Connect, 0, "", ""), ns: "/admin"},
		{name: "connect to a namespace with auth", in: `40/admin,{"token":"x"}`, want: msg(Connect, 0, "", `{"token":"x"}`), ns: "/admin"},
		{name: "disconnect from the main namespace", in: "41", want: msg(Disconnect, 0, "", ""), ns: "/"},
		{name: "disconnect from a namespace", in: "41/admin,", want: msg(Disconnect, 0, "", ""), ns: "/admin"},
		{name: "event", in: `42["echo",1]`, want: msg(Event, 0, "", `["echo",1]`), ns: "/"},
		{name: "event in a namespace", in: `42/chat,["echo",1]`, want: msg(Event, 0, "", `["echo",1]`), ns: "/chat"},
		{name: "event asking for an ack", in: `4212["ev"]`, want: msg(Event, 0, "12", `["ev"]`), ns: "/"},
		{name: "event asking for an ack in a namespace", in: `42/chat,12["ev"]`, want: msg(Event, 0, "12", `["ev"]`), ns: "/chat"},
		{name: "ack in a namespace", in: `43/chat,12["ok"]`, want: msg(Ack, 0, "12", `["ok"]`), ns: "/chat"},
		{name: "binary event", in: `451-["up",{"_placeholder":true,"num":0}]`, want: msg(BinaryEvent, 1, "", `["up",{"_placeholder":true,"num":0}]`), ns: "/"},
		{name: "binary ack in a namespace", in: `462-/chat,3[{"_placeholder":true,"num":0}]`, want: msg(BinaryAck, 2, "3", `[{"_placeholder":true,"num":0}]`), ns: "/chat"},
		{name: "connect error sent by a client", in: `44/admin,{"message":"x"}`, want: msg(ConnectError, 0, "", `{"message":"x"}`), ns: "/admin"},
	})
}

func TestReadReportsEngineIOPacketsThatAreNotMessagesAsControl(t *testing.T) {
	var cases []readCase
	for _, in := range []string{"0", "1", "2", "3", "5", "6", "7", "9", "2probe", "3probe", "5", "0/admin,"} {
		cases = append(cases, readCase{name: in, in: in, want: Packet{Kind: Control}})
	}
	runReadCases(t, cases)
}

// python-socketio never decodes a binary message as a packet: it is an
// attachment of a pending binary packet, or bytes.find('-') raises.
func TestReadTreatsBinaryMessagesAsAttachmentsNeverAsConnect(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "websocket binary frame holding a connect", in: "40/admin,", binary: true, want: Packet{Kind: Attachment}},
		{name: "websocket binary frame holding a socket.io connect", in: "0/admin,", binary: true, want: Packet{Kind: Attachment}},
		{name: "empty websocket binary frame", in: "", binary: true, want: Packet{Kind: Attachment}},
		{name: "polling b record holding a connect", in: "bMC9hZG1pbiw=", want: Packet{Kind: Attachment}},
		{name: "websocket text frame starting with b", in: "b", want: Packet{Kind: Attachment}},
	})
}

func TestReadAttributesNonCanonicalConnectsAsPythonSocketIODoes(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "query string is cut", in: "40/admin?x=1,", want: msg(Connect, 0, "", ""), ns: "/admin"},
		{name: "query string without comma", in: "40/admin?x=1", want: msg(Connect, 0, "", ""), ns: "/admin"},
		{name: "query string holding a comma ends the namespace there", in: "40/admin?a=1,b=2", want: msg(Connect, 0, "", "b=2"), ns: "/admin"},
		{name: "no comma", in: "40/admin", want: msg(Connect, 0, "", ""), ns: "/admin"},
		{name: "attachment count on a connect", in: "401-/admin,", want: msg(Connect, 1, "", ""), ns: "/admin"},
		{name: "ten-digit attachment count", in: "400000000001-/admin,", want: msg(Connect, 1, "", ""), ns: "/admin"},
		{name: "ack id on a connect", in: `40/admin,7{"token":"x"}`, want: msg(Connect, 0, "7", `{"token":"x"}`), ns: "/admin"},
		{name: "hundred-digit ack id", in: "40/admin," + strings.Repeat("1", 100), want: msg(Connect, 0, strings.Repeat("1", 100), ""), ns: "/admin"},
		{name: "comma inside the data ends the namespace", in: `40/admin{"a":1,"b":2}`, want: msg(Connect, 0, "", `"b":2}`), ns: `/admin{"a":1`},
		{name: "root with a query", in: "40/?x,", want: msg(Connect, 0, "", ""), ns: "/"},
		{name: "dash first is no attachment count", in: "40-/admin,", want: msg(Connect, 0, "", "-/admin,"), ns: "/"},
		{name: "namespace without a slash is data", in: "40admin,", want: msg(Connect, 0, "", "admin,"), ns: "/"},
		{name: "digits after the type are an ack id", in: "400/admin,", want: msg(Connect, 0, "0", "/admin,"), ns: "/"},
		{name: "attachment count on an event", in: `4212-["x"]`, want: msg(Event, 12, "", `["x"]`), ns: "/"},
	})
}

// Read never normalises: python connects each of these to a namespace
// other than /admin, so a rule on /admin must not catch them.
func TestReadKeepsNamespacesPythonKeepsApart(t *testing.T) {
	var cases []readCase
	for _, ns := range []string{"/admin/", "/Admin", "/ADMIN", "//admin", "/admin ", "/ admin", "/admin\t",
		"/%61dmin", "/\u0430dmin", "/\uff41dmin", "/admin\u200b", "/admin\x00", "/admin;x", "/admin#x",
		"/admin/../admin", "/" + strings.Repeat("a", 5000)} {
		cases = append(cases, readCase{name: ns[:min(len(ns), 20)], in: "40" + ns + ",", want: msg(Connect, 0, "", ""), ns: ns})
	}
	runReadCases(t, cases)
}

func TestReadRefusesMessagesPythonEngineIODecodesAsJSON(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "json string holding a connect", in: `4"0/admin,"`, err: ErrJSONMessage},
		{name: "escaped json string holding a connect", in: `4"0\u002fadmin,"`, err: ErrJSONMessage},
		{name: "whitespace then a json string", in: "4 \"0/admin,\"", err: ErrJSONMessage},
		{name: "newline then a json string", in: "4\n\"0/admin,\"", err: ErrJSONMessage},
		{name: "float one is a disconnect", in: "41.0", err: ErrJSONMessage},
		{name: "float with exponent", in: "41e0", err: ErrJSONMessage},
		{name: "float with trailing whitespace", in: "41.0\r\n", err: ErrJSONMessage},
		{name: "float zero", in: "40.0", err: ErrJSONMessage},
	})
}

func TestReadRefusesNonASCIIWherePythonAcceptsUnicodeDigits(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "arabic-indic four as engine.io type", in: "\u06640/admin,", err: ErrUnicodeDigit},
		{name: "fullwidth four as engine.io type", in: "\uff140/admin,", err: ErrUnicodeDigit},
		{name: "arabic-indic zero as socket.io type", in: "4\u0660/admin,", err: ErrUnicodeDigit},
		{name: "bengali zero as socket.io type", in: "4\u09e6/admin,", err: ErrUnicodeDigit},
		{name: "arabic-indic attachment count", in: "40\u0663-/admin,", err: ErrUnicodeDigit},
		{name: "mixed attachment count", in: "401\u0663-/admin,", err: ErrUnicodeDigit},
		{name: "arabic-indic ack id", in: "40/admin,\u0663{}", err: ErrUnicodeDigit},
		{name: "ack id continued by an arabic-indic digit", in: "40/admin,1\u0663{}", err: ErrUnicodeDigit},
		{name: "superscript after the type", in: "42\u00b2[\"x\"]", err: ErrUnicodeDigit},
		{name: "invalid utf-8 after the type", in: "4\xff/admin,", err: ErrUnicodeDigit},
	})
}

func TestReadRefusesWhatPythonCannotReadTheSameWay(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "jsonp polling body", in: "d=40%2Fadmin%2C", err: ErrJSONP},
		{name: "invalid utf-8 namespace", in: "40/admin\xff,", err: ErrNamespaceUTF8},
		{name: "utf-8 encoded surrogate in namespace", in: "40/admin\xed\xa0\x80,", err: ErrNamespaceUTF8},
	})
}

func TestReadCallsMalformedWhatPythonDrops(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "empty packet", in: "", err: ErrEmptyPacket},
		{name: "engine.io type not a digit", in: "x", err: ErrEngineIOType},
		{name: "leading space", in: " 40/admin,", err: ErrEngineIOType},
		{name: "message without packet", in: "4", err: ErrEmptyMessage},
		{name: "socket.io type not a digit", in: "4/admin,", err: ErrPacketType},
		{name: "negative number", in: "4-1", err: ErrPacketType},
		{name: "json true", in: "4true", err: ErrPacketType},
		{name: "json list", in: `4["0/admin,"]`, err: ErrPacketType},
		{name: "type seven", in: "47", err: ErrUnknownType},
		{name: "type eight in a namespace", in: "48/admin,", err: ErrUnknownType},
		{name: "eleven-digit attachment count", in: `4500000000001-["x"]`, err: ErrTooManyAttachments},
		{name: "101-digit ack id", in: "42" + strings.Repeat("1", 101) + `["x"]`, err: ErrIDTooLong},
	})
	for _, err := range []error{ErrEmptyPacket, ErrEngineIOType, ErrEmptyMessage, ErrPacketType, ErrUnknownType, ErrTooManyAttachments, ErrIDTooLong} {
		if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrAmbiguous) {
			t.Errorf("%v: want ErrMalformed only", err)
		}
	}
	for _, err := range []error{ErrJSONMessage, ErrUnicodeDigit, ErrNamespaceUTF8, ErrJSONP} {
		if !errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrMalformed) {
			t.Errorf("%v: want ErrAmbiguous only", err)
		}
	}
}

// Every non-canonical CONNECT that python-socketio 5.7.2 attributes to
// /admin (each is in the differential corpus, so Python confirms it) is
// caught by a rule on /admin: Read reports /admin or refuses the packet.
func TestEveryKnownNonCanonicalConnectToAdminIsCaughtByARuleOnAdmin(t *testing.T) {
	attributed := []string{
		"40/admin", "40/admin?x=1,", "40/admin?x=1", "40/admin?,", "40/admin?", "40/admin??,", "40/admin?/x,",
		"401-/admin,", "400-/admin,", "4099-/admin,", "40000000001-/admin,", "401-/admin",
		`401-/admin?x=1,{"token":"x"}`, "40/admin,1", `40/admin,123{"token":"x"}`, `40/admin,  {"token":"x"}`,
		"40/admin,{}", "40/admin,null", `40/admin,"s"`, "40/admin,0", "40/admin,007", "40/admin,1{}",
		"40/admin,[]", "401-/admin,9{}", "40/admin," + strings.Repeat("1", 100) + "{}", "40/admin?x=%2F,",
		"40/admin?" + strings.Repeat("q", 5000) + ",", `40/admin,{"a":1,"b":2}`, "40/admin?\x00,", "40/admin?\u00e9,",
	}
	refused := []string{
		`4"0/admin,"`, `4 "0/admin,"`, "4\t\"0/admin,\"", "4\n\"0/admin?x,{}\"", `4"0\u002fadmin,"`,
		"4\u0660/admin,", "4\u0660\u0661-/admin,", "4\uff10/admin,", "\u06640/admin,", "\uff140/admin,",
		"40\u0663-/admin,", "401\u0663-/admin,", "40/admin,\u0663{}", "40/admin,1\u0663{}", "4\u09e6/admin,",
		"d=40%2Fadmin%2C",
	}
	for _, in := range attributed {
		pkt, err := Read([]byte(in), false)
		if err != nil || pkt.Kind != Message || pkt.Type != Connect || string(pkt.Namespace) != "/admin" {
			t.Errorf("Read(%.60q) = %s, %v; want CONNECT to /admin", in, describe(pkt), err)
		}
	}
	for _, in := range refused {
		if _, err := Read([]byte(in), false); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("Read(%q) error = %v; want a refusal (ErrAmbiguous)", in, err)
		}
	}
}

func TestReadNamespaceAndDataAliasThePacket(t *testing.T) {
	p := []byte(`42/chat,7["x"]`)
	pkt, err := Read(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if &pkt.Namespace[0] != &p[2] || &pkt.ID[0] != &p[8] || &pkt.Data[0] != &p[9] {
		t.Error("Namespace, ID and Data should be slices of the packet")
	}
}

func TestReadAllocatesNothing(t *testing.T) {
	for _, in := range []string{`42/chat,["message",{"text":"hello"}]`, `40/admin,{"token":"x"}`, "40", `4"0/admin,"`, "2"} {
		p := []byte(in)
		if n := testing.AllocsPerRun(100, func() { _, _ = Read(p, false) }); n != 0 {
			t.Errorf("Read(%q) allocates %v times", in, n)
		}
	}
}

func TestTypeStringIsTheSpecificationName(t *testing.T) {
	for typ, want := range map[Type]string{Connect: "CONNECT", Disconnect: "DISCONNECT", Event: "EVENT", Ack: "ACK",
		ConnectError: "CONNECT_ERROR", BinaryEvent: "BINARY_EVENT", BinaryAck: "BINARY_ACK", 7: "UNKNOWN"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", typ, got, want)
		}
	}
}

func TestReadHeadDecidesOnlyWhatTheHeadFixes(t *testing.T) {
	for _, tc := range []struct {
		head    string
		decided bool
		typ     Type
		ns      string
	}{
		{`42["ch`, true, Event, "/"},
		{`4217[`, true, Event, "/"},
		{`42/admin,["x`, true, Event, "/admin"},
		{`40{"tok`, true, Connect, "/"},
		{`40/admin,{`, true, Connect, "/admin"},
		{`451-[`, true, BinaryEvent, "/"},
		{`2probe`, true, 0, ""},  // Engine.IO ping: never reaches python-socketio
		{`bAQID`, true, 0, ""},   // binary record
		{`42/adm`, false, 0, ""}, // the namespace may go on
		{`4217`, false, 0, ""},   // the ack id may go on
		{`40`, false, 0, ""},     // a CONNECT to / or, later, to another namespace
		{`41.`, false, 0, ""},    // may be the JSON float 41.0, a DISCONNECT
		{`4"0/a`, false, 0, ""},  // a JSON string python-engineio decodes
		{`42 [`, false, 0, ""},   // data python may read differently
		{`4٠/a,{`, false, 0, ""}, // a Unicode digit
		{``, false, 0, ""},
	} {
		pkt, decided := ReadHead([]byte(tc.head))
		require.Equal(t, tc.decided, decided, "ReadHead(%q)", tc.head)
		if decided && pkt.Kind == Message {
			require.Equal(t, tc.typ, pkt.Type, "ReadHead(%q)", tc.head)
			require.Equal(t, tc.ns, string(pkt.Namespace), "ReadHead(%q)", tc.head)
		}
	}
}
