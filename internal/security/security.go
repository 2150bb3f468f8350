// Package security writes the edge's security events: one structured log
// line per decision that refused or downgraded a client, on one named
// logger, so that fail2ban or a SIEM can follow a single stream.
//
// Every event is logged at WARN on the logger named "flaskedge.security"
// with the message "security event" and these fields:
//
//	event      what happened, one of the Event constants
//	reason     why, in a few words
//	remote_ip  the client address as Caddy determined it (trusted_proxies honoured)
//	origin     the request's Origin header, if any
//	user_id    the verified user id, if any (never a cookie)
//	namespace  the Socket.IO namespace, if any
//	module     the edge module that decided
//
// A fail2ban filter can match on
//
//	"logger":"flaskedge.security".*"remote_ip":"<HOST>"
//
// Whatever the log level, the last RecentPerEvent events of each Event
// are also kept in memory (see Recent), where the socketio_dashboard
// reads them: a flood of one event does not hide a rarer one.
package security

import (
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Event names a kind of security decision.
type Event string

// The events the edge logs.
const (
	OriginRefused   Event = "origin_refused"
	CookieInvalid   Event = "cookie_invalid"
	CookieExpired   Event = "cookie_expired"
	RoleDenied      Event = "role_denied"
	NamespaceDenied Event = "namespace_denied"
	RateLimited     Event = "rate_limited"
	SIDTampered     Event = "sid_tampered"
	// IdentityMismatch: a request of an Engine.IO session carried
	// another user than the one who opened the session.
	IdentityMismatch Event = "identity_mismatch"
	MalformedRequest Event = "malformed"
	PayloadTooLarge  Event = "payload_too_large"
	// RecoveryRefused: a reconnecting client presented a pid that did
	// not recover a held session (forged, another user's, expired, or
	// another edge's); it got a new session.
	RecoveryRefused Event = "recovery_refused"
)

// events lists every Event constant above; Recent keeps a ring for each
// (TestEveryEventHasItsOwnRing checks that none is missing).
var events = [...]Event{OriginRefused, CookieInvalid, CookieExpired, RoleDenied, NamespaceDenied,
	RateLimited, SIDTampered, IdentityMismatch, MalformedRequest, PayloadTooLarge, RecoveryRefused}

// LoggerName is the name of the security logger.
const LoggerName = "flaskedge.security"

// Logger returns the security logger. Call it in Provision: it follows
// Caddy's logging config of the moment.
func Logger() *zap.Logger { return caddy.Log().Named(LoggerName) }

// Fields are the optional parts of an event.
type Fields struct {
	Origin    string
	UserID    string
	Namespace string
}

// Client is who a request came from, as events name it. A WebSocket
// relay keeps it for the connection's life, after its request is gone.
type Client struct {
	IP     string
	Origin string
}

// ClientOf is the client of request r.
func ClientOf(r *http.Request) Client {
	return Client{IP: ClientIP(r), Origin: r.Header.Get("Origin")}
}

// Log writes one event for request r.
func Log(l *zap.Logger, module string, ev Event, reason string, r *http.Request, f Fields) {
	LogClient(l, module, ev, reason, ClientOf(r), f)
}

// LogClient writes one event for client c.
func LogClient(l *zap.Logger, module string, ev Event, reason string, c Client, f Fields) {
	origin := f.Origin
	if origin == "" {
		origin = c.Origin
	}
	remember(Record{Time: now(), Event: ev, Reason: reason, RemoteIP: c.IP, Origin: origin,
		UserID: f.UserID, Namespace: f.Namespace, Module: module})
	ce := l.Check(zapcore.WarnLevel, "security event")
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 7)
	fields = append(fields,
		zap.String("event", string(ev)),
		zap.String("reason", reason),
		zap.String("remote_ip", c.IP),
		zap.String("module", module),
	)
	if origin != "" {
		fields = append(fields, zap.String("origin", origin))
	}
	if f.UserID != "" {
		fields = append(fields, zap.String("user_id", f.UserID))
	}
	if f.Namespace != "" {
		fields = append(fields, zap.String("namespace", f.Namespace))
	}
	ce.Write(fields...)
}

// ClientIP is the client address Caddy determined for r, honouring the
// server's trusted_proxies, or the connection's peer address.
func ClientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
