// Package upstreamfile is a dynamic upstream source that reads the
// workers from a file: http.reverse_proxy.upstreams.file. Whatever
// writes the file (a deploy tool, consul-template, a Kubernetes
// ConfigMap mounted as a volume) changes the workers of socketio_proxy
// and reverse_proxy without a reload.
package upstreamfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(FileUpstreams{})
}

// FileUpstreams reads the workers from a file, one host:port per line;
// blank lines and lines starting with # are ignored. The file is looked
// at again at most every Refresh; a file that cannot be read or holds a
// line that is no host:port is an error, and the caller keeps the
// workers it had.
type FileUpstreams struct {
	// Path of the file.
	Path string `json:"path"`
	// Refresh is how often the file is looked at again. Default: 1s.
	Refresh caddy.Duration `json:"refresh,omitempty"`

	cache *fileCache
}

// fileCache is the last reading of the file.
type fileCache struct {
	mu      sync.Mutex
	checked time.Time
	stamp   fileStamp
	list    []*reverseproxy.Upstream
}

// fileStamp tells a changed file.
type fileStamp struct {
	mod  time.Time
	size int64
}

// DefaultRefresh is FileUpstreams.Refresh's default.
const DefaultRefresh = time.Second

// CaddyModule returns the Caddy module information.
func (FileUpstreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.file",
		New: func() caddy.Module { return new(FileUpstreams) },
	}
}

// Provision sets the default refresh.
func (f *FileUpstreams) Provision(caddy.Context) error {
	if f.Refresh == 0 {
		f.Refresh = caddy.Duration(DefaultRefresh)
	}
	f.cache = new(fileCache)
	return nil
}

// Validate checks the configuration.
func (f *FileUpstreams) Validate() error {
	var errs []error
	if f.Path == "" {
		errs = append(errs, errors.New("the file source needs a path, e.g. `dynamic file /etc/caddy/workers`"))
	}
	if f.Refresh < 0 {
		errs = append(errs, fmt.Errorf("refresh %v is negative", time.Duration(f.Refresh)))
	}
	return errors.Join(errs...)
}

// GetUpstreams returns the workers the file lists.
func (f *FileUpstreams) GetUpstreams(*http.Request) ([]*reverseproxy.Upstream, error) {
	c := f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.list != nil && now.Sub(c.checked) < time.Duration(f.Refresh) {
		return c.list, nil
	}
	c.checked = now
	fi, err := os.Stat(f.Path)
	if err != nil {
		return nil, fmt.Errorf("upstream file: %w", err)
	}
	stamp := fileStamp{fi.ModTime(), fi.Size()}
	if c.list != nil && stamp == c.stamp {
		return c.list, nil
	}
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("upstream file: %w", err)
	}
	list, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("upstream file %s: %w", f.Path, err)
	}
	c.list, c.stamp = list, stamp
	return list, nil
}

// parse reads the file's lines.
func parse(data []byte) ([]*reverseproxy.Upstream, error) {
	list := []*reverseproxy.Upstream{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		host, port, err := net.SplitHostPort(line)
		n2, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n2 < 1 || n2 > 65535 || strings.ContainsAny(host, "/?#@\\ \t{}") {
			return nil, fmt.Errorf("line %d is not host:port", n)
		}
		list = append(list, &reverseproxy.Upstream{Dial: line})
	}
	return list, sc.Err()
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens, as the
// `dynamic` subdirective of reverse_proxy and socketio_proxy gives them.
// Syntax:
//
//	dynamic file <path> {
//		refresh <duration>
//	}
func (f *FileUpstreams) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "file"
	if !d.NextArg() {
		return d.ArgErr()
	}
	f.Path = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "refresh":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("refresh %q: %v", d.Val(), err)
			}
			f.Refresh = caddy.Duration(dur)
		default:
			return d.Errf("unknown subdirective %q; the file source takes refresh", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*FileUpstreams)(nil)
	_ caddy.Validator             = (*FileUpstreams)(nil)
	_ reverseproxy.UpstreamSource = (*FileUpstreams)(nil)
	_ caddyfile.Unmarshaler       = (*FileUpstreams)(nil)
)
