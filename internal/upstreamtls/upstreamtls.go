// Package upstreamtls is the edge's TLS to the Flask workers: the trust
// settings of Caddy's reverse_proxy http transport, read with
// reverse_proxy's own Caddyfile parser into its own reverseproxy.TLSConfig
// and turned into a crypto/tls config by its own MakeTLSClientConfig, so
// that socketio_proxy, flask_session's whoami and the reverse_proxy
// beside them trust exactly the same certificates.
//
// In a Caddyfile it is written as reverse_proxy's transport is:
//
//	transport http {
//		tls
//		tls_trust_pool          <module> <args...>   (e.g. file /etc/flaskedge/workers-ca.pem)
//		tls_trusted_ca_certs    <pem_files...>       (deprecated by reverse_proxy)
//		tls_server_name         <name>
//		tls_client_auth         <cert_file> <key_file> | <automate_name>
//		tls_timeout             <duration>
//		tls_curves              <curves...>
//		tls_renegotiation       never|once|freely
//		tls_insecure_skip_verify
//	}
//
// Only the tls_* settings: the edge's connections to the workers are its
// own, not reverse_proxy's, so keepalive, buffers and the like would mean
// nothing, and tls_except_ports (plain and TLS workers in one list) is
// refused.
package upstreamtls

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
)

// Subdirectives are the settings a transport block may hold: the TLS
// ones of reverse_proxy's http transport.
var Subdirectives = []string{
	"tls", "tls_client_auth", "tls_curves", "tls_insecure_skip_verify", "tls_renegotiation",
	"tls_server_name", "tls_timeout", "tls_trust_pool", "tls_trusted_ca_certs",
}

// Parse reads `<name> http { <tls settings> }`, with d on name, and
// returns the TLS settings; nil when the block has none (plain http).
func Parse(d *caddyfile.Dispenser) (*reverseproxy.TLSConfig, error) {
	name := d.Val()
	example := "`" + name + " http { tls_trust_pool file /etc/flaskedge/workers-ca.pem }`"
	if !d.NextArg() || d.Val() != "http" {
		return nil, d.Errf("%s takes http and a block of reverse_proxy's TLS settings, e.g. %s", name, example)
	}
	if d.NextArg() {
		return nil, d.Errf("%s http takes its settings in a block, not %q; write e.g. %s", name, d.Val(), example)
	}
	seg := d.NextSegment()
	check := caddyfile.NewDispenser(seg)
	check.Next()
	for check.NextBlock(0) {
		sub := check.Val()
		if !slices.Contains(Subdirectives, sub) {
			why := "the edge keeps its own connections to the workers"
			if sub == "tls_except_ports" {
				why = "plain and TLS workers are not mixed: give every worker TLS, or none"
			}
			return nil, check.Errf("%s http: %s is not taken here (%s); it takes %s", name, sub, why, strings.Join(Subdirectives, ", "))
		}
		check.NextSegment()
	}
	// As reverse_proxy does, with the dispenser on the transport's name.
	read := caddyfile.NewDispenser(seg)
	read.Next()
	unm, err := caddyfile.UnmarshalModule(read, "http.reverse_proxy.transport.http")
	if err != nil {
		return nil, err
	}
	return unm.(*reverseproxy.HTTPTransport).TLS, nil
}

// ClientConfig makes the crypto/tls config of connections to the workers
// from t (nil: the system's roots, as for an https:// worker without
// settings). owner names the module in messages. Skipping verification
// is logged as an error at every load: it is never what production
// wants.
func ClientConfig(ctx caddy.Context, t *reverseproxy.TLSConfig, logger *zap.Logger, owner string) (*tls.Config, error) {
	if t == nil {
		t = new(reverseproxy.TLSConfig)
	}
	if len(t.ExceptPorts) > 0 {
		return nil, fmt.Errorf("%s: except_ports (tls_except_ports) is not supported: plain and TLS workers are not mixed; give every worker TLS, or none", owner)
	}
	cfg, err := t.MakeTLSClientConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: TLS to the workers: %v", owner, err)
	}
	if cfg == nil {
		cfg = new(tls.Config)
	}
	if cfg.InsecureSkipVerify {
		logger.Error("TLS CERTIFICATES OF THE WORKERS ARE NOT VERIFIED (tls_insecure_skip_verify): anyone on the network path "+
			"can read and change every session, cookie and identity header; give the workers' CA with `tls_trust_pool file <ca.pem>` instead",
			zap.String("module", owner))
	}
	return cfg, nil
}
