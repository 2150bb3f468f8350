package flaskcookie

import (
	"slices"
	"strings"
	"testing"
)

func TestDecodeReadsUserAndRoles(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		user    string
		roles   []string
		reason  string
	}{
		{"flask-login session", `{"_fresh":true,"_id":"x","_user_id":"42","role":"admin"}`, "42", []string{"admin"}, ""},
		{"no user: anonymous session", `{"csrf_token":"t"}`, "", nil, ""},
		{"empty session", `{}`, "", nil, ""},
		{"whitespace Python allows", " \t\r\n{ \"_user_id\" : \"1\" }\n", "1", nil, ""},
		{"integer user id", `{"_user_id":1001}`, "1001", nil, ""},
		{"negative zero is int 0", `{"_user_id":-0}`, "0", nil, ""},
		{"float user id", `{"_user_id":1.5}`, "", nil, "malformed"},
		{"exponent user id", `{"_user_id":1e3}`, "", nil, "malformed"},
		{"bool user id", `{"_user_id":true}`, "", nil, "malformed"},
		{"null user id", `{"_user_id":null}`, "", nil, "malformed"},
		{"list user id", `{"_user_id":["1"]}`, "", nil, "malformed"},
		{"bytes user id", `{"_user_id":{" b":"MQ=="}}`, "", nil, "malformed"},
		{"uuid user id", `{"_user_id":{" u":"12345678123456781234567812345678"}}`,
			"12345678-1234-5678-1234-567812345678", nil, ""},
		{"uuid with upper-case hex", `{"_user_id":{" u":"ABCDEF78123456781234567812345678"}}`,
			"abcdef78-1234-5678-1234-567812345678", nil, ""},
		{"uuid too short", `{"_user_id":{" u":"1234"}}`, "", nil, "malformed"},
		{"markup user id", `{"_user_id":{" m":"u1"}}`, "u1", nil, ""},
		{"escaped user id", `{"_user_id":"caf\u00e9 \"x\""}`, "café \"x\"", nil, ""},
		{"escaped key", `{"\u005fuser_id":"7"}`, "7", nil, ""},
		{"last duplicate wins, as in Python", `{"_user_id":"1","_user_id":"2"}`, "2", nil, ""},
		{"object with two keys is not a tag", `{"_user_id":{" m":"a","x":1}}`, "", nil, "malformed"},
		{"duplicate tag key is still one key", `{"role":{" m":"a"," m":"b"}}`, "", []string{"b"}, ""},
		{"role list", `{"role":["admin","editor"]}`, "", []string{"admin", "editor"}, ""},
		{"role tuple", `{"role":{" t":["ops",{" m":"auditor"}]}}`, "", []string{"ops", "auditor"}, ""},
		{"empty role list", `{"role":[]}`, "", nil, ""},
		{"role list with a number", `{"role":["a",1]}`, "", nil, "malformed"},
		{"role dict", `{"role":{"a":1}}`, "", nil, "malformed"},
		{"nested tags elsewhere are ignored", `{"x":{" d":"Tue, 14 Nov 2023 22:13:20 GMT"},"_user_id":"3"}`, "3", nil, ""},
		{"NaN elsewhere, as Python allows", `{"score":NaN,"low":-Infinity,"high":Infinity,"_user_id":"5"}`, "5", nil, ""},
		{"top-level di unwraps", `{" di":{" t__":"x"}}`, "", nil, ""},
		{"top-level di holding the user key", `{" di":{"_user_id__":"9"}}`, "9", nil, ""},
		{"top-level tuple is not a session", `{" t":[["_user_id","1"]]}`, "", nil, "malformed"},
		// An identity the headers to the app would not carry as it is.
		{"user id with an escaped line break", `{"_user_id":"7\r\nX-Auth-Role: admin"}`, "", nil, "malformed"},
		{"user id with an escaped NUL", `{"_user_id":"7\u0000"}`, "", nil, "malformed"},
		{"user id with a tab", `{"_user_id":"7\t"}`, "", nil, "malformed"},
		{"user id with DEL", `{"_user_id":"7\u007f"}`, "", nil, "malformed"},
		{"user id with a leading space", `{"_user_id":" 7"}`, "", nil, "malformed"},
		{"markup user id with a trailing space", `{"_user_id":{" m":"7 "}}`, "", nil, "malformed"},
		{"user id with a space inside", `{"_user_id":"ann lee"}`, "ann lee", nil, ""},
		{"role with a comma", `{"role":"user,admin"}`, "", nil, "malformed"},
		{"role list with a comma", `{"role":["user","ops,admin"]}`, "", nil, "malformed"},
		{"role with a line break", `{"role":"user\nadmin"}`, "", nil, "malformed"},
		{"role with a trailing space", `{"role":["admin "]}`, "", nil, "malformed"},
		{"role with a space inside", `{"role":"site admin"}`, "", []string{"site admin"}, ""},
		// Unpaired UTF-16 surrogates: Python keeps them, UTF-8 cannot.
		{"user id a lone high surrogate", `{"_user_id":"\ud800"}`, "", nil, "malformed"},
		{"user id a lone low surrogate", `{"_user_id":"\udc00"}`, "", nil, "malformed"},
		{"user id two high surrogates", `{"_user_id":"\udbff\udbff"}`, "", nil, "malformed"},
		{"user id low before high", `{"_user_id":"\udc00\ud800"}`, "", nil, "malformed"},
		{"markup user id with a lone surrogate", `{"_user_id":{" m":"x\uDFFF"}}`, "", nil, "malformed"},
		{"role with a lone surrogate", `{"role":["user","\ud83d"]}`, "", nil, "malformed"},
		{"user id U+FFFD itself", `{"_user_id":"\ufffd"}`, "\ufffd", nil, ""},
		{"user id a surrogate pair", `{"_user_id":"\ud83d\ude00"}`, "\U0001F600", nil, ""},
		{"user id an escaped backslash before u", `{"_user_id":"\\ud800"}`, `\ud800`, nil, ""},
		{"array", `[1,2]`, "", nil, "malformed"},
		{"string", `"x"`, "", nil, "malformed"},
		{"trailing comma", `{"a":1,}`, "", nil, "malformed"},
		{"trailing data", `{"a":1} x`, "", nil, "malformed"},
		{"two objects", `{}{}`, "", nil, "malformed"},
		{"single quotes", `{'a':1}`, "", nil, "malformed"},
		{"control character in a string", "{\"a\":\"\x01\"}", "", nil, "malformed"},
		{"bad escape", `{"a":"\x"}`, "", nil, "malformed"},
		{"leading zero", `{"a":01}`, "", nil, "malformed"},
		{"lone minus", `{"a":-}`, "", nil, "malformed"},
		{"bare dot fraction", `{"a":1.}`, "", nil, "malformed"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "", nil, "malformed"},
		{"empty", ``, "", nil, "malformed"},
		{"too deep", strings.Repeat("[", 600) + strings.Repeat("]", 600), "", nil, "malformed"},
		{"deep inside a session", `{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, "", nil, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode([]byte(tt.payload), "_user_id", "role")
			if tt.reason != "" {
				if Reason(err) != tt.reason {
					t.Fatalf("got %v (%+v), want %s", err, c, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.UserID != tt.user || !slices.Equal(c.Roles, tt.roles) {
				t.Fatalf("got %q %q, want %q %q", c.UserID, c.Roles, tt.user, tt.roles)
			}
		})
	}
}
