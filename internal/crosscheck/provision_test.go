package crosscheck_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	_ "github.com/flaskedge/flaskedge/caddymodule/edgecors"
	"github.com/flaskedge/flaskedge/internal/crosscheck"
)

func init() { caddy.RegisterModule(probe{}) }

// probe stands for a handler after edge_cors: at Provision it checks
// its paths as socketio_proxy and the client do.
type probe struct {
	Path       string `json:"path,omitempty"`
	ClientPath string `json:"client_path,omitempty"`
}

var probed struct {
	sync.Mutex
	unguarded []bool
}

func (probe) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.crosscheck_probe", New: func() caddy.Module { return new(probe) }}
}

func (p *probe) Provision(ctx caddy.Context) error {
	unguarded, err := crosscheck.CheckEngineIOPath(ctx, "probe", p.Path)
	probed.Lock()
	probed.unguarded = append(probed.unguarded, unguarded)
	probed.Unlock()
	if err != nil {
		return err
	}
	if p.ClientPath != "" {
		return crosscheck.CheckClientPath(ctx, "probe", p.ClientPath)
	}
	return nil
}

func (probe) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

// validate provisions (and cleans up) a config of one server whose
// routes have these handlers, in order, as `caddy validate` does.
func validate(t *testing.T, handlers ...string) (unguarded []bool, err error) {
	t.Helper()
	probed.Lock()
	probed.unguarded = nil
	probed.Unlock()
	var routes []string
	for _, h := range handlers {
		routes = append(routes, `{"handle":[`+h+`]}`)
	}
	raw := `{"admin":{"disabled":true},"apps":{"http":{"servers":{"srv0":{"listen":["127.0.0.1:0"],"routes":[` + strings.Join(routes, ",") + `]}}}}}`
	var cfg caddy.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	err = caddy.Validate(&cfg)
	probed.Lock()
	defer probed.Unlock()
	return probed.unguarded, err
}

const guard = `{"handler":"edge_cors","origins":["https://app.example.com"]}`

func TestAHandlerBehindAGuardOfItsPathPasses(t *testing.T) {
	unguarded, err := validate(t, guard, `{"handler":"crosscheck_probe","path":"/socket.io/","client_path":"/socket.io-edge/"}`)
	if err != nil || len(unguarded) != 1 || unguarded[0] {
		t.Fatalf("err %v, unguarded %v", err, unguarded)
	}
}

func TestAHandlerWithoutAGuardInFrontIsUnguarded(t *testing.T) {
	// The guard after the handler is not in front of it.
	unguarded, err := validate(t, `{"handler":"crosscheck_probe","path":"/socket.io/"}`, guard)
	if err != nil || len(unguarded) != 1 || !unguarded[0] {
		t.Fatalf("err %v, unguarded %v", err, unguarded)
	}
}

func TestAGuardOfAnotherEngineIOPathIsAnError(t *testing.T) {
	_, err := validate(t, guard, `{"handler":"crosscheck_probe","path":"/ws/"}`)
	if err == nil || !strings.Contains(err.Error(), `probe: Engine.IO path "/ws/" is not the engineio_path of the edge_cors in front of it (/socket.io/)`) ||
		!strings.Contains(err.Error(), `set edge_cors's engineio_path to "/ws/"`) {
		t.Fatalf("err %v", err)
	}
}

func TestAGuardOfAnotherClientPathIsAnError(t *testing.T) {
	_, err := validate(t, guard, `{"handler":"crosscheck_probe","path":"/socket.io/","client_path":"/client/"}`)
	if err == nil || !strings.Contains(err.Error(), `probe: path "/client/" is not the client_path of the edge_cors in front of it (/socket.io-edge/)`) {
		t.Fatalf("err %v", err)
	}
}

// Guards inside a subroute count, in route order; and a config's guards
// are forgotten when it is cleaned up.
func TestGuardsInSubroutesCountAndAreForgottenAtCleanup(t *testing.T) {
	sub := `{"handler":"subroute","routes":[{"handle":[` + guard + `]},{"handle":[{"handler":"crosscheck_probe","path":"/socket.io/"}]}]}`
	unguarded, err := validate(t, sub)
	if err != nil || len(unguarded) != 1 || unguarded[0] {
		t.Fatalf("err %v, unguarded %v", err, unguarded)
	}
	unguarded, err = validate(t, `{"handler":"crosscheck_probe","path":"/socket.io/"}`)
	if err != nil || len(unguarded) != 1 || !unguarded[0] {
		t.Fatalf("a cleaned-up config's guard lingers: err %v, unguarded %v", err, unguarded)
	}
}
