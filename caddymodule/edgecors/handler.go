package edgecors

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/flaskedge/flaskedge/internal/security"
)

// Header values shared by every response; net/http only reads them.
var (
	trueValue  = []string{"true"}
	varyOrigin = newVary("Origin")
)

// vary is what a response varies on: the tokens, and the same as one
// field line for a response that had no Vary.
type vary struct {
	tokens []string
	line   []string
}

func newVary(tokens ...string) vary {
	return vary{tokens: tokens, line: []string{strings.Join(tokens, ", ")}}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, h.clientPath) && !isWebSocketUpgrade(r) {
		return h.servePublic(w, r, next)
	}
	var origin string
	var acao []string
	allowed, crossOrigin := false, false
	vals := r.Header["Origin"]
	if len(vals) > 0 {
		origin = vals[0]
		if len(vals) == 1 {
			acao, allowed = h.origins.allow(origin)
		}
		crossOrigin = allowed || !isSameOrigin(r, origin)
	}

	if crossOrigin && r.Method == http.MethodOptions && len(r.Header["Access-Control-Request-Method"]) > 0 {
		h.preflight(w, r, origin, acao, allowed)
		return nil
	}
	if h.guardEnabled {
		// "null" (sandboxed frames, file: pages) is never a page of the
		// app's, even under origins "*".
		// require_origin applies to what opens a session: a browser
		// sends no Origin on a same-origin GET, a long-poll among them.
		foreign := crossOrigin && (!allowed || origin == "null")
		if foreign || len(vals) == 0 && h.RequireOrigin {
			if what, ok := h.guarded(r); ok && (foreign || what != guardSessionRequest) {
				h.refuseGuarded(w, r, what, origin, len(vals) == 0)
				return nil
			}
		}
	}

	if allowed && acao == nil {
		acao = []string{origin}
	}
	wroteHeader, err := serveWithCORS(w, r, next, corsWriter{h: h, acao: acao})
	if err != nil && !wroteHeader {
		// Caddy writes the error response on the header map we share:
		// give it the CORS headers so the page can read the status
		// instead of reporting a CORS failure.
		h.setResponseHeaders(w.Header(), acao, varyOrigin)
	}
	return err
}

// refuseGuarded answers a WebSocket upgrade or Engine.IO handshake the
// guard refuses: 403, no CORS headers, one security event.
func (h *Handler) refuseGuarded(w http.ResponseWriter, r *http.Request, what, origin string, noOrigin bool) {
	var reason string
	switch {
	case noOrigin:
		reason = what + " refused: no Origin and require_origin is on"
	case origin == "null":
		reason = what + ` refused: Origin "null" is never allowed`
	default:
		reason = what + " refused: origin not allowed by " + h.source
	}
	security.Refused(security.ReasonOrigin)
	h.event(r, reason, origin)
	h.setResponseHeaders(w.Header(), nil, varyOrigin)
	w.WriteHeader(http.StatusForbidden)
}

// event writes one security event. Its reason is built only when the
// event is logged; logs name the path, never the query (Socket.IO
// clients may carry tokens there) nor any cookie.
func (h *Handler) event(r *http.Request, reason, origin string) {
	if !h.security.Core().Enabled(zap.WarnLevel) {
		return
	}
	security.Log(h.security, "edge_cors", security.OriginRefused, reason, r, security.Fields{Origin: origin})
}

// preflight answers an OPTIONS request carrying Origin and
// Access-Control-Request-Method, without calling the next handler: 204
// with the CORS headers when origin, method, every requested header and
// any Private Network Access request are allowed, else 403 with none and
// a security event naming the reason.
func (h *Handler) preflight(w http.ResponseWriter, r *http.Request, origin string, acao []string, allowed bool) {
	method := r.Header["Access-Control-Request-Method"]
	reqHeaders := r.Header["Access-Control-Request-Headers"]
	pna := len(r.Header["Access-Control-Request-Private-Network"]) > 0 &&
		strings.EqualFold(r.Header.Get("Access-Control-Request-Private-Network"), "true")
	hdr := w.Header()

	refused, detail := "", ""
	switch {
	case !allowed:
		refused = "origin not allowed by "
	case len(method) != 1 || !h.methodAllowed(method[0]):
		refused = "method not allowed: "
		if len(method) > 0 {
			detail = method[0]
		}
	case pna && !h.AllowPrivateNetwork:
		refused = "Private Network Access requested and allow_private_network is off"
	default:
		if bad, ok := h.firstDisallowedHeader(reqHeaders); !ok {
			refused, detail = "header not allowed: ", bad
		}
	}
	if refused != "" {
		security.Refused(security.ReasonOrigin)
		if h.security.Core().Enabled(zap.WarnLevel) {
			reason := "preflight refused: " + refused
			switch {
			case !allowed:
				reason += h.source
			case strings.HasSuffix(refused, ": "):
				reason += strconv.Quote(detail)
			}
			h.event(r, reason, origin)
		}
		h.setResponseHeaders(hdr, nil, h.varyPreflight)
		w.WriteHeader(http.StatusForbidden)
		return
	}

	if acao == nil {
		acao = []string{origin}
	}
	h.setResponseHeaders(hdr, acao, h.varyPreflight)
	hdr["Access-Control-Allow-Methods"] = method
	if len(reqHeaders) > 0 {
		hdr["Access-Control-Allow-Headers"] = reqHeaders
	}
	if pna {
		hdr["Access-Control-Allow-Private-Network"] = trueValue
	}
	if h.maxAgeValue != nil {
		hdr["Access-Control-Max-Age"] = h.maxAgeValue
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) methodAllowed(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		return true // CORS-safelisted: the browser never checks them
	}
	for _, a := range h.methods {
		if a == m {
			return true
		}
	}
	return false
}

// setResponseHeaders makes hdr carry the edge's CORS decision and
// nothing else: every Access-Control-* header already there (set by the
// app, or by a handler further in) is removed, then, when acao is not
// nil, the edge's own are set; vary is merged into Vary either way.
func (h *Handler) setResponseHeaders(hdr http.Header, acao []string, v vary) {
	for k := range hdr {
		if len(k) >= len("Access-Control-") && strings.EqualFold(k[:len("Access-Control-")], "Access-Control-") {
			delete(hdr, k)
		}
	}
	if acao != nil {
		hdr["Access-Control-Allow-Origin"] = acao
		if h.Credentials {
			hdr["Access-Control-Allow-Credentials"] = trueValue
		}
		hdr["Access-Control-Expose-Headers"] = h.exposeValue
	}
	mergeVary(hdr, v)
}

// mergeVary adds the tokens to hdr's Vary, keeping what is there, each
// token once, as a single field line.
func mergeVary(hdr http.Header, v vary) {
	have := hdr["Vary"]
	if len(have) == 0 {
		hdr["Vary"] = v.line
		return
	}
	if httpguts.HeaderValuesContainsToken(have, "*") {
		return
	}
	var b strings.Builder
	for _, t := range v.tokens {
		if httpguts.HeaderValuesContainsToken(have, t) {
			continue
		}
		if b.Len() == 0 {
			b.WriteString(strings.Join(have, ", "))
		}
		b.WriteString(", ")
		b.WriteString(t)
	}
	if b.Len() > 0 {
		hdr["Vary"] = []string{b.String()}
	}
}

// isSameOrigin reports whether origin is the request's own
// scheme://Host, which makes it a same-origin request, not a CORS one.
// Caddy is the edge, so r.TLS tells the scheme the browser used.
func isSameOrigin(r *http.Request, origin string) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	n := len(scheme) + len("://")
	return len(origin) == n+len(r.Host) && r.Host != "" &&
		strings.EqualFold(origin[:len(scheme)], scheme) &&
		origin[len(scheme):n] == "://" &&
		strings.EqualFold(origin[n:], r.Host)
}
