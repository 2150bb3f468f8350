package edgecors

import "strings"

// Access-Control-Request-Headers, read as the Fetch standard reads a
// header list value: the field lines are one list joined by commas
// ("combine"), split on commas, each element stripped of HTTP tab or
// space; empty elements are skipped; names compare without regard to
// case. Chromium sends the names lowercased, sorted, without
// duplicates, joined by "," — but any client may send the other forms.
//
// The cost is bounded by the configuration, not by the request: a
// preflight a browser could send names only allowed headers, at most
// once each, so its value is never longer than the allowed names joined
// by ", " plus requestHeadersSlack for stray whitespace and empty
// elements. A longer value (or more field lines) is refused before any
// of it is parsed.

// requestHeadersSlack is how many bytes of whitespace, empty elements
// and extra field lines a request may add to the longest value a
// browser could send.
const requestHeadersSlack = 256

// maxRequestHeadersLen is the longest Access-Control-Request-Headers
// (all field lines together, each counted with a separator) that can
// name only the allowed headers.
func maxRequestHeadersLen(allowed []string) int {
	n := requestHeadersSlack
	for _, a := range allowed {
		n += len(a) + len(", ")
	}
	return n
}

// firstDisallowedHeader checks the names in the Access-Control-Request-Headers
// field lines against allowed_headers and returns the first that is not
// allowed. A value longer than h.maxRequestHeaders is refused whole,
// reported as tooLongRequestHeaders.
func (h *Handler) firstDisallowedHeader(lines []string) (string, bool) {
	total := 0
	for _, v := range lines {
		if total += len(v) + 1; total > h.maxRequestHeaders {
			return tooLongRequestHeaders, false
		}
	}
	for _, v := range lines {
		for v != "" {
			name := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				name, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			name = strings.Trim(name, " \t")
			if name == "" {
				continue
			}
			if !h.headerAllowed(name) {
				return name, false
			}
		}
	}
	return "", true
}

// tooLongRequestHeaders stands for the refused name when the value is
// longer than any value naming only allowed headers.
const tooLongRequestHeaders = "(value longer than the allowed headers could make)"

func (h *Handler) headerAllowed(name string) bool {
	for _, a := range h.headers {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}
