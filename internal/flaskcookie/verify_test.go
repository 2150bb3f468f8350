package flaskcookie

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

const (
	testKey = "test-secret"
	testNow = 1_700_000_000
)

// sign writes a cookie as itsdangerous does, with the timestamp bytes
// given verbatim so tests can also write ones Flask would not.
func sign(payload []byte, ts []byte, key string, compress bool) string {
	enc := base64.RawURLEncoding
	var body string
	if compress {
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		w.Write(payload)
		w.Close()
		body = "." + enc.EncodeToString(z.Bytes())
	} else {
		body = enc.EncodeToString(payload)
	}
	return signRaw(body, ts, key)
}

// signRaw signs body (the text before the timestamp) verbatim.
func signRaw(body string, ts []byte, key string) string {
	enc := base64.RawURLEncoding
	signed := body + "." + enc.EncodeToString(ts)
	m := hmac.New(sha1.New, DeriveKey([]byte(key)))
	m.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(m.Sum(nil))
}

func tsBytes(t uint64) []byte {
	var b []byte
	for ; t > 0; t >>= 8 {
		b = append([]byte{byte(t)}, b...)
	}
	return b
}

func newTestVerifier(t testing.TB, opts Options) *Verifier {
	t.Helper()
	if opts.SecretKeys == nil {
		opts.SecretKeys = [][]byte{[]byte(testKey)}
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = time.Hour
	}
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyRefusals(t *testing.T) {
	payload := []byte(`{"_user_id":"1"}`)
	good := sign(payload, tsBytes(testNow), testKey, false)
	tests := []struct {
		name   string
		cookie string
		opts   Options
		want   error
	}{
		{"valid", good, Options{}, nil},
		{"valid compressed", sign(payload, tsBytes(testNow), testKey, true), Options{}, nil},
		{"current key first, fallback still accepted", good,
			Options{SecretKeys: [][]byte{[]byte("new"), []byte(testKey)}}, nil},
		{"too long", good, Options{MaxCookieLen: len(good) - 1}, ErrTooLarge},
		{"exactly the maximum length", good, Options{MaxCookieLen: len(good)}, nil},
		{"payload over the cap", good, Options{MaxPayloadLen: len(payload) - 1}, ErrTooLarge},
		{"compressed payload over the cap",
			sign(bytes.Repeat([]byte{' '}, 100_000), tsBytes(testNow), testKey, true), Options{}, ErrTooLarge},
		{"one dot", "abc.def", Options{}, ErrMalformed},
		{"empty payload", "." + good[strings.Index(good, "."):], Options{}, ErrMalformed},
		{"padding", good + "=", Options{}, ErrMalformed},
		{"padding in timestamp", strings.Replace(good, ".", "=.", 2), Options{}, ErrMalformed},
		{"CR in payload", "\r" + good, Options{}, ErrMalformed},
		{"plus from the standard alphabet", good[:len(good)-1] + "+", Options{}, ErrMalformed},
		{"newline in signature", good[:len(good)-4] + "\n" + good[len(good)-4:], Options{}, ErrMalformed},
		{"space", " " + good, Options{}, ErrMalformed},
		{"signature of a different key", sign(payload, tsBytes(testNow), "other", false), Options{}, ErrBadSignature},
		{"timestamp with a leading zero byte",
			sign(payload, append([]byte{0}, tsBytes(testNow)...), testKey, false), Options{}, ErrMalformed},
		{"timestamp of nine bytes", sign(payload, make([]byte, 9), testKey, false), Options{}, ErrMalformed},
		{"empty timestamp", sign(payload, nil, testKey, false), Options{}, ErrMalformed},
		{"largest timestamp", sign(payload, bytes.Repeat([]byte{0xff}, 8), testKey, false), Options{}, ErrFuture},
		{"one second in the future", sign(payload, tsBytes(testNow+1), testKey, false), Options{}, ErrFuture},
		{"exactly max age old", sign(payload, tsBytes(testNow-3600), testKey, false), Options{}, nil},
		{"max age plus one second", sign(payload, tsBytes(testNow-3601), testKey, false), Options{}, ErrExpired},
		{"signed but not zlib", signRaw("."+base64.RawURLEncoding.EncodeToString(payload), tsBytes(testNow), testKey),
			Options{}, ErrMalformed},
		{"signed but padded payload", signRaw("e30=", tsBytes(testNow), testKey), Options{}, ErrMalformed},
		{"signed but non-canonical payload bits", signRaw("e31", tsBytes(testNow), testKey), Options{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newTestVerifier(t, tt.opts).Verify(tt.cookie, time.Unix(testNow, 0))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if !bytes.Equal(got, payload) {
					t.Fatalf("payload %q, want %q", got, payload)
				}
				return
			}
			if Reason(err) != Reason(tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTrailingDataAfterZlibStreamIsMalformed(t *testing.T) {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write([]byte(`{"a":1}`))
	w.Close()
	z.WriteString("junk")
	cookie := signRaw("."+base64.RawURLEncoding.EncodeToString(z.Bytes()), tsBytes(testNow), testKey)
	_, err := newTestVerifier(t, Options{}).Verify(cookie, time.Unix(testNow, 0))
	if Reason(err) != "malformed" {
		t.Fatalf("got %v, want malformed", err)
	}
}

func TestVerifierIsReusableAfterARefusedZlibStream(t *testing.T) {
	v := newTestVerifier(t, Options{})
	bomb := sign(bytes.Repeat([]byte{' '}, 100_000), tsBytes(testNow), testKey, true)
	ok := sign([]byte(`{"x":"`+strings.Repeat("y", 500)+`"}`), tsBytes(testNow), testKey, true)
	for range 3 {
		if _, err := v.Verify(bomb, time.Unix(testNow, 0)); Reason(err) != "too_large" {
			t.Fatalf("bomb: %v", err)
		}
		if _, err := v.Verify(ok, time.Unix(testNow, 0)); err != nil {
			t.Fatalf("after bomb: %v", err)
		}
	}
}

// A worker whose clock runs ahead of the edge's signs "in the future":
// by a whole second when it is a few milliseconds ahead across a second
// boundary. ClockSkew accepts that much, and nothing beyond it.
func TestClockSkew(t *testing.T) {
	payload := []byte(`{"_user_id":"1"}`)
	at := func(sec uint64) string { return sign(payload, tsBytes(sec), testKey, false) }
	edge := time.Unix(testNow, 0)
	tests := []struct {
		name   string
		skew   time.Duration
		cookie string
		now    time.Time
		want   error
	}{
		{"1s ahead accepted with DefaultClockSkew", DefaultClockSkew, at(testNow + 1), edge, nil},
		{"worker 3ms ahead across a second boundary, DefaultClockSkew", DefaultClockSkew, at(testNow + 1), edge.Add(998 * time.Millisecond), nil},
		{"exactly DefaultClockSkew ahead accepted", DefaultClockSkew, at(testNow + 5), edge, nil},
		{"just past DefaultClockSkew refused", DefaultClockSkew, at(testNow + 6), edge, ErrFuture},
		{"10s ahead refused with DefaultClockSkew", DefaultClockSkew, at(testNow + 10), edge, ErrFuture},
		{"largest timestamp refused with DefaultClockSkew", DefaultClockSkew,
			sign(payload, bytes.Repeat([]byte{0xff}, 8), testKey, false), edge, ErrFuture},
		{"0 is strict: 1s ahead refused", 0, at(testNow + 1), edge, ErrFuture},
		{"0 is strict: 3ms ahead across a second boundary refused", 0, at(testNow + 1), edge.Add(998 * time.Millisecond), ErrFuture},
		{"0 is strict: now accepted", 0, at(testNow), edge.Add(999 * time.Millisecond), nil},
		{"sub-second skew covers the next second once near it", 500 * time.Millisecond, at(testNow + 1), edge.Add(600 * time.Millisecond), nil},
		{"sub-second skew refuses the next second before that", 500 * time.Millisecond, at(testNow + 1), edge.Add(400 * time.Millisecond), ErrFuture},
		{"skew does not extend max age", DefaultClockSkew, at(testNow - 3601), edge, ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newTestVerifier(t, Options{ClockSkew: tt.skew}).Verify(tt.cookie, tt.now)
			if tt.want == nil {
				if err != nil || !bytes.Equal(got, payload) {
					t.Fatalf("want valid, got %q, %v", got, err)
				}
				return
			}
			if Reason(err) != Reason(tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewVerifierRefusesUnusableOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"no key":         {MaxAge: time.Hour},
		"empty key":      {SecretKeys: [][]byte{[]byte("k"), {}}, MaxAge: time.Hour},
		"no max age":     {SecretKeys: [][]byte{[]byte("k")}},
		"sub-second age": {SecretKeys: [][]byte{[]byte("k")}, MaxAge: time.Millisecond},
		"negative skew":  {SecretKeys: [][]byte{[]byte("k")}, MaxAge: time.Hour, ClockSkew: -time.Second},
	} {
		if _, err := NewVerifier(opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDeriveKeyMatchesItsdangerous(t *testing.T) {
	// /usr/bin/python3 -c 'import hmac, hashlib;
	//   print(hmac.new(b"test-secret", b"cookie-session", hashlib.sha1).hexdigest())'
	const want = "10d1c26eeac03a119b5084eef3a6ae880571600c"
	if got := hex.EncodeToString(DeriveKey([]byte(testKey))); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
