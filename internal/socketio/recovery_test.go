package socketio

import (
	"errors"
	"testing"
)

func TestWithPidAddsThePidToTheConnectReply(t *testing.T) {
	for _, c := range []struct{ in, pid, want string }{
		{`40{"sid":"abc"}`, "p1", `40{"sid":"abc","pid":"p1"}`},
		{`40/chat,{"sid":"abc"}`, "p1", `40/chat,{"sid":"abc","pid":"p1"}`},
		{`40/chat/,{"sid":"abc"}`, "p1", `40/chat/,{"sid":"abc","pid":"p1"}`},
		{`40{}`, "p1", `40{"pid":"p1"}`},
		{`40{ }`, "p1", `40{"pid":"p1"}`},
		{` `[:0] + `40 { "sid" : "abc" } `, "p1", `40 {"sid" : "abc","pid":"p1"} `},
		{`40{"pid":"old","sid":"abc"}`, "new", `40{"sid":"abc","pid":"new"}`},
		{`40{"p\u0069d":"old","sid":"abc","pid":1}`, "new", `40{"sid":"abc","pid":"new"}`},
		{`40{"sid":"abc","n":[1,{"pid":2}]}`, "p1", `40{"sid":"abc","n":[1,{"pid":2}],"pid":"p1"}`},
		{`40{"sid":"\u00e9t\u00e9"}`, `é"<\`, `40{"sid":"\u00e9t\u00e9","pid":"é\"\u003c\\"}`},
	} {
		got, err := WithPid([]byte(c.in), c.pid)
		if err != nil || string(got) != c.want {
			t.Errorf("WithPid(%#q, %q) = %#q, %v; want %#q", c.in, c.pid, got, err, c.want)
		}
	}
}

func TestWithPidRefusesAnythingButAConnectWithAnObject(t *testing.T) {
	for _, in := range []string{``, `4`, `0{"sid":"a"}`, `42["x"]`, `40`, `40/chat`, `40/chat,`,
		`40["sid"]`, `40"sid"`, `40{"sid":"a"`, `40{"sid":"a"}x`, `44{"message":"no"}`} {
		if got, err := WithPid([]byte(in), "p"); err == nil {
			t.Errorf("WithPid(%#q) = %#q, want an error", in, got)
		}
	}
}

func TestWithOffsetAppendsTheOffsetAsLastArgument(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`42["ev"]`, `42["ev","o1"]`},
		{`42["ev",1,"two",{"a":[3]}]`, `42["ev",1,"two",{"a":[3]},"o1"]`},
		{`42/chat,["ev","x"]`, `42/chat,["ev","x","o1"]`},
		{`42/chat,7["ev"]`, `42/chat,7["ev","o1"]`},
		{`4212["ev"]`, `4212["ev","o1"]`},
		{`451-["ev",{"_placeholder":true,"num":0}]`, `451-["ev",{"_placeholder":true,"num":0},"o1"]`},
		{`451-/ns,7["ev",{"_placeholder":true,"num":0}]`, `451-/ns,7["ev",{"_placeholder":true,"num":0},"o1"]`},
		{`452-/ns,["ev",[{"_placeholder":true,"num":0}],[[{"_placeholder":true,"num":1}]]]`,
			`452-/ns,["ev",[{"_placeholder":true,"num":0}],[[{"_placeholder":true,"num":1}]],"o1"]`},
		{`42["ev",[[]],[[1],[2,[3]]]]`, `42["ev",[[]],[[1],[2,[3]]],"o1"]`},
		{`42["ev","]\"]",{"k]":"[v"}]`, `42["ev","]\"]",{"k]":"[v"},"o1"]`},
		{`42["\u00e9v","日本"]`, `42["\u00e9v","日本","o1"]`},
		{`42[ "ev" , 1 ] `, `42[ "ev" , 1 ,"o1"] `},
	} {
		got, err := WithOffset([]byte(c.in), "o1")
		if err != nil || string(got) != c.want {
			t.Errorf("WithOffset(%#q) = %#q, %v; want %#q", c.in, got, err, c.want)
		}
	}
	got, err := WithOffset([]byte(`42["ev"]`), "a\"b\\<")
	if want := `42["ev","a\"b\\\u003c"]`; err != nil || string(got) != want {
		t.Errorf("WithOffset escapes the offset as %#q, %v; want %#q", got, err, want)
	}
}

func TestWithOffsetRefusesWhatIsNotAnEventWithArguments(t *testing.T) {
	for _, in := range []string{``, `2["ev"]`, `43["ev"]`, `46["ev"]`, `40{"sid":"a"}`, `42`, `42/chat`,
		`42/chat,`, `42{"ev":1}`, `42"ev"`, `42["ev"`, `42["ev"]]`, `45["ev"]`, `45-["ev"]`, `42["ev",NaN]`} {
		if got, err := WithOffset([]byte(in), "o"); err == nil {
			t.Errorf("WithOffset(%#q) = %#q, want an error", in, got)
		}
	}
	// `2[]` would become an event named after the offset.
	for _, in := range []string{`42[]`, `42[ ]`, `42/chat,[]`} {
		if _, err := WithOffset([]byte(in), "o"); !errors.Is(err, errEventWithoutName) {
			t.Errorf("WithOffset(%#q) = %v, want %v", in, err, errEventWithoutName)
		}
	}
}

type recoveryCase struct {
	in, pid, offset, stripped string
	found                     bool
}

var recoveryCases = []recoveryCase{
	// What socket.io-client 4.x sends: {pid, offset, ...auth}.
	{`40{"pid":"P","offset":"O"}`, "P", "O", `40`, true},
	{`40{"pid":"P","offset":"O","token":"t"}`, "P", "O", `40{"token":"t"}`, true},
	{`40/chat,{"pid":"P","offset":"O","token":"t"}`, "P", "O", `40/chat,{"token":"t"}`, true},
	{`40/chat,{"pid":"P","offset":"O"}`, "P", "O", `40/chat,`, true},
	// No event received yet: no offset.
	{`40{"pid":"P"}`, "P", "", `40`, true},
	{`40{"pid":"P","token":"t"}`, "P", "", `40{"token":"t"}`, true},
	// Members kept byte for byte, in order, wherever pid and offset are.
	{`40{"a":1,"pid":"P","b":{"pid":"inner"},"offset":"O","c":[1, 2]}`, "P", "O", `40{"a":1,"b":{"pid":"inner"},"c":[1, 2]}`, true},
	{`40{ "token" : "t" , "pid" : "P" }`, "P", "", `40{"token" : "t"}`, true},
	{` `[:0] + "40\n{\"pid\":\"P\",\t\"x\":\"\\u00e9\"}\n", "P", "", "40\n{\"x\":\"\\u00e9\"}\n", true},
	{`40{"name":"日本","pid":"P"}`, "P", "", `40{"name":"日本"}`, true},
	// Escaped keys are the same keys to json.loads; the last duplicate wins.
	{`40{"p\u0069d":"P","\u006fffset":"O"}`, "P", "O", `40`, true},
	{`40{"p\u0069d":"P","offs\u0065t":"O"}`, "P", "O", `40`, true},
	{`40{"pid":"first","pid":"last","offset":"O1","offset":"O2","a":1}`, "last", "O2", `40{"a":1}`, true},
	{`40{"pid":1,"pid":"last"}`, "last", "", `40`, true},
	{`40{"pid ":"P","Pid":"Q","offset":"O"}`, "", "O", `40{"pid ":"P","Pid":"Q"}`, false},
	// Python's header is kept: attachment count, odd namespaces, ack id.
	{`40/admin?x=1,{"pid":"P"}`, "P", "", `40/admin?x=1,`, true},
	{`401-/admin,{"pid":"P","a":1}`, "P", "", `401-/admin,{"a":1}`, true},
	{`40/admin,12{"pid":"P"}`, "P", "", `40/admin,12`, true},
	// Nothing to take: p comes back as it is.
	{`40`, "", "", `40`, false},
	{`40/chat,`, "", "", `40/chat,`, false},
	{`40{}`, "", "", `40{}`, false},
	{`40{"token":"t"}`, "", "", `40{"token":"t"}`, false},
	{`40["pid","P"]`, "", "", `40["pid","P"]`, false},
	{`40"pid"`, "", "", `40"pid"`, false},
	{`40null`, "", "", `40null`, false},
	{`40{"a":{"pid":"P"}}`, "", "", `40{"a":{"pid":"P"}}`, false},
	// An offset without a pid is still removed.
	{`40{"offset":"O","a":1}`, "", "O", `40{"a":1}`, false},
}

func TestRecoveryOfTakesPidAndOffsetAsPythonWouldReadThem(t *testing.T) {
	for _, c := range recoveryCases {
		pid, offset, stripped, found, err := RecoveryOf([]byte(c.in))
		if err != nil || pid != c.pid || offset != c.offset || string(stripped) != c.stripped || found != c.found {
			t.Errorf("RecoveryOf(%#q) = %q, %q, %#q, %v, %v; want %q, %q, %#q, %v",
				c.in, pid, offset, stripped, found, err, c.pid, c.offset, c.stripped, c.found)
		}
	}
}

func TestRecoveryOfRefusesWhatItCannotTakeApart(t *testing.T) {
	for _, c := range []struct {
		in   string
		want error
	}{
		{`42["ev"]`, errNotConnect},
		{`41`, errNotConnect},
		{`2`, errNotConnect},
		{`40{"pid":1}`, errRecoveryValue},
		{`40{"pid":null,"offset":"O"}`, errRecoveryValue},
		{`40{"pid":"P","offset":2}`, errRecoveryValue},
		{`40{"pid":"P","offset":["O"]}`, errRecoveryValue},
		{`40{"pid":"last","pid":{"a":1}}`, errRecoveryValue},
		{`40{"pid":"\ud800"}`, errRecoveryValue},
		{`40{"pid":"P"`, errConnectJSON},
		{`40{"pid":"P"}x`, errConnectJSON},
		{`40{"pid":"P","a":NaN}`, errConnectJSON},
		{"40{\"pid\":\"\xff\"}", errConnectJSON},
		{`4"0{\"pid\":\"P\"}"`, ErrJSONMessage},
		{``, ErrEmptyPacket},
	} {
		_, _, stripped, found, err := RecoveryOf([]byte(c.in))
		if !errors.Is(err, c.want) || found || stripped != nil {
			t.Errorf("RecoveryOf(%#q) = %#q, %v, %v; want error %v", c.in, stripped, found, err, c.want)
		}
	}
}
