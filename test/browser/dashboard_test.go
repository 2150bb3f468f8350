package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

type dashboardView struct {
	State    string `json:"state"`
	Proxy    string `json:"proxy"`
	Status   string `json:"status"`
	Sessions struct {
		Total     int `json:"total"`
		WebSocket int `json:"websocket"`
		Polling   int `json:"polling"`
	} `json:"sessions"`
	WorkersHealthy string  `json:"workersHealthy"`
	MessagesRate   float64 `json:"messagesRate"`
	Upstreams      []struct {
		Address   string `json:"address"`
		Health    string `json:"health"`
		Sessions  int    `json:"sessions"`
		WebSocket int    `json:"websocket"`
		Polling   int    `json:"polling"`
	} `json:"upstreams"`
	Refusals map[string]int `json:"refusals"`
	Events   []struct {
		Event     string `json:"event"`
		Reason    string `json:"reason"`
		User      string `json:"user"`
		Namespace string `json:"namespace"`
		Module    string `json:"module"`
	} `json:"events"`
	Recovery recoveryView `json:"recovery"`
}

// recoveryView is the Recovery panel as the page shows it.
type recoveryView struct {
	State     string            `json:"state"` // data-recovery: on or off
	Pill      string            `json:"pill"`
	Shown     bool              `json:"shown"`
	OffShown  bool              `json:"offShown"`
	OffText   string            `json:"offText"`
	Figures   map[string]string `json:"figures"` // the visible figures by name
	Fits      bool              `json:"fits"`
	PageWidth int               `json:"pageWidth"`
	Viewport  int               `json:"viewport"`
}

type dashboardRun struct {
	Error       string        `json:"error"`
	Step        string        `json:"step"`
	AdminStatus int           `json:"adminStatus"`
	Before      dashboardView `json:"before"`
	Open        dashboardView `json:"open"`
	Refused     struct {
		OK      bool           `json:"ok"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"refused"`
	AfterRefusal dashboardView `json:"afterRefusal"`
	RecoveryOn   recoveryView  `json:"recoveryOn"`
	Closed       dashboardView `json:"closed"`
	User         struct {
		Status int    `json:"status"`
		Text   string `json:"text"`
	} `json:"user"`
	AfterUser dashboardView `json:"afterUser"`
	Anonymous struct {
		Status int    `json:"status"`
		Text   string `json:"text"`
	} `json:"anonymous"`
	AnonymousData int `json:"anonymousData"`
}

// An admin, logged in through the real app and verified by flask_session,
// watches the socketio_dashboard in Chromium while sessions open on two
// real workers, carry messages, get a namespace refused and close: the
// page follows each step live, over Server-Sent Events. The dashboard has
// no access control of its own: it sits behind flask_session's `require
// role admin`, so a plain user gets flask_session's 401 (which the admin
// sees as a role_denied event) and so does an anonymous visitor.
//
// The screenshot of the admin's page after the refusal is written to
// $DASHBOARD_SCREENSHOT, or to test-artifacts/dashboard.png; it is a
// test artifact to look at, never committed.
func TestDashboardFollowsSessionsAndRefusalsLive(t *testing.T) {
	testenv.RequireBrowser(t)
	key := "dashboard-test-secret-key-0123456789"
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"w1", "w2"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: name, SecretKey: key}))
	}
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	flask_session {
		secret_key %[2]s
	}
	route /_edge/dashboard/* {
		flask_session {
			secret_key %[2]s
			require role admin
		}
		socketio_dashboard
	}
	socketio_proxy {
		to %[3]s %[4]s
		namespace /admin role admin
	}
	reverse_proxy %[3]s %[4]s
}
`, edgeAddr, key, workers[0].Addr, workers[1].Addr)), edgeAddr)

	screenshot := os.Getenv("DASHBOARD_SCREENSHOT")
	if screenshot == "" {
		// A test artifact that outlives the run (CI keeps the tree):
		// test-artifacts/ at the repository root, ignored by git.
		dir := filepath.Join(testenv.RepoRoot(t), "test-artifacts")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		screenshot = filepath.Join(dir, "dashboard.png")
	}
	run := runDashboardDriver(t, map[string]any{
		"chromium":   testenv.Chromium,
		"edge":       "http://" + edgeAddr,
		"dashboard":  "/_edge/dashboard/",
		"screenshot": screenshot,
	})
	if run.Error != "" {
		t.Fatalf("at step %q: %s\nedge log:\n%s", run.Step, run.Error, edge.Output())
	}
	if fi, err := os.Stat(screenshot); err != nil || fi.Size() == 0 {
		t.Errorf("no screenshot at %s: %v", screenshot, err)
	} else {
		t.Logf("screenshot of the admin's dashboard: %s", screenshot)
	}

	if run.AdminStatus != 200 || run.Before.State != "live" {
		t.Errorf("admin: status %d, page state %q; want 200 and live", run.AdminStatus, run.Before.State)
	}
	if run.Before.Proxy != "/socket.io/" {
		t.Errorf("the page names the proxy %q, want /socket.io/", run.Before.Proxy)
	}
	if run.Before.WorkersHealthy != "2 / 2" {
		t.Errorf("workers healthy shown as %q, want 2 / 2", run.Before.WorkersHealthy)
	}

	t.Run("sessions by worker and transport", func(t *testing.T) {
		open, before := run.Open.Sessions, run.Before.Sessions
		if open.Total != before.Total+3 || open.WebSocket != before.WebSocket+2 || open.Polling != before.Polling+1 {
			t.Errorf("sessions shown %+v, before %+v; want 3 more: 2 WebSocket and 1 polling", open, before)
		}
		if len(run.Open.Upstreams) != 2 {
			t.Fatalf("workers shown: %+v; want both", run.Open.Upstreams)
		}
		sum := 0
		for _, u := range run.Open.Upstreams {
			if (u.Address != workers[0].Addr && u.Address != workers[1].Addr) || u.Health != "healthy" || u.Sessions != u.WebSocket+u.Polling {
				t.Errorf("worker row %+v; want one of the workers, healthy, sessions = WebSocket + polling", u)
			}
			if u.Sessions == 0 {
				t.Errorf("worker %s shown with no session; least_sessions spreads 3 over 2", u.Address)
			}
			sum += u.Sessions
		}
		if sum != open.Total {
			t.Errorf("workers' sessions add up to %d, total shows %d", sum, open.Total)
		}
		if run.Open.MessagesRate <= 0 {
			t.Errorf("messages/s shown as %v while clients sent echoes", run.Open.MessagesRate)
		}
		if run.Closed.Sessions.Total != before.Total {
			t.Errorf("after the clients left the page shows %d sessions, want %d", run.Closed.Sessions.Total, before.Total)
		}
	})

	t.Run("a refusal appears with its reason", func(t *testing.T) {
		if run.Refused.OK || run.Refused.Message != "Log in to use the /admin namespace." {
			t.Errorf("anonymous CONNECT to /admin: %+v; want connect_error asking to log in", run.Refused)
		}
		if got := run.AfterRefusal.Refusals["namespace"]; got <= run.Before.Refusals["namespace"] {
			t.Errorf("namespace refusals shown %d, before %d", got, run.Before.Refusals["namespace"])
		}
		found := false
		for _, e := range run.AfterRefusal.Events {
			found = found || e.Event == "namespace_denied" && e.Namespace == "/admin" && e.Reason == "not logged in"
		}
		if !found {
			t.Errorf("no namespace_denied event for /admin on the page: %+v", run.AfterRefusal.Events)
		}
		if !strings.Contains(edge.Output(), `"event":"namespace_denied","reason":"not logged in"`) {
			t.Errorf("the edge did not log the event the page shows")
		}
	})

	t.Run("the recovery panel says off, and shows the figures when the data have recovery on, at 390 px", func(t *testing.T) {
		off := run.Before.Recovery
		if off.State != "off" || off.Pill != "off" || !off.Shown || !off.OffShown || len(off.Figures) != 0 {
			t.Errorf("recovery panel of an edge without recovery: %+v; want it shown saying off, no figures", off)
		}
		if !strings.Contains(off.OffText, "Connection state recovery is off") {
			t.Errorf("off text %q", off.OffText)
		}
		on := run.RecoveryOn
		want := map[string]string{"window": "2 min", "held": "3", "recovered": "1,234", "expired": "5",
			"overflowed": "2", "refused": "7", "replayed": "98,765"}
		if on.State != "on" || on.Pill != "on" || on.OffShown || fmt.Sprint(on.Figures) != fmt.Sprint(want) {
			t.Errorf("recovery panel of the sample: %+v; want on with figures %v", on, want)
		}
		if on.Viewport != 390 || !on.Fits || on.PageWidth > 390 {
			t.Errorf("at %d px the panel fits: %v, page %d px wide; want it within 390 px", on.Viewport, on.Fits, on.PageWidth)
		}
	})

	t.Run("a plain user gets flask_session's refusal and the admin sees it", func(t *testing.T) {
		if run.User.Status != 401 || strings.Contains(run.User.Text, "flaskedge") {
			t.Errorf("plain user: %d %q; want flask_session's 401, nothing of the dashboard", run.User.Status, run.User.Text)
		}
		found := false
		for _, e := range run.AfterUser.Events {
			found = found || e.Event == "role_denied" && e.User == "bob" && e.Module == "flask_session" && e.Reason == "require role admin not met"
		}
		if !found {
			t.Errorf("the admin's page shows no role_denied event for bob: %+v", run.AfterUser.Events)
		}
		if got := run.AfterUser.Refusals["role"]; got <= run.Before.Refusals["role"] {
			t.Errorf("role refusals shown %d, before %d", got, run.Before.Refusals["role"])
		}
	})

	t.Run("an anonymous visitor gets 401", func(t *testing.T) {
		if run.Anonymous.Status != 401 || strings.Contains(run.Anonymous.Text, "flaskedge") {
			t.Errorf("anonymous: %d %q; want flask_session's 401, nothing of the dashboard", run.Anonymous.Status, run.Anonymous.Text)
		}
		if run.AnonymousData != 401 {
			t.Errorf("anonymous data.json: %d; want 401", run.AnonymousData)
		}
	})
	if strings.Contains(edge.Output(), "without a verified user") {
		t.Errorf("the dashboard warned that it is public although flask_session guards it")
	}
	if t.Failed() {
		t.Logf("driver saw: %+v", run)
	}
}

func runDashboardDriver(t *testing.T, cfg map[string]any) dashboardRun {
	t.Helper()
	var run dashboardRun
	testenv.RunNodeScript(t, "test/browser/dashboard.mjs", cfg, 3*time.Minute, &run)
	return run
}
