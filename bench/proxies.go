package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/flaskedge/flaskedge/internal/freeport"
)

// proxy is one contender: how to configure and start it in front of two
// backends.
type proxy struct {
	key    string // the name -proxies takes
	label  string // its row in the table
	anchor bool   // a reference the edge is measured against
	// children: the proxy's footprint includes its child processes
	// (nginx's worker).
	children bool
	// edge: CPU profiles are fetched during its echo and polling runs.
	edge bool
	// config writes the proxy's configuration into dir and returns the
	// command that runs it in the foreground. adminPort is 0 except for
	// Caddy.
	config func(b *bench, dir string, port, adminPort int, backends [2]string) (*exec.Cmd, error)
}

var proxies = []proxy{
	{key: "nginx", label: "nginx (ip_hash)", anchor: true, children: true, config: nginxConfig},
	{key: "haproxy", label: "HAProxy (balance source)", anchor: true, config: haproxyConfig},
	{key: "caddy", label: "Caddy reverse_proxy (ip_hash)", anchor: true, config: caddyConfig(reverseProxy(""))},
	{key: "caddy4k", label: "Caddy reverse_proxy, stream_buffer_size 4KiB", config: caddyConfig(reverseProxy("4KiB"))},
	{key: "edge", label: "**edge (flask_socketio)**", edge: true, config: caddyConfig(edgeSite(""))},
	{key: "edge-recover", label: "**edge+recover (flask_socketio, recover 30s)**", edge: true, config: caddyConfig(edgeSite("30s"))},
}

// proxyKeys is every contender, in the default order.
func proxyKeys() string {
	var keys []string
	for _, p := range proxies {
		keys = append(keys, p.key)
	}
	return strings.Join(keys, ",")
}

// running is a started proxy.
type running struct {
	proxy
	p         *proc
	addr      string // host:port clients connect to
	adminAddr string // Caddy's admin endpoint, empty for the others
}

// startProxy starts a fresh instance of px on free ports and waits until
// it listens.
func (b *bench) startProxy(ctx context.Context, px proxy, dir string, backends [2]string) (*running, error) {
	port, err := freeport.Get()
	if err != nil {
		return nil, err
	}
	adminPort := 0
	if strings.HasPrefix(px.key, "caddy") || px.edge {
		if adminPort, err = freeport.Get(); err != nil {
			return nil, err
		}
	}
	cmd, err := px.config(b, dir, port, adminPort, backends)
	if err != nil {
		return nil, err
	}
	p, _, err := b.procs.start(px.key, filepath.Join(dir, px.key+".log"), cmd, false)
	if err != nil {
		return nil, err
	}
	r := &running{proxy: px, p: p, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	if adminPort != 0 {
		r.adminAddr = fmt.Sprintf("127.0.0.1:%d", adminPort)
	}
	if err := p.waitListening(ctx, r.addr); err != nil {
		p.stop()
		return nil, err
	}
	return r, nil
}

// nginx: one worker (the others run their defaults on two cores, but
// nginx's footprint is per worker), ip_hash, the WebSocket upgrade
// headers, and every path it writes under dir.
func nginxConfig(b *bench, dir string, port, _ int, backends [2]string) (*exec.Cmd, error) {
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			return nil, err
		}
		// Workers run as an unprivileged user when nginx starts as root.
		_ = os.Chmod(filepath.Join(dir, d), 0o777)
	}
	_ = os.Chmod(dir, 0o755)
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
worker_rlimit_nofile 20000;
events {
	worker_connections %[5]d;
}
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;

	upstream backends {
		ip_hash;
		server %[3]s;
		server %[4]s;
	}
	map $http_upgrade $connection_upgrade {
		default upgrade;
		'' close;
	}
	server {
		listen 127.0.0.1:%[2]d;
		location / {
			proxy_pass http://backends;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $remote_addr;
			proxy_read_timeout 1h;
			proxy_send_timeout 1h;
		}
	}
}
`, dir, port, backends[0], backends[1], max(8192, 2*b.maxConns()))
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return exec.Command(b.nginx, "-p", dir, "-e", filepath.Join(dir, "nginx-error.log"), "-c", path, "-g", "daemon off;"), nil
}

// HAProxy: one process (its default threads), balance source, and
// timeout tunnel for the WebSockets.
func haproxyConfig(b *bench, dir string, port, _ int, backends [2]string) (*exec.Cmd, error) {
	conf := fmt.Sprintf(`global
	maxconn %d

defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout tunnel 1h

frontend fe
	bind 127.0.0.1:%d
	default_backend backends

backend backends
	balance source
	server a %s
	server b %s
`, haproxyMaxconn(b.maxConns()), port, backends[0], backends[1])
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -db: foreground, no master process.
	return exec.Command(b.haproxy, "-db", "-f", path), nil
}

// haproxyMaxconn is 8000, or the run's most connections if more, within
// what the open-file limit allows: HAProxy refuses to start when maxconn
// needs more descriptors (two per connection, and a few) than it may open.
func haproxyMaxconn(conns int) int {
	n := max(8000, conns)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		n = min(n, int(lim.Cur-100)/2)
	}
	return n
}

// Caddy, for all of its rows: the same bin/caddy, admin on loopback (for
// pprof), no automatic HTTPS, nothing persisted outside dir.
func caddyConfig(site func(backends [2]string) string) func(*bench, string, int, int, [2]string) (*exec.Cmd, error) {
	return func(b *bench, dir string, port, adminPort int, backends [2]string) (*exec.Cmd, error) {
		conf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	storage file_system %s/caddy-data
}

http://127.0.0.1:%d {
	bind 127.0.0.1
%s}
`, adminPort, dir, port, site(backends))
		path := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command(b.caddy, "run", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
		if b.MemProfileRate > 0 {
			cmd.Env = append(cmd.Env, fmt.Sprintf("GODEBUG=memprofilerate=%d", b.MemProfileRate))
		}
		return cmd, nil
	}
}

func reverseProxy(streamBuffer string) func([2]string) string {
	return func(backends [2]string) string {
		extra := ""
		if streamBuffer != "" {
			extra = "\t\tstream_buffer_size " + streamBuffer + "\n"
		}
		return fmt.Sprintf("\treverse_proxy %s %s {\n\t\tlb_policy ip_hash\n%s\t}\n", backends[0], backends[1], extra)
	}
}

// edgeSite is the edge as a user writes it, the whole flask_socketio
// route: origin guard and CORS, the Flask session (the load's clients
// are anonymous, so every request passes through its check), the
// Socket.IO proxy, and reverse_proxy for the rest. With a recover
// window the edge terminates Engine.IO itself and keeps one WebSocket
// per session to the worker, whatever the client's transport.
func edgeSite(recoverWindow string) func([2]string) string {
	return func(backends [2]string) string {
		extra := ""
		if recoverWindow != "" {
			extra = "\t\trecover " + recoverWindow + "\n"
		}
		return fmt.Sprintf("\tflask_socketio %s %s {\n\t\torigins http://localhost\n\t\tsecret_key bench-flask-secret-key\n%s\t}\n", backends[0], backends[1], extra)
	}
}
