package flasksession

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddyserver/caddy/v2"

	"github.com/flaskedge/flaskedge/internal/flaskcookie"
	"github.com/flaskedge/flaskedge/internal/security"
)

// whoamiPool keeps each whoami configuration's cache across config
// reloads: Caddy provisions the new config before it cleans up the old
// one, so both hold a reference while the cache moves over.
var whoamiPool = caddy.NewUsagePool()

// whoamiState is what a whoami configuration keeps across reloads.
type whoamiState struct {
	// cache maps the SHA-256 of a session cookie value to the app's
	// answer; expired answers stay until looked up or evicted.
	cache *lru.Cache[[sha256.Size]byte, *whoamiAnswer]
	// misses collapses concurrent lookups of one cookie into one
	// subrequest.
	misses singleflight.Group
}

// Destruct implements caddy.Destructor; the cache holds nothing to close.
func (s *whoamiState) Destruct() error { return nil }

// whoamiLookup is one provider's whoami: its settings, resolved, and
// the state it shares with every provider of the same settings.
type whoamiLookup struct {
	*whoamiState
	poolKey     string
	urls        []string
	shown       []string // urls without userinfo passwords, for messages
	cookieName  string
	timeout     time.Duration
	ttl         time.Duration
	negativeTTL time.Duration
	security    *zap.Logger
	// client is this config's, not the shared state's: its TLS trust is
	// read from files when the config loads, and a reload must apply it.
	client *http.Client
}

// newWhoamiLookup resolves the settings and joins (or creates) their
// state in whoamiPool. It does no I/O. tlsConfig, when not nil, is the
// trust of https URLs (see Whoami.TLS), and trust its settings as
// written; URLs must then all be https.
func newWhoamiLookup(wc *Whoami, cookieName, userKey string, securityLogger *zap.Logger, tlsConfig *tls.Config, trust []byte) (*whoamiLookup, error) {
	l := &whoamiLookup{
		cookieName:  cookieName,
		timeout:     time.Duration(wc.Timeout),
		ttl:         time.Duration(wc.TTL),
		negativeTTL: time.Duration(wc.NegativeTTL),
		security:    securityLogger,
		client: &http.Client{
			// No proxy from the environment: the endpoint is the app's own.
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, TLSClientConfig: tlsConfig},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	repl := caddy.NewReplacer()
	for i, raw := range wc.URLs {
		u, err := repl.ReplaceOrErr(raw, true, true)
		if err != nil {
			return nil, fmt.Errorf("flask_session: whoami URL %d: %v", i+1, err)
		}
		if err := checkWhoamiURL(u); err != nil {
			return nil, fmt.Errorf("flask_session: %v", err)
		}
		parsed, _ := url.Parse(u)
		if tlsConfig != nil && parsed.Scheme != "https" {
			return nil, fmt.Errorf("flask_session: whoami URL %s is plain http but whoami has TLS settings; write it https://, or remove the TLS settings", parsed.Redacted())
		}
		l.urls = append(l.urls, u)
		l.shown = append(l.shown, parsed.Redacted())
	}
	// Every setting that shapes a cached answer is in the key, the trust
	// of the server that gave it included: a reload that changes one
	// starts a fresh cache.
	identity, _ := json.Marshal([]any{l.urls, cookieName, userKey, wc.TTL, wc.NegativeTTL, wc.CacheSize, trust})
	sum := sha256.Sum256(identity)
	l.poolKey = "flask_session.whoami." + hex.EncodeToString(sum[:])
	state, _, err := whoamiPool.LoadOrNew(l.poolKey, func() (caddy.Destructor, error) {
		cache, err := lru.New[[sha256.Size]byte, *whoamiAnswer](wc.CacheSize)
		if err != nil {
			return nil, err
		}
		return &whoamiState{cache: cache}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("flask_session: whoami: %v", err)
	}
	l.whoamiState = state.(*whoamiState)
	return l, nil
}

// release drops this provider's reference to the shared state.
func (l *whoamiLookup) release() error {
	l.client.CloseIdleConnections()
	_, err := whoamiPool.Delete(l.poolKey)
	return err
}

// lookup returns the app's answer for the session cookie value, which
// verified as user userID: from the cache while fresh, otherwise from
// one subrequest shared by every request of the session that misses
// meanwhile. An error means the answer is unknown: fail closed.
func (l *whoamiLookup) lookup(r *http.Request, value, userID string) (*whoamiAnswer, error) {
	return l.lookupFor(r.Context(), security.ClientOf(r), value, userID)
}

// lookupFor is lookup for a client whose request may be gone: a live
// Socket.IO session asking again for its user's roles.
func (l *whoamiLookup) lookupFor(ctx context.Context, client security.Client, value, userID string) (*whoamiAnswer, error) {
	key := cookieKey(value)
	if a, ok := l.cache.Get(key); ok && now().Before(a.expires) {
		return a, nil
	}
	v, err, _ := l.misses.Do(string(key[:]), func() (any, error) {
		// A subrequest that ended between the Get above and Do.
		if a, ok := l.cache.Peek(key); ok && now().Before(a.expires) {
			return a, nil
		}
		// The requests sharing this call wait for it; the first one's
		// client going away must not cancel it for the others.
		a, err := l.fetch(context.WithoutCancel(ctx), value, userID)
		if err != nil {
			return nil, err
		}
		ttl := l.ttl
		if a.refused {
			ttl = l.negativeTTL
			security.LogClient(l.security, "flask_session", security.CookieInvalid, "whoami: "+a.reason, client, security.Fields{UserID: userID})
		}
		a.expires = now().Add(ttl)
		l.cache.Add(key, a)
		return a, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*whoamiAnswer), nil
}

// cookieKey is the cache key of a session cookie value: its SHA-256, so
// the cache never holds a cookie. The copy goes through a buffer on the
// stack (the verifier has already capped the length), so a hit does not
// allocate.
func cookieKey(value string) [sha256.Size]byte {
	var buf [flaskcookie.DefaultMaxCookieLen]byte
	return sha256.Sum256(append(buf[:0], value...))
}
