package flaskcookie

import "time"

// SignedAt returns when a cookie Verify accepted was signed, to the
// second, so a caller that keeps its identity for longer than a request
// knows when the cookie passes max_age. ok is false for a cookie whose
// timestamp cannot be read.
func SignedAt(cookie string) (t time.Time, ok bool) {
	sigDot := lastDot(cookie, len(cookie))
	if sigDot < 0 {
		return time.Time{}, false
	}
	tsDot := lastDot(cookie, sigDot)
	if tsDot < 0 {
		return time.Time{}, false
	}
	var s scratch
	ts, err := decodeTimestamp(&s, cookie[tsDot+1:sigDot])
	if err != nil || ts > 1<<62 {
		return time.Time{}, false
	}
	return time.Unix(int64(ts), 0), true
}
