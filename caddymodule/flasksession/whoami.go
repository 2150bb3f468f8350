package flasksession

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/flaskedge/flaskedge/internal/flaskcookie"
)

// Whoami asks the app for the session's roles, for apps that keep roles
// in their database rather than in the session (Flask-Login apps usually
// do). For every request with a valid session cookie that names a user,
// the edge sends
//
//	GET <url>
//	Cookie: <cookie_name>=<the session cookie>
//
// and nothing else of the client's: no other cookie, no other header, no
// identity header. The app answers 200 with a JSON object
//
//	{"id": "7", "role": "admin"}      or      {"id": 7, "roles": ["admin", "ops"]}
//
// ("role" and "roles" may each be a string or a list of strings; both
// count, "role" first). The answer's roles replace the cookie's role. An
// "id" that is not the cookie's user id is a mismatch: the request is
// anonymous and a security event is logged. 401 or 403, or "id": null,
// means the app does not accept the session (a deleted or disabled user):
// the request is anonymous.
//
// Anything else fails closed: the endpoint unreachable, slower than
// Timeout, a redirect, another status, or a body that is not such an
// object makes the request fail with 503 (see FlaskSession), never
// continue with a role.
//
// Answers are cached, keyed by the SHA-256 of the cookie value (never
// the cookie), so the app sees at most one lookup per session per TTL.
// Concurrent misses for the same cookie share one subrequest. The cache
// survives config reloads that keep the whoami settings.
type Whoami struct {
	// URLs are the app's whoami endpoints, absolute http(s) URLs, tried
	// in order until one answers 200, 401 or 403: list the workers the
	// edge proxies to, or point it at a worker on loopback. Placeholders
	// known when the config loads ({env.X}, {file.X}) are resolved then.
	// At least one is required.
	URLs []string `json:"urls,omitempty"`

	// Timeout bounds each subrequest, from connecting to reading the
	// answer. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// TTL is how long an answer that names the user is used: a role
	// changed in the app's database takes effect at the edge within it.
	// Default: 30s.
	TTL caddy.Duration `json:"ttl,omitempty"`

	// NegativeTTL is how long a refusal (401, 403, "id": null, an id
	// mismatch) is used, so a user the app has just re-enabled is not
	// kept out for long. Default: 5s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`

	// CacheSize bounds the number of cached answers (least recently used
	// go first). Default: 10000.
	CacheSize int `json:"cache_size,omitempty"`

	// TLS is the trust of https URLs: reverse_proxy's TLS config with
	// its meaning (ca, server_name, client certificates,
	// insecure_skip_verify, logged as an error at every load), the same
	// settings socketio_proxy takes for its workers. With it every URL
	// must be https. Written in the Caddyfile as `whoami_transport http
	// { tls_trust_pool file ca.pem }`; flask_socketio writes it from its
	// own transport block. Default: none, https verified against the
	// system's roots.
	TLS *reverseproxy.TLSConfig `json:"tls,omitempty"`
}

const (
	defaultWhoamiTimeout     = caddy.Duration(2 * time.Second)
	defaultWhoamiTTL         = caddy.Duration(30 * time.Second)
	defaultWhoamiNegativeTTL = caddy.Duration(5 * time.Second)
	defaultWhoamiCacheSize   = 10000

	// maxWhoamiBody bounds the answer read; a whoami answer is tiny.
	maxWhoamiBody = 64 << 10
)

func (wc *Whoami) setDefaults() {
	if wc.Timeout == 0 {
		wc.Timeout = defaultWhoamiTimeout
	}
	if wc.TTL == 0 {
		wc.TTL = defaultWhoamiTTL
	}
	if wc.NegativeTTL == 0 {
		wc.NegativeTTL = defaultWhoamiNegativeTTL
	}
	if wc.CacheSize == 0 {
		wc.CacheSize = defaultWhoamiCacheSize
	}
}

func (wc *Whoami) validate() error {
	if len(wc.URLs) == 0 {
		return fmt.Errorf("flask_session: whoami has no URL; give the app's endpoint, e.g. http://127.0.0.1:5001/api/whoami")
	}
	for name, d := range map[string]caddy.Duration{"timeout": wc.Timeout, "ttl": wc.TTL, "negative_ttl": wc.NegativeTTL} {
		if d < 0 {
			return fmt.Errorf("flask_session: whoami %s %s is negative", name, time.Duration(d))
		}
	}
	if wc.CacheSize < 0 {
		return fmt.Errorf("flask_session: whoami cache_size %d is negative", wc.CacheSize)
	}
	return nil
}

// checkWhoamiURL says what is wrong with a whoami URL, if anything.
// Placeholders are checked once resolved.
func checkWhoamiURL(raw string) error {
	if strings.Contains(raw, "{") {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("whoami URL %q: %v", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("whoami URL %q is not an absolute http(s) URL; write e.g. http://127.0.0.1:5001/api/whoami", raw)
	}
	if u.Fragment != "" {
		return fmt.Errorf("whoami URL %q has a fragment; remove it", raw)
	}
	return nil
}

// whoamiAnswer is what the app said about one session.
type whoamiAnswer struct {
	// refused is set when the app does not accept the session (401,
	// 403, "id": null) or answered for another user; reason says which.
	refused bool
	reason  string
	// metadata is the caddyauth metadata of the session, shared by every
	// request of the session: caddyauth only reads it.
	metadata map[string]string
	roles    []string
	expires  time.Time
}

// errWhoamiUnavailable marks every failure that makes a request fail
// closed with 503.
var errWhoamiUnavailable = errors.New("whoami lookup failed, answered 503")

// fetch asks the app about the session cookie value of user userID,
// trying each URL in turn until one answers for it.
func (l *whoamiLookup) fetch(ctx context.Context, value, userID string) (*whoamiAnswer, error) {
	var failures []string
	for i, u := range l.urls {
		a, err := l.ask(ctx, u, value, userID)
		if err == nil {
			return a, nil
		}
		failures = append(failures, fmt.Sprintf("GET %s: %v", l.shown[i], err))
	}
	return nil, fmt.Errorf("flask_session: %w (fail closed): %s", errWhoamiUnavailable, strings.Join(failures, "; "))
}

func (l *whoamiLookup) ask(ctx context.Context, u, value, userID string) (*whoamiAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	// Only the session cookie: the cache key covers exactly what the app
	// is told, so a cached answer is the answer.
	req.Header["Cookie"] = []string{l.cookieName + "=" + value}
	req.Header["Accept"] = []string{"application/json"}
	req.Header["User-Agent"] = []string{"flaskedge-whoami"}
	res, err := l.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is already in the message, redacted
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer within %s", l.timeout)
		}
		return nil, fmt.Errorf("unreachable: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxWhoamiBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %v", err)
	}
	switch {
	case res.StatusCode == http.StatusOK:
		if len(body) > maxWhoamiBody {
			return nil, fmt.Errorf("answer over %d bytes", maxWhoamiBody)
		}
		return parseWhoami(body, userID)
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return &whoamiAnswer{refused: true, reason: fmt.Sprintf("the app refused the session (%d)", res.StatusCode)}, nil
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return nil, fmt.Errorf("answered %s, a redirect; the endpoint must answer 401 for an unknown session, not send it to a login page", res.Status)
	default:
		return nil, fmt.Errorf("answered %s", res.Status)
	}
}

// parseWhoami reads a 200 answer for the session of user userID.
func parseWhoami(body []byte, userID string) (*whoamiAnswer, error) {
	var ans struct {
		ID    json.RawMessage `json:"id"`
		Role  json.RawMessage `json:"role"`
		Roles json.RawMessage `json:"roles"`
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, fmt.Errorf(`answer is not a JSON object like {"id": ..., "role": ...}`)
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("answer is not JSON: %v", err)
	}
	for _, raw := range []json.RawMessage{ans.ID, ans.Role, ans.Roles} {
		// encoding/json would read "\ud800" as "\ufffd", another id
		// or role than the app's (see flaskcookie.HasLoneSurrogate).
		if flaskcookie.HasLoneSurrogate(raw) {
			return nil, fmt.Errorf("answer has an unpaired UTF-16 surrogate (\\ud800 to \\udfff) in its id or roles, which UTF-8 cannot carry")
		}
	}
	id, err := whoamiID(ans.ID)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return &whoamiAnswer{refused: true, reason: `the app refused the session ("id": null)`}, nil
	}
	if *id != userID {
		// The ids are the app's own user ids; the cookie is never logged.
		return &whoamiAnswer{refused: true, reason: fmt.Sprintf("whoami answered for user %q, the session is user %q", *id, userID)}, nil
	}
	var roles []string
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"role", ans.Role}, {"roles", ans.Roles}} {
		rs, err := whoamiRoles(f.raw)
		if err != nil {
			return nil, fmt.Errorf("answer's %q is %v; want a string or a list of strings", f.name, err)
		}
		for _, r := range rs {
			if !contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	if err := flaskcookie.CheckCarriable(userID, roles); err != nil {
		var fe *flaskcookie.Error
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("answer's %s", fe.Detail)
		}
		return nil, err
	}
	return &whoamiAnswer{
		roles:    roles,
		metadata: map[string]string{"role": strings.Join(roles, ","), "session": "valid"},
	}, nil
}

// whoamiID reads "id": a string or an integer (as Python's str() would
// print it, so 7 matches the cookie's "7"); nil for null.
func whoamiID(raw json.RawMessage) (*string, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf(`answer has no "id"; want {"id": <the user id>, "role": ...}`)
	}
	if string(raw) == "null" {
		return nil, nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf(`answer's "id": %v`, err)
		}
		return &s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf(`answer's "id" is %s; want a string or an integer`, jsonKind(raw))
	}
	if _, err := n.Int64(); err != nil {
		return nil, fmt.Errorf(`answer's "id" %s is not an integer`, n)
	}
	s = n.String()
	return &s, nil
}

func whoamiRoles(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, err
		}
		list := make([]string, len(elems))
		for i, e := range elems {
			// Unmarshal would read null as "".
			if e[0] != '"' || json.Unmarshal(e, &list[i]) != nil {
				return nil, errors.New("a list with a non-string")
			}
		}
		return list, nil
	}
	return nil, errors.New(jsonKind(raw))
}

func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
