package edgecors

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A browser tells a script nothing about why a cross-origin request
// failed: a refused origin, a dead edge and a missing credentials flag
// all look like a network error. The client path is therefore public
// (any origin may load the browser client there), and with diagnostics
// on, <client_path>diagnose says, to any origin and without credentials,
// whether an origin is allowed and what to change when it is not.

// publicOrigin is the Access-Control-Allow-Origin of the client path.
var publicOrigin = []string{"*"}

// servePublic serves a GET or HEAD under the client path: the diagnosis
// itself, or whatever the next handler (socketio_client)
// answers, as a resource any page may read without credentials.
func (h *Handler) servePublic(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.diagnose != nil && r.URL.Path == h.clientPath+"diagnose" {
		h.diagnose.serve(w, r)
		return nil
	}
	wroteHeader, err := serveWithCORS(w, r, next, corsWriter{h: h, public: true})
	if err != nil && !wroteHeader {
		setPublicHeaders(w.Header())
	}
	return err
}

// setPublicHeaders makes hdr say "any page may read this, without
// credentials", removing whatever Access-Control-* a later handler set.
func setPublicHeaders(hdr http.Header) {
	for k := range hdr {
		if len(k) >= len("Access-Control-") && strings.EqualFold(k[:len("Access-Control-")], "Access-Control-") {
			delete(hdr, k)
		}
	}
	hdr["Access-Control-Allow-Origin"] = publicOrigin
}

// diagnostics answers the diagnosis requests of one configuration. It
// is built at Provision and only read afterwards.
type diagnostics struct {
	h       *Handler
	sources []diagnosisSource
	envVars []string // the variables origins_from_env reads
	// by source, to say which one allows an origin
	explicit, fromEnv originSet
}

// diagnosis is the JSON answer. Field names are the client module's
// contract: keep them.
type diagnosis struct {
	Origin      string `json:"origin"`
	Allowed     bool   `json:"allowed"`
	AllowedBy   string `json:"allowed_by,omitempty"`
	Reason      string `json:"reason"`
	Fix         string `json:"fix,omitempty"`
	Environment string `json:"environment"`
	// Credentials tells a page that sends cookies (withCredentials)
	// whether the edge lets it: without, the browser refuses the answer
	// even from an allowed origin.
	Credentials          bool              `json:"credentials"`
	WebSocketOriginGuard bool              `json:"websocket_origin_guard"`
	Sources              []diagnosisSource `json:"sources"`
}

// diagnosisSource is one place allowed origins come from.
type diagnosisSource struct {
	Source  string   `json:"source"`
	Where   string   `json:"where"`
	Vars    []string `json:"vars,omitempty"`
	Origins []string `json:"origins,omitempty"`
}

func newDiagnostics(h *Handler, patterns, derived []originPattern) *diagnostics {
	d := &diagnostics{h: h}
	var explicit []originPattern
	for _, p := range patterns {
		if !slices.Contains(derived, p) {
			explicit = append(explicit, p)
		}
	}
	d.explicit, d.fromEnv = newOriginSet(explicit), newOriginSet(derived)
	if len(h.Origins) > 0 {
		d.sources = append(d.sources, diagnosisSource{
			Source: "origins", Where: "edge_cors origins in the Caddyfile", Origins: stringsOf(explicit),
		})
	}
	if o := h.OriginsFromEnv; o != nil {
		hostVar, portVar := o.HostVar, o.PortVar
		if hostVar == "" {
			hostVar = defaultHostVar
		}
		if portVar == "" {
			portVar = defaultPortVar
		}
		d.envVars = []string{hostVar, portVar}
		if o.PublicURLVar != "" {
			d.envVars = append(d.envVars, o.PublicURLVar)
		}
		d.sources = append(d.sources, diagnosisSource{
			Source: "origins_from_env", Where: "the Flask app's environment, read by the edge when its config loads",
			Vars: d.envVars, Origins: stringsOf(derived),
		})
	}
	if h.AnyLoopbackPort {
		d.sources = append(d.sources, diagnosisSource{
			Source: "any_loopback_port", Where: "edge_cors any_loopback_port (development profile)",
			Origins: []string{"http://localhost:*", "https://localhost:*", "http://127.0.0.1:*", "https://127.0.0.1:*", "http://[::1]:*", "https://[::1]:*"},
		})
	}
	return d
}

func stringsOf(patterns []originPattern) []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = p.String()
	}
	return out
}

// serve answers for the origin query parameter, else the request's
// Origin. It reads no cookie and answers every origin alike.
func (d *diagnostics) serve(w http.ResponseWriter, r *http.Request) {
	origin := r.URL.Query().Get("origin")
	if origin == "" {
		origin = r.Header.Get("Origin")
	}
	res := d.diagnose(r, origin)
	body, _ := json.Marshal(res)
	hdr := w.Header()
	setPublicHeaders(hdr)
	mergeVary(hdr, varyOrigin)
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (d *diagnostics) diagnose(r *http.Request, origin string) diagnosis {
	h := d.h
	res := diagnosis{
		Origin:               origin,
		Environment:          h.Environment,
		Credentials:          h.Credentials,
		WebSocketOriginGuard: h.guardEnabled,
		Sources:              d.sources,
	}
	if res.Environment == "" {
		res.Environment = "unset"
	}
	if res.Sources == nil {
		res.Sources = []diagnosisSource{}
	}
	switch {
	case origin == "":
		res.Reason = "The request carries no Origin. Browsers send one on cross-origin requests; to ask about a page, add ?origin=<the page's origin>."
		return res
	case strings.EqualFold(origin, "null"):
		res.Reason = `Origin "null" (a sandboxed iframe, a file: page, a cross-origin redirect) is never allowed.`
		res.Fix = "Serve the page over http(s) from an origin listed in edge_cors."
		return res
	case isSameOrigin(r, origin):
		res.Allowed, res.AllowedBy = true, "same_origin"
		res.Reason = origin + " is the edge's own origin: its requests are not cross-origin, and are never refused."
		return res
	}
	p, err := parseOriginPattern(origin)
	if err == nil && p.kind != exactOrigin {
		res.Reason = origin + " is a pattern, not the origin of a page; ask about one page's origin, as in https://app.example.com."
		return res
	}
	if err != nil {
		res.Reason = origin + " is not an origin: " + err.Error() + "."
		return res
	}
	canonical := p.String()
	res.Origin = canonical
	if _, ok := h.origins.allow(canonical); ok {
		res.Allowed = true
		_, explicit := d.explicit.allow(canonical)
		_, fromEnv := d.fromEnv.allow(canonical)
		switch {
		case explicit:
			res.AllowedBy = "origins"
		case fromEnv:
			res.AllowedBy = "origins_from_env"
		default:
			res.AllowedBy = "any_loopback_port"
		}
		res.Reason = canonical + " is allowed by " + res.AllowedBy + "."
		return res
	}

	res.Reason = canonical + " is not allowed: it is not among the origins edge_cors allows (" + h.source + ")."
	add := "Add " + canonical + " to edge_cors in the Caddyfile (edge_cors " + canonical + " ..., or origins " + canonical + " in its block) and reload Caddy"
	switch {
	case h.Environment == production && p.scheme == "http":
		res.Reason = canonical + " is not allowed: environment production refuses http:// origins."
		res.Fix = "Serve the page over https and allow " + strings.Replace(canonical, "http://", "https://", 1) + "."
		return res
	case h.Environment == production && isLoopbackHost(p.host):
		res.Reason = canonical + " is not allowed: environment production refuses loopback origins."
		res.Fix = "Open the page from the site's public https origin."
		return res
	case isLoopbackHost(p.host) && h.Environment == development && !h.AnyLoopbackPort:
		res.Fix = add + "; or, for a dev server whose port moves, add any_loopback_port."
	case h.OriginsFromEnv != nil:
		res.Fix = add + "; or set the variables origins_from_env reads (" + strings.Join(d.envVars, ", ") + ") so that it is derived."
	default:
		res.Fix = add + "."
	}
	if near := d.sameHost(p); near != "" {
		res.Reason += " " + near + " is allowed: the scheme and port are part of the origin."
	}
	return res
}

// sameHost returns an allowed origin on p's host with another scheme or
// port, the commonest near miss (localhost:5000 listed, the page on
// localhost:5173).
func (d *diagnostics) sameHost(p originPattern) string {
	for _, q := range d.h.patterns {
		if q.kind == exactOrigin && q.host == p.host {
			return q.String()
		}
	}
	return ""
}
