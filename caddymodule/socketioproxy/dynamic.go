package socketioproxy

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/sticky"
)

// dynamicWorkers is a pool's dynamic source and the workers built for
// its answers.
type dynamicWorkers struct {
	source reverseproxy.UpstreamSource
	// key is the source's config: the configs that share it, one after
	// another across reloads, share the retirement of each of its
	// workers (see retireWith).
	key    string
	build  func(addr string, tag sticky.Tag) *upstream
	logger *zap.Logger

	mu      sync.Mutex
	known   map[string]*upstream // by address, every worker of the current set
	lastErr string               // the last error logged, to log each once
}

// sourceRefreshInterval is how often the set is refreshed without
// traffic, so that the sessions of a worker that left are closed even on
// an idle edge. The source's own cache says how often it really asks.
const sourceRefreshInterval = time.Second

// retirements are the contexts that end the relays to a dynamic worker
// when its source drops it, by source config and worker. A reload builds
// the new config's workers afresh, while the relays opened through the
// old config run on; sharing the retirement with the config the source
// had before lets the source's later answer end those too, as it ends
// the new config's. Configs with the same source config get the same
// answers, so sharing with a config of another site changes nothing.
var retirements = struct {
	mu sync.Mutex
	m  map[string]*retirement
}{m: make(map[string]*retirement)}

// sourceTuning are the settings of a dynamic source that say how it
// asks, not which workers it names: Caddy's a, srv and multi sources',
// and the file source's refresh.
var sourceTuning = []string{"refresh", "grace_period", "resolver", "dial_timeout", "dial_fallback_delay"}

// sourceKey is what the retirements of a dynamic source's workers are
// shared under: its config without its tuning, in a canonical order, so
// that a reload that changes only how often it asks (or its resolver,
// or its timeouts) is still the same source, whose answer ends the
// relays opened through the config before.
func sourceKey(raw json.RawMessage) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return string(raw)
	}
	for _, k := range sourceTuning {
		delete(m, k)
	}
	if subs, ok := m["sources"]; ok {
		var list []json.RawMessage
		if json.Unmarshal(subs, &list) == nil {
			keys := make([]json.RawMessage, len(list))
			for i, sub := range list {
				keys[i] = json.RawMessage(sourceKey(sub))
			}
			m["sources"], _ = json.Marshal(keys)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// retirement is one worker's, shared by the upstreams of the configs
// that name it and by the relays they opened: a relay outlives its
// config, so the retirement stays shared until the last of either ends.
type retirement struct {
	key    string
	ctx    context.Context
	cancel context.CancelFunc
	refs   int
}

// shareRetirement returns the retirement shared under key, a fresh one
// if the worker's last one was used, held once more.
func shareRetirement(key string) *retirement {
	retirements.mu.Lock()
	defer retirements.mu.Unlock()
	r := retirements.m[key]
	if r == nil || r.ctx.Err() != nil {
		r = &retirement{key: key}
		r.ctx, r.cancel = context.WithCancel(context.Background())
		retirements.m[key] = r
	}
	r.refs++
	return r
}

// hold counts one more holder of r. A relay whose handshake outlived its
// config may come to hold a retirement its last holder let go of: it is
// shared again when no newer one is, and cancelled when one is (the
// relay ends at once, and its client reconnects through the config of
// the moment), as a relay that would watch a retirement no config
// shares could outlive its worker's leaving.
func (r *retirement) hold() {
	retirements.mu.Lock()
	defer retirements.mu.Unlock()
	if r.refs++; r.refs == 1 {
		switch cur := retirements.m[r.key]; {
		case cur == nil && r.ctx.Err() == nil:
			retirements.m[r.key] = r
		case cur != r:
			r.cancel()
		}
	}
}

// retireAbsent cancels the retirements shared under source whose worker
// is not among addrs, the source's answer of the moment: a worker may
// leave between a reload's new config and its first answer, which then
// builds no upstream for it, and the relays opened to it through the
// older config must still end.
func retireAbsent(source string, addrs []string) {
	retirements.mu.Lock()
	defer retirements.mu.Unlock()
	for key, r := range retirements.m {
		// A source's config is JSON, which has no NUL of its own.
		if src, addr, ok := strings.Cut(key, "\x00"); ok && src == source && !slices.Contains(addrs, addr) {
			r.cancel()
			delete(retirements.m, key)
		}
	}
}

// let counts one holder fewer; the last forgets r.
func (r *retirement) let() {
	retirements.mu.Lock()
	defer retirements.mu.Unlock()
	if r.refs--; r.refs == 0 && retirements.m[r.key] == r {
		delete(retirements.m, r.key)
	}
}

// retireWith makes u's retirement the one shared under key; u.close
// lets it go.
func (u *upstream) retireWith(key string) {
	r := shareRetirement(key)
	u.retire() // the config's own, never shared
	u.shared, u.retired, u.retire = r, r.ctx, r.cancel
}

// newUpstream builds the config's side of worker addr.
func (h *Handler) newUpstream(addr string, tag sticky.Tag) *upstream {
	u := newUpstream(addr, tag, time.Duration(h.DialTimeout), h.tlsConfig)
	u.drainTimeout.Store(int64(h.DrainTimeout))
	return u
}

// refresh asks a dynamic source for the workers of the moment and makes
// them the set; r is the request being served (sources read
// placeholders from it). A fixed set, or an unchanged answer, changes
// nothing; a failed answer keeps the set as it was.
func (p *pool) refresh(r *http.Request) {
	d := p.dyn
	if d == nil {
		return
	}
	ups, err := d.source.GetUpstreams(r)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != d.lastErr {
			d.lastErr = msg
			d.logger.Error("dynamic upstream source failed; keeping the workers it gave before", zap.Error(err))
		}
		return
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	var addrs []string
	for _, u := range ups {
		// A dial address has no scheme: the transport decides, as for
		// reverse_proxy's dynamic upstreams.
		addr, _, err := parseUpstream(repl.ReplaceAll(u.Dial, ""))
		if err != nil {
			if msg := err.Error(); msg != d.lastErr {
				d.lastErr = msg
				d.logger.Error("dynamic upstream source gave an address the edge cannot use; skipped", zap.Error(err))
			}
			continue
		}
		if !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	if len(addrs) == 0 {
		// Most likely a file caught half written, or a DNS answer
		// lost: dropping every worker would end every session.
		if msg := "no worker"; msg != d.lastErr {
			d.lastErr = msg
			d.logger.Error("dynamic upstream source gave no worker; keeping the workers it gave before")
		}
		return
	}
	slices.Sort(addrs)
	key := strings.Join(addrs, " ")
	old := p.set.Load()
	if old != nil && old.key == key {
		return
	}
	d.lastErr = ""
	retireAbsent(d.key, addrs)
	if d.known == nil {
		d.known = make(map[string]*upstream)
	}
	set := &workerSet{byTag: make(map[sticky.Tag]*upstream), key: key}
	for _, addr := range addrs {
		u, ok := d.known[addr]
		if !ok {
			u = d.build(addr, p.codec.Tag(addr))
			u.retireWith(d.key + "\x00" + addr)
			d.known[addr] = u
		}
		if other, dup := set.byTag[u.tag]; dup {
			d.logger.Error("dynamic upstream source gave two workers with the same sticky tag; the second is skipped",
				zap.String("upstream", other.addr), zap.String("skipped", addr))
			continue
		}
		set.upstreams = append(set.upstreams, u)
		set.byTag[u.tag] = u
	}
	var gone []string
	for addr, u := range d.known {
		if _, ok := set.byTag[u.tag]; ok && set.byTag[u.tag] == u {
			continue
		}
		// It left: its sessions are closed now, so their clients
		// reconnect to a worker that is there.
		u.retire()
		u.close()
		delete(d.known, addr)
		gone = append(gone, addr)
	}
	p.set.Store(set)
	d.logger.Info("Socket.IO workers from the dynamic source", zap.Strings("workers", addrs), zap.Strings("left", gone))
}

// close releases every worker of the pool.
func (p *pool) close() {
	if d := p.dyn; d != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
		for addr, u := range d.known {
			u.close()
			delete(d.known, addr)
		}
		return
	}
	for _, u := range p.workers() {
		u.close()
	}
}

// startSourceRefresh refreshes a dynamic set every sourceRefreshInterval
// until the config ends (the module's caddy.Context), with a request of
// its own for the source's placeholders.
func (h *Handler) startSourceRefresh(ctx caddy.Context) *healthLoop {
	rctx, stop := context.WithCancel(ctx)
	l := &healthLoop{stop: stop, done: make(chan struct{})}
	req, _ := http.NewRequestWithContext(context.WithValue(rctx, caddy.ReplacerCtxKey, caddy.NewReplacer()), http.MethodGet, "/", nil)
	go func() {
		defer close(l.done)
		t := time.NewTicker(sourceRefreshInterval)
		defer t.Stop()
		for {
			h.pool.refresh(req)
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return l
}
