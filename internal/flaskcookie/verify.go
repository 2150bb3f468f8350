// Package flaskcookie verifies and decodes Flask's default session
// cookie, exactly as Flask 2.2's SecureCookieSessionInterface writes it
// through itsdangerous' URLSafeTimedSerializer:
//
//	[.]b64(payload).b64(timestamp).b64(signature)
//
// b64 is URL-safe base64 without padding; a leading "." means the
// payload is zlib-compressed; the timestamp is int(time.time()) as
// big-endian bytes with leading zeros dropped; the signature is
// HMAC-SHA1 over everything before the last ".", keyed by
// HMAC-SHA1(secret_key, "cookie-session") (itsdangerous' "hmac" key
// derivation with Flask's salt). The payload is compact JSON with
// Flask's tagged values (see Decode).
//
// Verification is stricter than itsdangerous where Flask never writes
// the variant: base64 must be canonical (no padding, no characters
// outside the alphabet, zero unused bits) and the timestamp must have no
// leading zero bytes. It never accepts a cookie that Flask would refuse,
// but for one opt-in: Options.ClockSkew accepts a signature from a
// worker whose clock is slightly ahead of the edge's, which itsdangerous
// refuses as "age < 0".
//
// The package has no Caddy dependency; caddymodule/flasksession wraps it.
package flaskcookie

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

const (
	// DefaultMaxCookieLen is the longest cookie value accepted by
	// default: browsers keep at most 4096 bytes of name=value, so this is
	// what is left with Flask's default name "session".
	DefaultMaxCookieLen = 4093
	// DefaultMaxPayloadLen caps the JSON after inflating: a 4 kB cookie
	// can carry megabytes of zlib-compressed zeros.
	DefaultMaxPayloadLen = 64 << 10
	// DefaultClockSkew is the Options.ClockSkew flask_session uses when
	// none is configured: more than NTP-synchronised clocks drift, far
	// less than any session lifetime.
	DefaultClockSkew = 5 * time.Second

	// salt is Flask's SecureCookieSessionInterface.salt.
	salt = "cookie-session"
	// sigB64Len is the unpadded base64 length of a SHA-1 sum.
	sigB64Len = (sha1.Size*8 + 5) / 6
)

// Options configures a Verifier.
type Options struct {
	// SecretKeys are Flask's SECRET_KEY first, then keys still accepted
	// during a rotation (SECRET_KEY_FALLBACKS in Flask ≥ 3). At least
	// one; none may be empty.
	SecretKeys [][]byte
	// MaxAge is the oldest signature accepted, Flask's
	// PERMANENT_SESSION_LIFETIME (which Flask applies to every session
	// cookie, permanent or not). Whole seconds count, as in Flask. Must
	// be at least one second.
	MaxAge time.Duration
	// MaxCookieLen caps the cookie's length. Default DefaultMaxCookieLen.
	MaxCookieLen int
	// MaxPayloadLen caps the decoded (and inflated) JSON payload.
	// Default DefaultMaxPayloadLen.
	MaxPayloadLen int
	// ClockSkew is how far in the future a signature may be: the
	// timestamp is whole seconds of the signing worker's clock, so a
	// worker a few milliseconds ahead of the edge across a second
	// boundary signs "in the future". Zero refuses any future
	// timestamp, as itsdangerous does; flask_session passes
	// DefaultClockSkew unless configured otherwise. Must not be negative.
	ClockSkew time.Duration
}

// Verifier checks cookies against a fixed set of keys. It is safe for
// concurrent use.
type Verifier struct {
	keys          [][]byte // derived signing keys, current first
	maxAge        int64    // seconds
	clockSkew     time.Duration
	maxCookieLen  int
	maxPayloadLen int
	scratch       sync.Pool // *scratch
}

// scratch is per-call state reused across calls so that verifying a
// cookie allocates only the payload it returns.
type scratch struct {
	macs []hash.Hash // one keyed HMAC per derived key
	sum  [sha1.Size]byte
	sig  [sha1.Size + 3]byte // room for base64.Decode's trailing quantum
	buf  []byte              // the part of the cookie being worked on
	dec  []byte              // the base64-decoded payload
	zsrc bytes.Reader
	zr   io.ReadCloser // a zlib reader, reset for every compressed payload
	out  []byte        // inflated payload
}

// NewVerifier derives the signing keys once, so Verify only runs the
// HMAC over the cookie.
func NewVerifier(opts Options) (*Verifier, error) {
	if len(opts.SecretKeys) == 0 {
		return nil, errors.New("flaskcookie: no secret key")
	}
	if opts.MaxAge < time.Second {
		return nil, errors.New("flaskcookie: max age must be at least one second")
	}
	if opts.ClockSkew < 0 {
		return nil, errors.New("flaskcookie: clock skew must not be negative")
	}
	v := &Verifier{
		maxAge:        int64(opts.MaxAge / time.Second),
		clockSkew:     opts.ClockSkew,
		maxCookieLen:  opts.MaxCookieLen,
		maxPayloadLen: opts.MaxPayloadLen,
	}
	if v.maxCookieLen <= 0 {
		v.maxCookieLen = DefaultMaxCookieLen
	}
	if v.maxPayloadLen <= 0 {
		v.maxPayloadLen = DefaultMaxPayloadLen
	}
	for i, k := range opts.SecretKeys {
		if len(k) == 0 {
			return nil, errors.New("flaskcookie: secret key " + strconv.Itoa(i+1) + " is empty")
		}
		v.keys = append(v.keys, DeriveKey(k))
	}
	v.scratch.New = func() any {
		s := &scratch{buf: make([]byte, 0, v.maxCookieLen)}
		for _, k := range v.keys {
			s.macs = append(s.macs, hmac.New(sha1.New, k))
		}
		return s
	}
	return v, nil
}

// DeriveKey is itsdangerous' "hmac" key derivation with Flask's salt:
// HMAC-SHA1(secret, "cookie-session").
func DeriveKey(secret []byte) []byte {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(salt))
	return m.Sum(nil)
}

// Verify checks cookie's signature against every key, then its age at
// now, and returns the JSON payload, inflated if it was compressed. The
// returned slice is the caller's. Checks run cheapest and most
// conclusive first: length, shape, signature (so a forged cookie never
// reaches the timestamp or zlib), age, then the payload.
func (v *Verifier) Verify(cookie string, now time.Time) ([]byte, error) {
	if len(cookie) > v.maxCookieLen {
		return nil, errCookieTooLong
	}
	sigDot := lastDot(cookie, len(cookie))
	if sigDot < 0 {
		return nil, errStructure
	}
	tsDot := lastDot(cookie, sigDot)
	if tsDot < 0 {
		return nil, errStructure
	}
	payload, compressed := cookie[:tsDot], false
	if len(payload) > 0 && payload[0] == '.' {
		payload, compressed = payload[1:], true
	}
	ts, sig := cookie[tsDot+1:sigDot], cookie[sigDot+1:]
	if payload == "" {
		return nil, errStructure
	}
	if !inAlphabet(payload) || !inAlphabet(ts) || !inAlphabet(sig) {
		return nil, errAlphabet
	}
	if len(sig) != sigB64Len {
		return nil, errSignatureLen
	}

	s := v.scratch.Get().(*scratch)
	defer v.scratch.Put(s)

	s.buf = append(s.buf[:0], sig...)
	if n, err := b64.Decode(s.sig[:], s.buf); err != nil || n != sha1.Size {
		return nil, errBase64
	}
	s.buf = append(s.buf[:0], cookie[:sigDot]...)
	if !s.signedByAnyKey() {
		return nil, errBadSignature
	}

	signedAt, err := decodeTimestamp(s, ts)
	if err != nil {
		return nil, err
	}
	// The signature's whole second may start up to clockSkew after now;
	// with no skew this is itsdangerous' age < 0.
	if signedAt > math.MaxInt64 || int64(signedAt) > now.Add(v.clockSkew).Unix() {
		return nil, errFuture
	}
	if now.Unix()-int64(signedAt) > v.maxAge {
		return nil, errExpired
	}

	if len(payload) > base64.RawURLEncoding.EncodedLen(v.maxPayloadLen) {
		return nil, errPayloadTooLarge
	}
	s.buf = append(s.buf[:0], payload...)
	s.dec = slices.Grow(s.dec[:0], b64.DecodedLen(len(s.buf)))
	n, err := b64.Decode(s.dec[:cap(s.dec)], s.buf)
	if err != nil {
		return nil, errBase64
	}
	raw := s.dec[:n]
	if compressed {
		if raw, err = s.inflate(raw, v.maxPayloadLen); err != nil {
			return nil, err
		}
	}
	return bytes.Clone(raw), nil
}

func (s *scratch) signedByAnyKey() bool {
	for _, m := range s.macs {
		m.Reset()
		m.Write(s.buf)
		if hmac.Equal(m.Sum(s.sum[:0]), s.sig[:sha1.Size]) {
			return true
		}
	}
	return false
}

// decodeTimestamp reads itsdangerous' int_to_bytes(int(time.time())).
func decodeTimestamp(s *scratch, ts string) (uint64, error) {
	if len(ts) == 0 || len(ts) > 11 { // 11 characters hold 8 bytes
		return 0, errTimestamp
	}
	s.buf = append(s.buf[:0], ts...)
	var b [9]byte
	n, err := b64.Decode(b[:], s.buf)
	if err != nil {
		return 0, errBase64
	}
	if n == 0 || n > 8 || b[0] == 0 {
		return 0, errTimestamp
	}
	var t uint64
	for _, c := range b[:n] {
		t = t<<8 | uint64(c)
	}
	return t, nil
}

// inflate decompresses a zlib stream, refusing more than limit bytes of
// output and anything after the stream's checksum.
func (s *scratch) inflate(compressed []byte, limit int) ([]byte, error) {
	s.zsrc.Reset(compressed)
	if s.zr == nil {
		zr, err := zlib.NewReader(&s.zsrc)
		if err != nil {
			return nil, errZlib
		}
		s.zr = zr
	} else if err := s.zr.(zlib.Resetter).Reset(&s.zsrc, nil); err != nil {
		return nil, errZlib
	}
	out := s.out[:0]
	defer func() { s.out = out[:0] }()
	for {
		if len(out) == cap(out) {
			out = slices.Grow(out, max(4*len(compressed), len(out)))
		}
		n, err := s.zr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			return nil, errPayloadTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errZlib
		}
	}
	if s.zsrc.Len() != 0 {
		return nil, errZlib
	}
	return out, nil
}

// b64 is the encoding itsdangerous writes. Strict rejects non-zero
// unused bits; inAlphabet rejects what Decode would otherwise skip
// (CR, LF) or treat as padding.
var b64 = base64.RawURLEncoding.Strict()

var alphabet = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[c] = true
	}
	return t
}()

func inAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if !alphabet[s[i]] {
			return false
		}
	}
	return true
}

func lastDot(s string, end int) int {
	for i := end - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}
