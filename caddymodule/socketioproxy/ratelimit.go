package socketioproxy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// RateLimits bound how fast a client may open sessions and send messages.
// Buckets are token buckets held in bounded LRUs, shared through a
// UsagePool so that a reload with the same limits keeps them.
type RateLimits struct {
	// Connect limits new Engine.IO sessions per client IP (as Caddy
	// determines it, trusted_proxies honoured; an IPv6 one by its /64).
	// A handshake over the limit gets 429 with Retry-After.
	Connect *Rate `json:"connect,omitempty"`
	// Messages limits the Engine.IO messages a session sends, on either
	// transport. A session over the limit is closed: a WebSocket with
	// 1008 "message rate limit exceeded; retry after <window> s", a
	// polling session with 429 and Retry-After: <window> to the client
	// and a close packet to its worker. The browser client waits that
	// long before it reconnects.
	Messages *Rate `json:"messages,omitempty"`
	// MaxTracked bounds how many client IPs and polling sessions have a
	// bucket; the least recently seen are forgotten first. Default:
	// 100000.
	MaxTracked int `json:"max_tracked,omitempty"`
}

// Rate is Events per Window, with bursts of up to Burst events.
type Rate struct {
	Events int            `json:"events"`
	Window caddy.Duration `json:"window"`
	// Burst defaults to Events.
	Burst int `json:"burst,omitempty"`
}

func (r *Rate) limit() rate.Limit {
	return rate.Limit(float64(r.Events) / time.Duration(r.Window).Seconds())
}

func (r *Rate) burst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return r.Events
}

func (r *Rate) newLimiter() *rate.Limiter { return rate.NewLimiter(r.limit(), r.burst()) }

func (r *Rate) String() string {
	return fmt.Sprintf("%d/%s burst %d", r.Events, time.Duration(r.Window), r.burst())
}

func (r *Rate) validate(what string) error {
	if r.Events <= 0 || r.Window <= 0 || r.Burst < 0 {
		return fmt.Errorf("socketio_proxy: rate_limit %s needs a positive rate, e.g. `rate_limit %s 30/m`", what, what)
	}
	return nil
}

// valid reports whether every rate is one Validate accepts.
func (rl *RateLimits) valid() bool {
	for _, r := range []*Rate{rl.Connect, rl.Messages} {
		if r != nil && r.validate("") != nil {
			return false
		}
	}
	return true
}

// parseRate reads "30/m", "30/10s", "5/s".
func parseRate(s string) (*Rate, error) {
	n, per, ok := strings.Cut(s, "/")
	events, err := strconv.Atoi(n)
	if !ok || err != nil || events <= 0 {
		return nil, fmt.Errorf("rate %q is not <events>/<window>; write e.g. 30/m or 100/10s", s)
	}
	var window time.Duration
	switch per {
	case "s":
		window = time.Second
	case "m":
		window = time.Minute
	case "h":
		window = time.Hour
	default:
		if window, err = caddy.ParseDuration(per); err != nil || window <= 0 {
			return nil, fmt.Errorf("rate %q: window %q is not s, m, h or a duration such as 10s", s, per)
		}
	}
	return &Rate{Events: events, Window: caddy.Duration(window)}, nil
}

const defaultMaxTracked = 100_000

// buckets are the token buckets of one set of limits.
type buckets struct {
	limits *RateLimits
	byKey  *lru.Cache[string, *rate.Limiter]
}

// Destruct implements caddy.Destructor.
func (*buckets) Destruct() error { return nil }

var bucketPools = caddy.NewUsagePool()

// bucketsKey names the buckets of a set of limits in the pool: configs
// with the same limits share them.
func (rl *RateLimits) bucketsKey() string {
	var b strings.Builder
	for _, r := range []*Rate{rl.Connect, rl.Messages} {
		if r != nil {
			b.WriteString(r.String())
		}
		b.WriteByte(';')
	}
	b.WriteString(strconv.Itoa(rl.MaxTracked))
	return b.String()
}

func loadBuckets(rl *RateLimits) (*buckets, error) {
	v, _, err := bucketPools.LoadOrNew(rl.bucketsKey(), func() (caddy.Destructor, error) {
		c, err := lru.New[string, *rate.Limiter](rl.MaxTracked)
		if err != nil {
			return nil, err
		}
		return &buckets{limits: rl, byKey: c}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*buckets), nil
}

// clock is the clock of the rate limits; tests replace it.
var clock = time.Now

// take takes n tokens from key's bucket of r; when there are not enough
// it takes none and says how long until there will be.
func (b *buckets) take(key string, r *Rate, n int) (ok bool, retryAfter time.Duration) {
	lim, found := b.byKey.Get(key)
	if !found {
		lim = r.newLimiter()
		if prev, loaded, _ := b.byKey.PeekOrAdd(key, lim); loaded {
			lim = prev
		}
	}
	t := clock()
	res := lim.ReserveN(t, n)
	if !res.OK() {
		return false, time.Duration(r.Window)
	}
	if d := res.DelayFrom(t); d > 0 {
		res.CancelAt(t)
		return false, d
	}
	return true, 0
}

// rateCloseReason is the 1008 close reason of a WebSocket session over
// its message rate: it carries the wait, as Retry-After does on polling,
// since a close frame has no header (the browser client reads it from
// the CloseEvent socket.io-client passes to its disconnect handler).
func rateCloseReason(wait time.Duration) error {
	return errors.New("message rate limit exceeded; retry after " + retryAfterSeconds(wait) + " s")
}

// retryAfterSeconds is a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds()))))
}

// clientKey is what the per-client limits (the connect rate,
// max_requests_per_ip) count a client address under: an IPv6 address by
// its /64, the least an ISP hands one subscriber, so that a client does
// not take a fresh bucket per address of its own prefix; an IPv4 address
// (also written IPv4-mapped) as it is.
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
