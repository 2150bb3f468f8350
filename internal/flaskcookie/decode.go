package flaskcookie

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Claims is what the edge reads from a session: who and in which roles.
type Claims struct {
	// UserID is the session's user id as Python's str() renders it, ""
	// if the session has none (an anonymous session).
	UserID string
	// Roles are the role key's values in order; nil if there is none.
	Roles []string
}

// maxDepth bounds nesting; Python's json gives up near its recursion
// limit of 1000 with an error, and so do we, earlier.
const maxDepth = 512

// Decode reads userKey and roleKey from a verified session payload, the
// JSON Flask's TaggedJSONSerializer writes. The whole payload must be
// JSON that Python's json.loads accepts (including NaN and Infinity) and
// a JSON object, as Flask requires; when a key appears twice the last
// one counts, as in Python.
//
// Flask tags values JSON cannot hold as one-member objects: {" t": [...]}
// tuple, {" b": "..."} bytes, {" u": "hex"} UUID, {" d": "..."} datetime,
// {" m": "..."} Markup, and {" di": {"k__": v}} for a dict whose only key
// is itself a tag. The user id may be a string, an integer, a UUID (read
// as str(uuid.UUID), 8-4-4-4-12 lowercase hex) or Markup; the role a
// string or Markup, or a list or tuple of them. Any other type for either
// is ErrMalformed: the edge will not guess an identity.
func Decode(payload []byte, userKey, roleKey string) (Claims, error) {
	if !utf8.Valid(payload) {
		return Claims{}, errUTF8
	}
	p := parser{b: payload}
	p.ws()
	if p.peek() != '{' {
		if err := p.value(0); err != nil {
			return Claims{}, err
		}
		if p.ws(); p.i != len(p.b) {
			return Claims{}, errJSON
		}
		return Claims{}, errNotObject
	}
	var user, role []byte
	var only []byte // the first key's raw text, while every key equals it
	onlyCount := 0  // 1 if the object has exactly one distinct key
	var onlyVal []byte
	err := p.object(0, func(key, val []byte) {
		switch {
		case onlyCount == 0:
			only, onlyCount = key, 1
		case onlyCount == 1 && !sameKey(key, only):
			onlyCount = 2
		}
		onlyVal = val
		if keyIs(key, userKey) {
			user = val
		}
		if keyIs(key, roleKey) {
			role = val
		}
	})
	if err != nil {
		return Claims{}, err
	}
	p.ws()
	if p.i != len(p.b) {
		return Claims{}, errJSON
	}

	if onlyCount == 1 {
		if tag := tagOf(only); tag != "" {
			// Flask untags the whole session; only " di" yields a dict,
			// {"<tag>__": v}, which is the session {"<tag>": v}.
			if tag != "di" {
				return Claims{}, errTaggedTopLevel
			}
			user, role = nil, nil
			q := parser{b: onlyVal}
			if q.peek() != '{' {
				return Claims{}, errTaggedTopLevel
			}
			_ = q.object(0, func(key, val []byte) {
				name := unquote(key)
				if len(name) >= 2 {
					name = name[:len(name)-2]
				} else {
					name = ""
				}
				if name == userKey {
					user = val
				}
				if name == roleKey {
					role = val
				}
			})
		}
	}

	var c Claims
	if user != nil {
		if c.UserID, err = userID(user); err != nil {
			return Claims{}, err
		}
	}
	if role != nil {
		if c.Roles, err = roles(role); err != nil {
			return Claims{}, err
		}
	}
	if err := CheckCarriable(c.UserID, c.Roles); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// CheckCarriable refuses an identity that request headers would not
// hand the app as the edge read it: a user id or role with a control
// character (a line break is turned into a space, or refused, on the
// way out), or with a space or tab at either end (servers trim field
// values, so " 7" would reach the app as user "7"), and a role with a
// comma (roles are joined with commas, so "user,admin" would reach the
// app as two roles, one of them admin, which the edge never saw).
func CheckCarriable(userID string, roles []string) error {
	if !carriable(userID) {
		return errUserHeader
	}
	for _, r := range roles {
		if !carriable(r) || strings.IndexByte(r, ',') >= 0 {
			return errRoleHeader
		}
	}
	return nil
}

func carriable(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func userID(v []byte) (string, error) {
	if HasLoneSurrogate(v) {
		return "", errUserSurrogate
	}
	switch v[0] {
	case '"':
		return unquote(v), nil
	case '{':
		tag, inner, ok := tagged(v)
		if !ok {
			return "", errUserType
		}
		switch {
		case tag == "m" && inner[0] == '"':
			return unquote(inner), nil
		case tag == "u" && inner[0] == '"':
			if id, ok := uuidString(unquote(inner)); ok {
				return id, nil
			}
		}
		return "", errUserType
	}
	// An integer literal is str(int); "-0" is int 0.
	if isInteger(v) {
		if string(v) == "-0" {
			return "0", nil
		}
		return string(v), nil
	}
	return "", errUserType
}

func roles(v []byte) ([]string, error) {
	if HasLoneSurrogate(v) {
		return nil, errRoleSurrogate
	}
	if r, ok := roleString(v); ok {
		return []string{r}, nil
	}
	if v[0] == '{' {
		tag, inner, ok := tagged(v)
		if !ok || tag != "t" {
			return nil, errRoleType
		}
		v = inner
	}
	if v[0] != '[' {
		return nil, errRoleType
	}
	var out []string
	bad := false
	p := parser{b: v}
	_ = p.array(0, func(elem []byte) {
		r, ok := roleString(elem)
		bad = bad || !ok
		out = append(out, r)
	})
	if bad {
		return nil, errRoleType
	}
	return out, nil
}

// roleString reads a string or a Markup.
func roleString(v []byte) (string, bool) {
	switch v[0] {
	case '"':
		return unquote(v), true
	case '{':
		if tag, inner, ok := tagged(v); ok && tag == "m" && inner[0] == '"' {
			return unquote(inner), true
		}
	}
	return "", false
}

// tagged reports whether the object v is one Flask untags: exactly one
// distinct key, a registered tag. It returns the tag without its leading
// space and the (last) value.
func tagged(v []byte) (tag string, val []byte, ok bool) {
	var first []byte
	n := 0
	p := parser{b: v}
	_ = p.object(0, func(key, value []byte) {
		if n == 0 || (n == 1 && !sameKey(key, first)) {
			n++
		}
		if n == 1 {
			first = key
		}
		val = value
	})
	if n != 1 {
		return "", nil, false
	}
	tag = tagOf(first)
	return tag, val, tag != ""
}

// tagOf returns the tag name (without the leading space) if key, a
// quoted JSON string, is one of Flask's default tags.
func tagOf(key []byte) string {
	switch k := unquote(key); k {
	case " t", " b", " u", " d", " m", " di":
		return k[1:]
	}
	return ""
}

// uuidString renders a UUID tag's value ("hex", 32 digits) as Python's
// str(uuid.UUID(...)) does. Python also accepts other spellings that
// Flask never writes; the canonical hyphenated form is accepted too.
func uuidString(s string) (string, bool) {
	var raw [16]byte
	switch len(s) {
	case 32:
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return "", false
		}
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	default:
		return "", false
	}
	if _, err := hex.Decode(raw[:], []byte(s)); err != nil {
		return "", false
	}
	var out [36]byte
	hex.Encode(out[0:8], raw[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], raw[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], raw[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], raw[8:10])
	out[23] = '-'
	hex.Encode(out[24:], raw[10:])
	return string(out[:]), true
}

func isInteger(v []byte) bool {
	if len(v) > 0 && v[0] == '-' {
		v = v[1:]
	}
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// keyIs compares a quoted JSON key with want without allocating unless
// the key has escapes.
func keyIs(key []byte, want string) bool {
	if !hasEscape(key) {
		return string(key[1:len(key)-1]) == want
	}
	return unquote(key) == want
}

func sameKey(a, b []byte) bool {
	if !hasEscape(a) && !hasEscape(b) {
		return string(a) == string(b)
	}
	return unquote(a) == unquote(b)
}

func hasEscape(quoted []byte) bool {
	for _, c := range quoted {
		if c == '\\' {
			return true
		}
	}
	return false
}

// HasLoneSurrogate reports whether v, valid JSON, escapes a UTF-16
// surrogate that is not half of a pair (\ud800 alone, or \udc00 first).
// Python's json.loads keeps such a character in a str, and Flask signs
// it; UTF-8 has no form for it, and encoding/json, like any decoder to
// UTF-8, turns it into U+FFFD: Flask users "\ud800", "\udc00" and "\ufffd"
// would be one user to the edge and to the app's identity header.
func HasLoneSurrogate(v []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(v) || v[i] != '\\' || v[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range v[i+2 : i+6] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // an escape of one character: skip it (it may be a backslash)
			continue
		}
		switch {
		case 0xd800 <= r && r <= 0xdbff:
			if lo, ok := hex4(i + 6); !ok || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		case 0xdc00 <= r && r <= 0xdfff:
			return true
		default:
			i += 5
		}
	}
	return false
}

// unquote decodes a JSON string the parser has already validated.
func unquote(quoted []byte) string {
	if !hasEscape(quoted) {
		return string(quoted[1 : len(quoted)-1])
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return "" // unreachable for validated input
	}
	return s
}
