package edgecors

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// TestCaddyfileAdapt checks the golden files in testdata/.
func TestCaddyfileAdapt(t *testing.T) { testenv.AdaptGolden(t) }

func TestUnmarshalCaddyfile(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name, input string
		want        Handler
	}{
		{"one line", `edge_cors https://app.example.com http://LOCALHOST:5000`,
			Handler{Origins: []string{"https://app.example.com", "http://localhost:5000"}}},
		{"block", `edge_cors {
			origins https://app.example.com:443
			origins https://*.example.com
			credentials
			allowed_methods GET POST
			allowed_methods PATCH
			allowed_headers Content-Type X-CSRFToken
			expose_headers X-Request-Id
			max_age 10m
			websocket_origin_guard off
			environment staging
		}`, Handler{
			Origins:              []string{"https://app.example.com", "https://*.example.com"},
			Credentials:          true,
			AllowedMethods:       []string{"GET", "POST", "PATCH"},
			AllowedHeaders:       []string{"Content-Type", "X-CSRFToken"},
			ExposeHeaders:        []string{"X-Request-Id"},
			MaxAge:               caddy.Duration(600e9),
			WebSocketOriginGuard: &off,
			Environment:          staging,
		}},
		{"origins_from_env with Flask's variables", `edge_cors {
			origins_from_env
		}`, Handler{OriginsFromEnv: &OriginsFromEnv{}}},
		{"origins_from_env with named variables", `edge_cors {
			origins_from_env APP_HOST APP_PORT PUBLIC_URL
		}`, Handler{OriginsFromEnv: &OriginsFromEnv{HostVar: "APP_HOST", PortVar: "APP_PORT", PublicURLVar: "PUBLIC_URL"}}},
		{"any_loopback_port in development", `edge_cors {
			any_loopback_port
			environment development
		}`, Handler{AnyLoopbackPort: true, Environment: development}},
		{"guard options", `edge_cors https://a.example.com {
			require_origin
			engineio_path /ws/
			allow_private_network
		}`, Handler{Origins: []string{"https://a.example.com"}, RequireOrigin: true, EngineIOPath: "/ws/", AllowPrivateNetwork: true}},
		{"guard on is the default", `edge_cors https://a.example.com {
			websocket_origin_guard on
		}`, Handler{Origins: []string{"https://a.example.com"}}},
	} {
		var got Handler
		if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

// A user's mistake must be reported at its line with what to write.
func TestUnmarshalCaddyfileErrorsNameTheLineAndTheFix(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"edge_cors http://localhost:5000/", `edge_cors: origin "http://localhost:5000/" has a path; write it as "http://localhost:5000", at Testfile:1`},
		{"edge_cors {\n\torigins https://a.com\n\torigins null\n}", `origin "null" is what sandboxed iframes`},
		{"edge_cors {\n\torigins https://a.com\n\torigins null\n}", "at Testfile:3"},
		{"edge_cors {\n\torigin https://a.com\n}", `unknown subdirective "origin"; edge_cors takes allow_private_network, allowed_headers, allowed_methods, any_loopback_port, client_path, credentials, diagnostics, engineio_path, environment, expose_headers, max_age, origins, origins_from_env, require_origin, websocket_origin_guard, at Testfile:2`},
		{"edge_cors {\n\torigins\n}", `origins needs at least one origin, as in "origins https://app.example.com", at Testfile:2`},
		{"edge_cors {\n\tcredentials yes\n}", `credentials takes no argument`},
		{"edge_cors {\n\tdiagnostics yes\n}", `diagnostics takes "on" or "off"`},
		{"edge_cors {\n\tallowed_methods\n}", `allowed_methods needs at least one name, as in "allowed_methods GET POST PUT"`},
		{"edge_cors {\n\tmax_age\n}", `max_age takes one duration, as in "max_age 10m"`},
		{"edge_cors {\n\tmax_age ten\n}", `max_age "ten" is not a duration`},
		{"edge_cors {\n\twebsocket_origin_guard no\n}", `websocket_origin_guard takes "on" or "off"`},
		{"edge_cors https://*.co.uk", `public suffix "co.uk"`},
		{"edge_cors {\n\torigins_from_env FLASK_HOST\n}", `origins_from_env takes no argument, or the host and port variables`},
		{"edge_cors {\n\tany_loopback_port on\n}", `any_loopback_port takes no argument`},
		{"edge_cors {\n\trequire_origin yes\n}", `require_origin takes no argument`},
		{"edge_cors {\n\tengineio_path\n}", `engineio_path takes one path prefix`},
		{"edge_cors {\n\tclient_path /a/ /b/\n}", `client_path takes one path prefix`},
		{"edge_cors {\n\tenvironment\n}", `environment takes one of development, staging, production`},
		{"edge_cors {\n\tallow_private_network on\n}", `allow_private_network takes no argument`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n  error %v\n  want it to contain %s", tc.input, err, tc.want)
		}
	}
}

// The Caddyfile layer reads the syntax; values are checked once, when
// the config loads, with every problem reported together (Validate).
func TestCaddyfileLeavesValueChecksToValidate(t *testing.T) {
	var h Handler
	input := "edge_cors https://a.example.com {\n\tclient_path edge\n\tengineio_path /socket.io\n\tmax_age 48h\n\tenvironment prod\n\torigins_from_env $HOST PORT\n\texpose_headers X:Y\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("adapting: %v", err)
	}
	err := provisionOnly(t, &h)
	for _, want := range []string{
		`client_path "edge" must be a prefix that starts and ends with "/"`,
		`engineio_path "/socket.io" must start and end with "/"`,
		`max_age 48h0m0s is longer than browsers honour`,
		`environment "prod"`,
		`origins_from_env: "$HOST" is not an environment variable name`,
		`expose_headers "X:Y" is not an HTTP token`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load error %v\nwant it to contain %s", err, want)
		}
	}
}
