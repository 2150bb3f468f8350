package flaskcookie

import "errors"

// The reasons a cookie is refused. Every error returned by Verify and
// Decode wraps exactly one of them, so callers can log or count the
// reason with errors.Is (or Reason) without ever handling the cookie.
var (
	// ErrMalformed: not something Flask writes (structure, base64,
	// timestamp, zlib or JSON), or a claim of a type the edge does not
	// read as an identity.
	ErrMalformed = errors.New("malformed")
	// ErrBadSignature: well-formed but not signed by any configured key.
	ErrBadSignature = errors.New("bad signature")
	// ErrExpired: signed longer ago than the maximum age.
	ErrExpired = errors.New("expired")
	// ErrFuture: signed in the future (itsdangerous refuses age < 0).
	ErrFuture = errors.New("signed in the future")
	// ErrTooLarge: the cookie or its inflated payload exceeds its cap.
	ErrTooLarge = errors.New("too large")
)

// Error is a refusal with a fixed detail. The detail never contains any
// part of the cookie, so the error is safe to log.
type Error struct {
	Kind   error // one of the Err* sentinels
	Detail string
}

func (e *Error) Error() string { return "flask session cookie " + e.Kind.Error() + ": " + e.Detail }

func (e *Error) Unwrap() error { return e.Kind }

// Reason is a short machine-friendly name for err's kind: "malformed",
// "bad_signature", "expired", "future", "too_large", or "" if err is not
// one of this package's errors.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrFuture):
		return "future"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	}
	return ""
}

// Refusals are package-level values so that rejecting a cookie, the path
// an attacker controls, allocates nothing.
func malformed(detail string) error { return &Error{Kind: ErrMalformed, Detail: detail} }

var (
	errCookieTooLong   = &Error{Kind: ErrTooLarge, Detail: "cookie longer than the configured maximum"}
	errPayloadTooLarge = &Error{Kind: ErrTooLarge, Detail: "payload larger than the configured maximum"}
	errBadSignature    = &Error{Kind: ErrBadSignature, Detail: "signature does not match any secret key"}
	errExpired         = &Error{Kind: ErrExpired, Detail: "older than the maximum age"}
	errFuture          = &Error{Kind: ErrFuture, Detail: "timestamp is later than now"}

	errStructure      = malformed("not of the form [.]payload.timestamp.signature")
	errAlphabet       = malformed("character outside the URL-safe base64 alphabet")
	errBase64         = malformed("non-canonical base64")
	errSignatureLen   = malformed("signature is not 20 bytes")
	errTimestamp      = malformed("timestamp is not 1 to 8 bytes without leading zeros")
	errZlib           = malformed("payload is not a valid zlib stream")
	errJSON           = malformed("payload is not JSON")
	errUTF8           = malformed("payload is not UTF-8")
	errTooDeep        = malformed("payload nests too deeply")
	errNotObject      = malformed("payload is not a JSON object")
	errTaggedTopLevel = malformed("payload is a tagged value, not a session dict")
	errUserType       = malformed("user id is not a string, integer or UUID")
	errRoleType       = malformed("role is not a string or a list of strings")
	errUserHeader     = malformed("user id has a control character, or a space at either end, which a request header would not carry as it is")
	errUserSurrogate  = malformed("user id has an unpaired UTF-16 surrogate (\\ud800 to \\udfff), which UTF-8 cannot carry: it would reach the app as another user's id")
	errRoleSurrogate  = malformed("role has an unpaired UTF-16 surrogate (\\ud800 to \\udfff), which UTF-8 cannot carry")
	errRoleHeader     = malformed("role has a comma, a control character, or a space at either end: the role header would not carry it as one role")
)
