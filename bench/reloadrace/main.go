// Command reloadrace measures what a `caddy reload` costs clients that
// open connections at that instant, with nothing of this project in the
// path: stock Caddy answering `respond` on one site, reloaded through its
// admin API between two configs while several clients send GETs as fast
// as they can, each on a fresh connection (as the Node socket.io-client
// polls) or over keep-alive connections (as browsers do).
//
// On Linux, Caddy binds each config's listener with SO_REUSEPORT. Two
// things then fail a few requests per reload, and both are outside any
// handler:
//
//   - closing the old config's listener resets the connections still in
//     its accept queue ("connection reset by peer"), unless the kernel
//     migrates them to the new listener (sysctl net.ipv4.tcp_migrate_req=1,
//     Linux 5.14+);
//   - Go's net/http server drops a request it reads on a connection after
//     Shutdown began, closing the connection without an answer ("EOF";
//     golang/go#75591), and closes idle keep-alive connections a client
//     may be writing to.
//
// Run it from the repository root: `make reload-race` (or
// `go run ./bench/reloadrace -caddy bin/caddy`).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flaskedge/flaskedge/internal/freeport"
)

func main() {
	caddyBin := flag.String("caddy", "bin/caddy", "the Caddy binary")
	reloads := flag.Int("reloads", 40, "config reloads")
	clients := flag.Int("clients", 8, "concurrent clients")
	keepAlive := flag.Bool("keepalive", false, "reuse connections, as browsers do")
	flag.Parse()
	if err := run(*caddyBin, *reloads, *clients, *keepAlive); err != nil {
		fmt.Fprintln(os.Stderr, "reloadrace:", err)
		os.Exit(1)
	}
}

func run(caddyBin string, reloads, clients int, keepAlive bool) error {
	port, err := freeport.Get()
	if err != nil {
		return err
	}
	admin, err := freeport.Get()
	if err != nil {
		return err
	}
	config := func(body string) string {
		return fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n}\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n\trespond %q\n}\n", admin, port, body)
	}
	dir, err := os.MkdirTemp("", "reloadrace")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(config("a")), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(caddyBin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy did not answer on %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond) // polling for readiness
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: clients}}
	var ok atomic.Int64
	var mu sync.Mutex
	failures := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Get(url)
				if err != nil {
					mu.Lock()
					failures[kind(err)]++
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				ok.Add(1)
			}
		}()
	}
	start := time.Now()
	for i := range reloads {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/load", admin),
			strings.NewReader(config([]string{"b", "a"}[i%2])))
		req.Header.Set("Content-Type", "text/caddyfile")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("reload %d: %s", i, res.Status)
		}
		time.Sleep(50 * time.Millisecond) // spacing between reloads, not a wait for readiness
	}
	close(stop)
	wg.Wait()

	migrate, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	if err != nil {
		migrate = []byte("unknown")
	}
	total := 0
	kinds := make([]string, 0, len(failures))
	for k, n := range failures {
		total += n
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	conns := "a fresh connection per request"
	if keepAlive {
		conns = "keep-alive connections"
	}
	fmt.Printf("stock Caddy `respond`, %d reloads in %v, %d clients on %s, net.ipv4.tcp_migrate_req=%s\n",
		reloads, time.Since(start).Round(time.Millisecond), clients, conns, strings.TrimSpace(string(migrate)))
	fmt.Printf("  requests answered %d, failed %d (%.2f per reload)\n", ok.Load(), total, float64(total)/float64(reloads))
	for _, k := range kinds {
		fmt.Printf("    %s: %d\n", k, failures[k])
	}
	return nil
}

// kind names a failed request's cause as the client saw it.
func kind(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF (closed without an answer)"
	}
	return err.Error()
}
