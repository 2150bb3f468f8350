package socketioproxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/engineio"
)

// servePolling relays one long-polling request: a GET that receives
// packets (or opens the session) or a POST that sends them.
func (h *Handler) servePolling(w http.ResponseWriter, r *http.Request, q engineio.Query, up *upstream) {
	var body []byte
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		if q.Handshake() {
			h.refuse(w, r, engineio.CodeBadHandshakeMethod, "malformed", "a handshake must be a GET")
			return
		}
		var err error
		if body, err = h.readBody(r); err != nil {
			if errors.Is(err, errTooLarge) {
				// Read on a little, so a client that sends a slightly
				// too large body sees the 413 rather than a reset.
				_, _ = io.CopyN(io.Discard, r.Body, drainLimit)
				h.refuseTooLarge(w, r)
				return
			}
			h.logDebug("client went away while sending", r, err)
			return
		}
		if err := engineio.Packets(body, func([]byte) error { return nil }); err != nil {
			h.refuse(w, r, engineio.CodeBadRequest, "malformed", "polling body: "+err.Error())
			return
		}
	default:
		h.refuse(w, r, engineio.CodeBadHandshakeMethod, "malformed", "method "+r.Method+" is not GET or POST")
		return
	}

	out, err := http.NewRequestWithContext(r.Context(), r.Method, up.httpURL(r.URL.RequestURI()), bytes.NewReader(body))
	if err != nil {
		h.refuse(w, r, engineio.CodeBadRequest, "malformed", err.Error())
		return
	}
	if body == nil {
		out.Body = nil
	}
	out.Header = upstreamHeader(r, false)
	out.Host = r.Host
	res, err := up.http.RoundTrip(out)
	if err != nil {
		if r.Context().Err() != nil {
			h.logDebug("client went away during a poll", r, err)
			return
		}
		h.upstreamFailed(w, r, q, up, err)
		return
	}
	defer res.Body.Close()

	removeHopHeaders(res.Header)
	copyHeader(w.Header(), res.Header)
	w.WriteHeader(res.StatusCode)
	if _, err := io.Copy(w, res.Body); err != nil {
		h.logDebug("poll response cut short", r, err)
	}
}

var errTooLarge = errors.New("body exceeds max_payload")

// drainLimit is how much of a refused body the edge reads and discards.
const drainLimit = 256 << 10

// readBody reads a polling POST body whole, up to MaxPayload, so that what
// the worker receives is exactly what the edge checked.
func (h *Handler) readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > h.MaxPayload {
		return nil, errTooLarge
	}
	size := r.ContentLength
	if size < 0 {
		size = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, h.MaxPayload+1))
	if err != nil {
		return nil, err
	}
	if n > h.MaxPayload {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// refuseTooLarge answers a body over MaxPayload as the reference server
// does, with 413.
func (h *Handler) refuseTooLarge(w http.ResponseWriter, r *http.Request) {
	if c := h.logger.Check(zapcore.InfoLevel, "refused Engine.IO request"); c != nil {
		c.Write(zap.String("reason", "size"), zap.Int64("max_payload", h.MaxPayload),
			zap.String("remote_ip", clientIP(r)), zap.String("uri", r.URL.Path))
	}
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
}

// upstreamFailed answers a request whose worker could not be reached. A
// request of an existing session gets "Session ID unknown", so the client
// opens a new session at once instead of retrying a worker that is gone; a
// handshake gets 502, which the client retries with its backoff.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, q engineio.Query, up *upstream, err error) {
	h.logger.Warn("Socket.IO worker unreachable",
		zap.String("upstream", up.addr), zap.String("remote_ip", clientIP(r)), zap.Error(err))
	if !q.Handshake() {
		engineio.WriteError(w, engineio.CodeSessionIDUnknown)
		return
	}
	body := []byte(`{"code":3,"message":"No Socket.IO worker is reachable"}`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write(body)
}

func (h *Handler) logDebug(msg string, r *http.Request, err error) {
	if c := h.logger.Check(zapcore.DebugLevel, msg); c != nil {
		c.Write(zap.String("remote_ip", clientIP(r)), zap.String("uri", r.URL.Path), zap.Error(err))
	}
}
