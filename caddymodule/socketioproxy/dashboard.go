package socketioproxy

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flaskedge/flaskedge/internal/identity"
	"github.com/flaskedge/flaskedge/internal/security"
)

// Dashboard is a live page for operators: the edge's sessions by worker
// and transport, the workers' health, message and byte counts (the page
// shows their rates), refusals by reason and the recent security events.
// It shows the whole edge process, every socketio_proxy and every module
// that logs security events, and is served under Path:
//
//	<path>/            the page (HTML, CSS and JS embedded in the binary)
//	<path>/data.json   the figures as JSON
//	<path>/events      the same figures every second, as Server-Sent Events
//
// Only a user whose verified role is one of Roles may see it: the identity
// is the one flask_session put in {http.auth.user.id} and
// {http.auth.user.role}, so flask_session must run before socketio_proxy.
// Anonymous requests get 401 and a page asking to log in; a user without
// the role gets 403 and a role_denied security event.
type Dashboard struct {
	// Path is where the dashboard is served, e.g. "/_edge/dashboard". It
	// must not overlap the Engine.IO path. Required.
	Path string `json:"path"`

	// Roles that may see the dashboard; any one of them suffices.
	// Default: ["admin"].
	Roles []string `json:"roles,omitempty"`

	// done ends the config's event streams when it is cleaned up, so a
	// browser reconnects to the config that replaced it.
	done   context.Context
	cancel context.CancelFunc
}

// DefaultDashboardRole is the role that may see the dashboard when none
// is configured.
const DefaultDashboardRole = "admin"

// How often the event stream sends the figures, and how long one stream
// lasts: the browser then reconnects on its own, and its session and role
// are checked again.
var (
	dashboardInterval  = time.Second
	dashboardStreamFor = 5 * time.Minute
)

//go:embed dashboard
var dashboardFiles embed.FS

// dashboardAssets are the page's files, served as they are.
var dashboardAssets = func() map[string]asset {
	out := map[string]asset{}
	for name, typ := range map[string]string{
		"index.html":    "text/html; charset=utf-8",
		"dashboard.css": "text/css; charset=utf-8",
		"dashboard.js":  "text/javascript; charset=utf-8",
	} {
		body, err := dashboardFiles.ReadFile("dashboard/" + name)
		if err != nil {
			panic(err)
		}
		out[name] = asset{typ, body}
	}
	return out
}()

type asset struct {
	contentType string
	body        []byte
}

// dashboardRefusal is the page of a visitor who may not see the dashboard.
var dashboardRefusal = template.Must(template.New("refusal").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · flaskedge dashboard</title>
<link rel="stylesheet" href="{{.Path}}/dashboard.css">
</head>
<body class="refusal">
<main>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
<p><a href="/">Go to the application</a></p>
</main>
</body>
</html>
`))

func (d *Dashboard) provision() {
	if d == nil {
		return
	}
	d.Path = strings.TrimSuffix(d.Path, "/")
	if len(d.Roles) == 0 {
		d.Roles = []string{DefaultDashboardRole}
	}
	d.done, d.cancel = context.WithCancel(context.Background())
}

func (d *Dashboard) validate(engineIOPath string) error {
	switch {
	case d == nil:
		return nil
	case d.Path == "":
		return fmt.Errorf("socketio_proxy: the dashboard needs a path other than /, e.g. /_edge/dashboard")
	case !strings.HasPrefix(d.Path, "/") || strings.ContainsAny(d.Path, "?#"):
		return fmt.Errorf("socketio_proxy: dashboard path %q must be a path such as /_edge/dashboard", d.Path)
	case strings.HasPrefix(d.Path+"/", engineIOPath) || strings.HasPrefix(engineIOPath, d.Path+"/"):
		return fmt.Errorf("socketio_proxy: dashboard path %q overlaps the Engine.IO path %q; use e.g. /_edge/dashboard", d.Path, engineIOPath)
	case slices.Contains(d.Roles, ""):
		return fmt.Errorf("socketio_proxy: dashboard roles must not be empty")
	}
	return nil
}

func (d *Dashboard) cleanup() {
	if d != nil && d.cancel != nil {
		d.cancel()
	}
}

// serves reports whether the request is for the dashboard.
func (d *Dashboard) serves(r *http.Request) bool {
	return d != nil && (r.URL.Path == d.Path || strings.HasPrefix(r.URL.Path, d.Path) && r.URL.Path[len(d.Path)] == '/')
}

// serveDashboard answers a request under the dashboard's path.
func (h *Handler) serveDashboard(w http.ResponseWriter, r *http.Request) {
	d := h.Dashboard
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	sub := r.URL.Path[len(d.Path):]
	switch sub {
	case "":
		target := d.Path + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	case "/dashboard.css", "/dashboard.js":
		// The page's code holds no data; the refusal pages use the CSS.
		hdr.Set("Cache-Control", "no-cache")
		writeAsset(w, r, dashboardAssets[sub[1:]])
		return
	}
	if !h.dashboardAdmits(w, r, sub == "/") {
		return
	}
	hdr.Set("Cache-Control", "no-store")
	switch sub {
	case "/":
		writeAsset(w, r, dashboardAssets["index.html"])
	case "/data.json":
		body, _ := json.Marshal(h.dashboardData())
		hdr.Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	case "/events":
		h.streamDashboard(w, r)
	default:
		http.Error(w, "404 Not Found", http.StatusNotFound)
	}
}

func writeAsset(w http.ResponseWriter, r *http.Request, a asset) {
	w.Header().Set("Content-Type", a.contentType)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(a.body)
}

// Who may see the dashboard, as admit decides.
const (
	dashboardAllowed = iota
	dashboardLogIn   // anonymous: 401
	dashboardNoRole  // verified user without one of the roles: 403
)

func (d *Dashboard) admit(id identity.Identity) int {
	switch {
	case id.Anonymous():
		return dashboardLogIn
	case id.HasRole(d.Roles):
		return dashboardAllowed
	}
	return dashboardNoRole
}

// dashboardAdmits checks the request's verified identity and answers a
// refused one: with a page for the page, with JSON for the data.
func (h *Handler) dashboardAdmits(w http.ResponseWriter, r *http.Request, page bool) bool {
	d := h.Dashboard
	id := identity.Of(r)
	var status int
	var title, msg string
	roles := strings.Join(d.Roles, " or ")
	switch d.admit(id) {
	case dashboardAllowed:
		return true
	case dashboardLogIn:
		security.Refused(security.ReasonAuth)
		status, title = http.StatusUnauthorized, "Log in to see the dashboard"
		msg = "This dashboard is for users with the role " + roles + ". You are not logged in: log in to the application, then reload this page."
	default:
		status, title = http.StatusForbidden, "This dashboard needs the role "+roles
		msg = "You are logged in as " + id.UserID + ", without the role " + roles + ". Log in as a user who has it."
		security.Refused(security.ReasonRole)
		security.Log(h.security, "socketio_proxy", security.RoleDenied, "dashboard requires the role "+roles, r,
			security.Fields{UserID: id.UserID})
	}
	w.Header().Set("Cache-Control", "no-store")
	if !page {
		body, _ := json.Marshal(map[string]string{"error": title, "message": msg})
		writeJSON(w, status, string(body))
		return false
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = dashboardRefusal.Execute(w, map[string]string{"Title": title, "Message": msg, "Path": d.Path})
	return false
}

// streamDashboard sends the figures every dashboardInterval as
// Server-Sent Events, until the client leaves, the config is replaced,
// the process exits or dashboardStreamFor has passed.
func (h *Handler) streamDashboard(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	tick := time.NewTicker(dashboardInterval)
	defer tick.Stop()
	end := time.NewTimer(dashboardStreamFor)
	defer end.Stop()
	buf := []byte("retry: 2000\n\n")
	for {
		body, _ := json.Marshal(h.dashboardData())
		buf = append(append(append(buf, "data: "...), body...), "\n\n"...)
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(buf); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		buf = buf[:0]
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		case <-h.Dashboard.done.Done():
			return
		case <-h.registry.draining.Done():
			return
		case <-end.C:
			return
		}
	}
}

// DashboardData is the JSON of the dashboard's data endpoint and of each
// event of its stream. Counters are totals since the process started;
// the page derives rates from successive samples.
type DashboardData struct {
	Time      time.Time           `json:"time"`
	Sessions  TransportCounts     `json:"sessions"`
	Upstreams []DashboardUpstream `json:"upstreams"`
	// Messages and Bytes relayed, by direction: client_to_upstream and
	// upstream_to_client.
	Messages map[string]TransportCounts `json:"messages"`
	Bytes    map[string]TransportCounts `json:"bytes"`
	// Refusals by reason, as caddy_socketio_refusals_total counts them.
	Refusals map[string]uint64 `json:"refusals"`
	// Namespaces are this socketio_proxy's namespace rules.
	Namespaces map[string]*NamespaceRule `json:"namespaces,omitempty"`
	// LiveNamespaces are the live sessions connected to each namespace.
	LiveNamespaces []NamespaceStatus `json:"live_namespaces"`
	// Events are the recent security events of every module, newest
	// first.
	Events []security.Record `json:"events"`
}

// TransportCounts is a count split by Engine.IO transport.
type TransportCounts struct {
	Total     uint64 `json:"total"`
	Polling   uint64 `json:"polling"`
	WebSocket uint64 `json:"websocket"`
}

func (tc *TransportCounts) add(transport string, n uint64) {
	tc.Total += n
	switch transport {
	case "polling":
		tc.Polling += n
	case "websocket":
		tc.WebSocket += n
	}
}

// DashboardUpstream is a worker as the dashboard shows it: its state and
// live sessions, as the admin API gives them, and the sessions opened on
// it.
type DashboardUpstream struct {
	UpstreamStatus
	Handshakes TransportCounts `json:"handshakes"`
}

func (h *Handler) dashboardData() DashboardData {
	data := DashboardData{
		Time:           clock().UTC(),
		Messages:       map[string]TransportCounts{},
		Bytes:          map[string]TransportCounts{},
		Namespaces:     h.Namespaces,
		LiveNamespaces: namespaceSnapshot(),
		Events:         security.Recent(),
	}
	handshakes := map[string]*TransportCounts{}
	eachCounter(metrics.handshakes, func(l map[string]string, n uint64) {
		if handshakes[l["upstream"]] == nil {
			handshakes[l["upstream"]] = new(TransportCounts)
		}
		handshakes[l["upstream"]].add(l["transport"], n)
	})
	for _, st := range snapshot() {
		u := DashboardUpstream{UpstreamStatus: st}
		if hs := handshakes[st.Address]; hs != nil {
			u.Handshakes = *hs
		}
		data.Upstreams = append(data.Upstreams, u)
		data.Sessions.add("polling", uint64(st.Polling))
		data.Sessions.add("websocket", uint64(st.WebSocket))
	}
	for vec, into := range map[*prometheus.CounterVec]map[string]TransportCounts{metrics.messages: data.Messages, metrics.bytes: data.Bytes} {
		eachCounter(vec, func(l map[string]string, n uint64) {
			tc := into[l["direction"]]
			tc.add(l["transport"], n)
			into[l["direction"]] = tc
		})
	}
	data.Refusals = security.RefusalCounts()
	return data
}

// eachCounter reads every series of a counter vector.
func eachCounter(c prometheus.Collector, fn func(labels map[string]string, n uint64)) {
	ch := make(chan prometheus.Metric, 8)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) != nil || pb.Counter == nil {
			continue
		}
		labels := make(map[string]string, len(pb.Label))
		for _, l := range pb.Label {
			labels[l.GetName()] = l.GetValue()
		}
		fn(labels, uint64(pb.Counter.GetValue()))
	}
}

// unmarshalDashboard reads `dashboard <path> [role <role...>]`.
func (h *Handler) unmarshalDashboard(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) == 0 || !strings.HasPrefix(args[0], "/") {
		return d.Errf("dashboard needs a path, e.g. `dashboard /_edge/dashboard` or `dashboard /_edge/dashboard role admin ops`")
	}
	db := &Dashboard{Path: args[0]}
	switch {
	case len(args) == 1:
	case args[1] != "role":
		return d.Errf("dashboard %s: unexpected %q; write `dashboard %s role <role...>`", args[0], args[1], args[0])
	case len(args) == 2:
		return d.Errf("dashboard %s role: name the roles that may see it, e.g. `dashboard %s role admin`", args[0], args[0])
	default:
		db.Roles = args[2:]
	}
	h.Dashboard = db
	return nil
}
