package edgecors

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"
)

// Header values shared by every response; net/http only reads them.
var (
	trueValue        = []string{"true"}
	varyOrigin       = []string{"Origin"}
	varyPreflight    = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
	varyPreflightSet = []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var origin string
	var acao []string
	allowed, crossOrigin := false, false
	if vals := r.Header["Origin"]; len(vals) > 0 {
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
	if crossOrigin && !allowed && h.guardEnabled && isWebSocketUpgrade(r) {
		// Logs name the path, never the query (Socket.IO clients may
		// carry tokens there) nor any cookie.
		if c := h.logger.Check(zap.InfoLevel, "WebSocket upgrade refused: origin not allowed"); c != nil {
			c.Write(zap.String("origin", origin), zap.String("host", r.Host), zap.String("path", r.URL.Path))
		}
		h.setResponseHeaders(w.Header(), nil, varyOrigin)
		w.WriteHeader(http.StatusForbidden)
		return nil
	}

	if allowed && acao == nil {
		acao = []string{origin}
	}
	cw := &corsWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, h: h, acao: acao}
	err := next.ServeHTTP(cw, r)
	if err != nil && !cw.wroteHeader {
		// Caddy writes the error response on the header map we share:
		// give it the CORS headers so the page can read the status
		// instead of reporting a CORS failure.
		h.setResponseHeaders(w.Header(), acao, varyOrigin)
	}
	return err
}

// preflight answers an OPTIONS request carrying Origin and
// Access-Control-Request-Method, without calling the next handler: 204
// with the CORS headers when origin, method and every requested header
// are allowed, else 403 with none and a log line naming the reason.
func (h *Handler) preflight(w http.ResponseWriter, r *http.Request, origin string, acao []string, allowed bool) {
	method := r.Header["Access-Control-Request-Method"]
	reqHeaders := r.Header["Access-Control-Request-Headers"]
	hdr := w.Header()

	// Constant messages: the refusal path allocates nothing unless logged.
	refusal, detail := "", ""
	switch {
	case !allowed:
		refusal, detail = "preflight refused: origin not allowed", origin
	case len(method) != 1 || !h.methodAllowed(method[0]):
		refusal = "preflight refused: method not allowed"
		if len(method) > 0 {
			detail = method[0]
		}
	default:
		if bad, ok := h.firstDisallowedHeader(reqHeaders); !ok {
			refusal, detail = "preflight refused: header not allowed", bad
		}
	}
	if refusal != "" {
		if c := h.logger.Check(zap.InfoLevel, refusal); c != nil {
			c.Write(zap.String("origin", origin), zap.String("refused", detail),
				zap.Strings("request_method", method), zap.Strings("request_headers", reqHeaders),
				zap.String("host", r.Host), zap.String("path", r.URL.Path))
		}
		h.setResponseHeaders(hdr, nil, varyPreflightSet)
		w.WriteHeader(http.StatusForbidden)
		return
	}

	if acao == nil {
		acao = []string{origin}
	}
	h.setResponseHeaders(hdr, acao, varyPreflightSet)
	hdr["Access-Control-Allow-Methods"] = method
	if len(reqHeaders) > 0 {
		hdr["Access-Control-Allow-Headers"] = reqHeaders
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

// firstDisallowedHeader checks the comma-separated names of
// Access-Control-Request-Headers against allowed_headers, ignoring case,
// and returns the first name not allowed.
func (h *Handler) firstDisallowedHeader(values []string) (string, bool) {
	for _, v := range values {
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
			ok := false
			for _, a := range h.headers {
				if strings.EqualFold(a, name) {
					ok = true
					break
				}
			}
			if !ok {
				return name, false
			}
		}
	}
	return "", true
}

// setResponseHeaders makes hdr carry the edge's CORS decision and
// nothing else: every Access-Control-* header already there (set by the
// app, or by a handler further in) is removed, then, when acao is not
// nil, the edge's own are set; vary is merged into Vary either way.
func (h *Handler) setResponseHeaders(hdr http.Header, acao []string, vary []string) {
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
		if h.exposeValue != nil {
			hdr["Access-Control-Expose-Headers"] = h.exposeValue
		}
	}
	mergeVary(hdr, vary)
}

// mergeVary adds the tokens to hdr's Vary, keeping what is there, each
// token once, as a single field line.
func mergeVary(hdr http.Header, tokens []string) {
	have := hdr["Vary"]
	if len(have) == 0 {
		if len(tokens) == 1 {
			hdr["Vary"] = varyOrigin
		} else {
			hdr["Vary"] = varyPreflight
		}
		return
	}
	if httpguts.HeaderValuesContainsToken(have, "*") {
		return
	}
	var b strings.Builder
	for _, t := range tokens {
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

// isWebSocketUpgrade reports whether r asks to become a WebSocket: an
// HTTP/1.1 Upgrade, or an extended CONNECT over HTTP/2 (:protocol
// pseudo-header) or HTTP/3 (which quic-go puts in r.Proto).
func isWebSocketUpgrade(r *http.Request) bool {
	if r.Method == http.MethodConnect {
		return r.ProtoMajor == 2 && r.Header.Get(":protocol") == "websocket" ||
			r.ProtoMajor == 3 && r.Proto == "websocket"
	}
	return httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "websocket") &&
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}
