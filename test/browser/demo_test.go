package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

type demoCard struct {
	State    string `json:"state"`
	Category string `json:"category"`
	Shown    string `json:"shown"`
	Message  string `json:"message"`
	Action   string `json:"action"`
}

type demoRun struct {
	Error string `json:"error"`
	Step  string `json:"step"`
	Steps struct {
		Anonymous struct {
			Main, Admin   demoCard
			DashboardLink bool `json:"dashboardLink"`
		} `json:"anonymous"`
		User struct {
			Main, Admin   demoCard
			DashboardLink bool `json:"dashboardLink"`
		} `json:"user"`
		Admin struct {
			Main, Admin   demoCard
			DashboardLink string `json:"dashboardLink"`
			Stats         string `json:"stats"`
		} `json:"admin"`
		RateLimited struct {
			Main     demoCard `json:"main"`
			After    demoCard `json:"after"`
			WaitedMS float64  `json:"waitedMs"`
			Echo     string   `json:"echo"`
		} `json:"rateLimited"`
		Kicked struct {
			Main demoCard `json:"main"`
		} `json:"kicked"`
		Dashboard struct {
			Status int `json:"status"`
		} `json:"dashboard"`
		OtherOrigin struct {
			Main   demoCard `json:"main"`
			Origin string   `json:"origin"`
		} `json:"otherOrigin"`
	} `json:"steps"`
	Screenshots []struct {
		Path     string `json:"path"`
		Width    int    `json:"width"`
		Overflow int    `json:"overflow"`
	} `json:"screenshots"`
	Console []string `json:"console"`
}

// A newcomer's walk through `make demo`'s stack (examples/Caddyfile in
// front of two examples/flask_app workers sharing Redis) in Chromium: the
// demo page's "/" card connects and its "/admin" card says why it may
// not (not_logged_in, then role_missing as a plain user) until an admin
// logs in; the flood button trips the Caddyfile's message rate limit and
// the card waits as long as the edge said before it connects again; the
// app can close the connection; the admin opens the edge's dashboard; the
// page the demo serves on another origin shows cors_error naming that
// origin and the fix.
//
// Screenshots at 1280 and 390 px wide go to $DEMO_SCREENSHOTS, or to
// test-artifacts/screenshots/ at the repository root (ignored by git).
func TestDemoWalkThrough(t *testing.T) {
	testenv.RequireBrowser(t)
	redis := testenv.StartRedis(t)
	const secret = "demo-walk-through-secret"
	httpsPort, otherPort, httpPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	base := fmt.Sprintf("https://localhost:%d", httpsPort)
	other := fmt.Sprintf("https://localhost:%d", otherPort)
	var workers []*testenv.FlaskWorker
	for _, name := range []string{"worker-a", "worker-b"} {
		workers = append(workers, testenv.StartFlaskWorker(t, testenv.FlaskOptions{
			Name: name, SecretKey: secret, RedisURL: "redis://" + redis,
			Env: map[string]string{"OTHER_ORIGIN": other},
		}))
	}
	edge := testenv.StartEdgeFile(t, "examples/Caddyfile", map[string]string{
		"EDGE_HTTP_PORT":   fmt.Sprint(httpPort),
		"EDGE_HTTPS_PORT":  fmt.Sprint(httpsPort),
		"EDGE_OTHER_PORT":  fmt.Sprint(otherPort),
		"WORKER1":          workers[0].Addr,
		"WORKER2":          workers[1].Addr,
		"FLASK_SECRET_KEY": secret,
	}, fmt.Sprintf("127.0.0.1:%d", httpsPort), fmt.Sprintf("127.0.0.1:%d", otherPort))

	dir := os.Getenv("DEMO_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(t), "test-artifacts", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var run demoRun
	testenv.RunNodeScript(t, "test/browser/demo.mjs", map[string]any{
		"chromium": testenv.Chromium, "base": base, "other": other, "screenshots": dir,
	}, 3*time.Minute, &run)
	if run.Error != "" {
		t.Fatalf("at step %q: %s\nsteps so far: %+v\npage console:\n%s\nedge log:\n%s",
			run.Step, run.Error, run.Steps, strings.Join(run.Console, "\n"), edge.Output())
	}
	s := run.Steps

	if a := s.Anonymous; a.Main.State != "connected" || a.Admin.Category != "not_logged_in" ||
		!strings.Contains(a.Admin.Message, "The /admin namespace is for logged-in users") || a.DashboardLink {
		t.Errorf("anonymous: %+v", a)
	}
	if u := s.User; u.Admin.State != "auth_required" || u.Admin.Category != "role_missing" ||
		!strings.Contains(u.Admin.Message, "requires the role admin") || !strings.Contains(u.Admin.Action, "Log in as a user with the role admin") ||
		u.Main.State != "connected" || u.DashboardLink {
		t.Errorf("plain user: %+v", u)
	}
	if a := s.Admin; a.Admin.State != "connected" || a.Main.State != "connected" || a.DashboardLink != "/_edge/dashboard/" ||
		!strings.Contains(a.Stats, `"connected"`) {
		t.Errorf("admin: %+v", a)
	}

	r := s.RateLimited
	m := regexp.MustCompile(`asks to wait (\d+) s`).FindStringSubmatch(r.Main.Message)
	if r.Main.State != "suspended" || m == nil || !strings.Contains(r.Main.Message, "sent messages faster than the edge allows") {
		t.Errorf("after the flood: %+v; want suspended, rate_limited, saying how long the edge asked to wait", r.Main)
	} else {
		// examples/Caddyfile: rate_limit messages 30/10s.
		wait, _ := strconv.Atoi(m[1])
		if wait != 10 {
			t.Errorf("the edge asked to wait %d s; want the window of examples/Caddyfile's limit, 10 s", wait)
		}
		// Both observed by polling every 50 ms.
		if r.WaitedMS < float64(wait)*1000-100 {
			t.Errorf("connected again %.0f ms after it was told to wait %d s", r.WaitedMS, wait)
		}
		t.Logf("rate_limited: told to wait %d s, connected again after %.0f ms", wait, r.WaitedMS)
	}
	if r.After.State != "connected" || !strings.Contains(r.Echo, "answered by worker-") {
		t.Errorf("after the wait: %+v, echo %q", r.After, r.Echo)
	}
	if k := s.Kicked.Main; k.State != "disconnected" || k.Category != "closed_by_server" {
		t.Errorf("kicked: %+v", k)
	}
	if s.Dashboard.Status != 200 {
		t.Errorf("the admin's dashboard: %d", s.Dashboard.Status)
	}

	o := s.OtherOrigin
	if o.Origin != other || o.Main.State != "cors_error" || !strings.Contains(o.Main.Message, other) ||
		!strings.Contains(o.Main.Action, "Add "+other) {
		t.Errorf("the page on %s: %+v; want cors_error naming its origin and saying to add it", other, o)
	}

	if len(run.Screenshots) == 0 {
		t.Error("no screenshots")
	}
	for _, sh := range run.Screenshots {
		if fi, err := os.Stat(sh.Path); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s: %v", sh.Path, err)
		}
		if sh.Overflow > 0 {
			t.Errorf("%s: %d px wider than the %d px viewport", sh.Path, sh.Overflow, sh.Width)
		}
	}
	t.Logf("screenshots in %s", dir)
}
