package socketioproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/park"
	"github.com/flaskedge/flaskedge/internal/security"
	"github.com/flaskedge/flaskedge/internal/socketio"
)

// servePolling relays one long-polling request: a GET that receives
// packets (or opens the session) or a POST that sends them.
func (h *Handler) servePolling(w http.ResponseWriter, c *call) {
	r := c.r
	var body, accepted []byte
	var clientAtt attachments // the client's attachments once the worker takes the body
	closing := false
	if r.Method == http.MethodPost {
		var err error
		// A body must arrive within BodyTimeout, so a client trickling
		// it a byte at a time holds nothing for long.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Duration(h.BodyTimeout)))
		if body, err = readBody(r, c.pol.maxPayload); err != nil {
			if errors.Is(err, errTooLarge) {
				// Read on, up to as much again, so a client that sends
				// a too large body sees the 413 rather than a reset.
				_, _ = io.CopyN(io.Discard, r.Body, c.pol.maxPayload)
				h.refuseTooLarge(w, c, c.pol.maxPayload)
				return
			}
			h.logger.Info("polling body not received", zap.String("remote_ip", c.client.IP), zap.Error(err))
			security.Refused(security.ReasonMalformed)
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		if h.slot != nil {
			// The body may have arrived across a reload: its packets
			// are checked with the policy of the moment.
			c.pol = h.slot.now(c.pol)
		}
		packets, messages := 0, 0
		err = engineio.Packets(body, func(p []byte) error {
			packets++
			// A "b" record is a message too, as a binary frame is on
			// WebSocket: python-socketio reads it (see counts).
			if counts(p, false) {
				messages++
			}
			closing = closing || engineio.PacketType(p[0]) == engineio.Close
			return nil
		})
		count(true, false, packets, int64(len(body)))
		if err == nil && messages > 0 && h.buckets != nil && h.RateLimits.Messages != nil {
			if ok, _ := h.buckets.take("m:"+c.sid, h.RateLimits.Messages, messages); !ok {
				h.closeForRate(w, c)
				return
			}
		}
		var owed [][]byte
		if err == nil {
			// Every packet is read as python-socketio will read it;
			// with namespace rules a denied CONNECT is replaced, and
			// a packet to a namespace the user may no longer use
			// becomes its DISCONNECT, owed to the client too.
			att, _ := h.registry.attachmentsOf(c.sid)
			var checked []byte
			checked, owed, err = h.checkPayload(c.pol, c.client, c.id, body, &att)
			if err == nil && h.mustEnd(c.pol, c.sid, c.id.At(time.Now()), c.client) {
				h.endPollingSession(w, c)
				return
			}
			if err == nil && c.pol.hasRules() {
				// Namespaces withdrawn since: the worker is told after
				// this body's packets, once it awaits no attachment
				// that would swallow the DISCONNECT.
				if gone := h.withdraw(c.pol, c.sid, c.id.At(time.Now()), c.client); len(gone) > 0 {
					if att.pending > 0 {
						h.endPollingSession(w, c)
						return
					}
					checked = bytes.Join(append([][]byte{checked}, gone...), []byte{engineio.RecordSeparator})
					owed = append(owed, gone...)
				}
			}
			clientAtt = att
			accepted = body
			body = checked
		}
		if err != nil {
			h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "polling body: "+err.Error())
			return
		}
		if len(owed) > 0 {
			h.registry.owe(c.sid, owed...)
		}
	}

	if r.Method == http.MethodGet && c.sid != "" && h.withdrawPolling(w, c) {
		return
	}
	if r.Method == http.MethodGet && c.sid != "" && h.parkPoll(w, c) {
		return
	}
	ctx := r.Context()
	forget := func() {}
	if r.Method == http.MethodGet && c.sid != "" {
		// A waiting poll ends with an Engine.IO close packet when the
		// process exits, so its client reconnects at once, and when its
		// worker is drained past its drain_timeout; and with 429 when
		// the session is closed for its message rate (closeForRate).
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		defer context.AfterFunc(h.registry.draining, func() { cancel(nil) })()
		defer context.AfterFunc(c.up.cutOff(), func() { cancel(nil) })()
		defer context.AfterFunc(c.up.retired, func() { cancel(nil) })()
		forget = h.registry.waiting(c.sid, cancel)
	}
	// A handshake's answer must come within dial_timeout, as a
	// WebSocket handshake's must: a worker that accepts and never
	// answers (its event loop blocked, say) is taken out of rotation
	// and the handshake goes to another, before its client gives up
	// (socket.io-client waits 20 s, then tries again, likely on the
	// same worker). Nothing is lost: no session exists yet.
	reqCtx := ctx
	if r.Method == http.MethodGet && c.sid == "" {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeoutCause(ctx, time.Duration(h.DialTimeout), errHandshakeUnanswered)
		defer cancel()
	}
	out, err := http.NewRequestWithContext(reqCtx, r.Method, c.up.httpURL(c.uri), bytes.NewReader(body))
	if err != nil {
		h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, err.Error())
		return
	}
	if body == nil {
		out.Body = nil
	}
	out.Header = upstreamHeader(r, false)
	out.Host = r.Host
	res, err := c.up.poll.RoundTrip(out)
	for err != nil && h.nextForHandshake(c, err) {
		retryCtx, cancel := context.WithTimeoutCause(r.Context(), time.Duration(h.DialTimeout), errHandshakeUnanswered)
		defer cancel() // one per worker tried
		out = out.Clone(retryCtx)
		out.URL, _ = url.Parse(c.up.httpURL(c.uri))
		res, err = c.up.poll.RoundTrip(out)
	}
	// Only a GET still waiting at the worker is ended early, never one
	// whose answer is on its way.
	forget()
	h.answerPoll(w, c, ctx, res, err, pollSent{closing: closing, accepted: accepted, clientAtt: clientAtt})
}

// errHandshakeUnanswered is why a polling handshake was given up.
var errHandshakeUnanswered = errors.New("no answer to the handshake within dial_timeout")

// pollSent is what a POST carried, for its answer.
type pollSent struct {
	closing   bool   // a close packet
	accepted  []byte // the body as the client sent it, once checked
	clientAtt attachments
}

// answerPoll answers a polling request once its worker answered (res) or
// could not be asked (err; ctx is the request's, whose cause says why a
// waiting GET was ended early).
func (h *Handler) answerPoll(w http.ResponseWriter, c *call, ctx context.Context, res *http.Response, err error, sent pollSent) {
	r := c.r
	closing, accepted, clientAtt := sent.closing, sent.accepted, sent.clientAtt
	if err != nil {
		var rc *rateClosed
		if errors.As(context.Cause(ctx), &rc) && !c.gone() {
			h.answerRateClosed(w, rc.wait)
			return
		}
		if (h.registry.draining.Err() != nil || c.up.cutOff().Err() != nil || c.up.retired.Err() != nil) && !c.gone() {
			if h.registry.draining.Err() == nil {
				// The worker stays up: end the session there too.
				h.tellWorker(c, []byte{byte(engineio.Close)})
				h.registry.closed(c.sid)
			}
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte{byte(engineio.Close)})
			return
		}
		if c.gone() {
			h.logDebug("client went away during a poll", c, err)
			return
		}
		if errors.Is(err, park.ErrWake) {
			// The edge's failure, not the worker's: it stays in
			// rotation. The worker's answer is lost with the
			// connection: the session ends, and its client opens
			// another.
			h.logger.Error("the worker's connection of a waiting GET could not be woken; the session ends (is the edge out of file descriptors?)",
				zap.String("upstream", c.up.addr), zap.String("remote_ip", c.client.IP), zap.Error(err))
			h.registry.closed(c.sid)
			engineio.WriteError(w, engineio.CodeSessionIDUnknown)
			return
		}
		h.upstreamFailed(w, c, err)
		return
	}
	defer res.Body.Close()

	switch {
	case c.sid == "":
		h.relayHandshake(w, c, res)
		return
	case res.StatusCode == http.StatusBadRequest:
		// The worker no longer knows the session.
		h.registry.closed(c.sid)
	case closing && res.StatusCode == http.StatusOK:
		h.registry.closed(c.sid)
	case accepted != nil && res.StatusCode == http.StatusOK:
		// The worker took the body: its DISCONNECTs and attachments
		// count now. (python-engineio answers 200 to a body it could
		// not decode too; then the count errs on the side of closing.)
		h.registry.setClientAttachments(c.sid, clientAtt)
		_ = engineio.Packets(accepted, func(p []byte) error {
			h.followClient(c.sid, p)
			return nil
		})
	}
	removeHopHeaders(res.Header)
	if r.Method == http.MethodGet && h.slot != nil {
		// A long-poll may have waited at the worker across a reload:
		// what it relays follows the policy of the moment, as a
		// WebSocket's messages do.
		c.pol = h.slot.now(c.pol)
	}
	if c.pol.hasRules() && r.Method == http.MethodGet && res.StatusCode == http.StatusOK {
		h.relayPollWithDenials(w, c, res)
		return
	}
	copyHeader(w.Header(), res.Header)
	keep := r.Method == http.MethodPost && keptAlive(r) && res.ContentLength >= 0
	if keep {
		// The connection may be parked once the answer is written: it
		// must say its length.
		w.Header().Set("Content-Length", strconv.FormatInt(res.ContentLength, 10))
	}
	w.WriteHeader(res.StatusCode)
	if res.StatusCode != http.StatusOK || r.Method != http.MethodGet {
		n, err := io.Copy(w, res.Body)
		if keep {
			c.keep = err == nil && n == res.ContentLength
		}
		return
	}
	pw := &pollWatcher{w: w, sid: c.sid, registry: h.registry, whole: true,
		head: make([]byte, 0, maxNamespaceHead), max: c.pol.maxPayload}
	buf := pollBuffers.Get().(*[]byte)
	_, err = io.CopyBuffer(pw, res.Body, *buf)
	pollBuffers.Put(buf)
	if err != nil {
		h.logDebug("poll response cut short", c, err)
	}
	pw.done()
}

// pollBuffers lend the buffer a long-poll response is copied through:
// io.Copy would allocate 32 KiB for every poll (pollWatcher is no
// io.ReaderFrom), which a profile of the polling benchmark showed as a
// tenth of the edge's polling CPU, in allocation and GC.
var pollBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// pollWatcher passes a long-poll response to the client as it streams,
// counting its packets and bytes and following the session's namespaces
// from the start of each packet.
type pollWatcher struct {
	w        io.Writer
	sid      string
	registry *registry
	packets  int
	size     int64
	// head is the start of the packet being streamed: its first
	// maxNamespaceHead bytes and, for a CONNECT reply or a DISCONNECT,
	// up to the comma that ends its namespace (at most max bytes: the
	// worker only names namespaces clients asked for, in packets no
	// larger).
	head  []byte
	max   int64
	whole bool // the packet being streamed fits in head so far
}

// maxNamespaceHead is how much of every packet pollWatcher keeps: "40",
// a namespace of usual length and its comma.
const maxNamespaceHead = 256

func (pw *pollWatcher) Write(p []byte) (int, error) {
	pw.size += int64(len(p))
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, engineio.RecordSeparator)
		part := rest
		if i >= 0 {
			part = rest[:i]
		}
		pw.keep(part)
		if i < 0 {
			break
		}
		pw.endPacket()
		rest = rest[i+1:]
	}
	return pw.w.Write(p)
}

// keep adds what head needs of the next bytes of the packet.
func (pw *pollWatcher) keep(part []byte) {
	n := min(len(part), max(0, maxNamespaceHead-len(pw.head)))
	pw.head = append(pw.head, part[:n]...)
	part = part[n:]
	if len(part) > 0 && pw.namespaceRunsOn() {
		m := len(part)
		if c := bytes.IndexByte(part, ','); c >= 0 {
			m = c + 1
		}
		m = int(min(int64(m), max(0, pw.max-int64(len(pw.head)))))
		pw.head = append(pw.head, part[:m]...)
		part = part[m:]
	}
	pw.whole = pw.whole && len(part) == 0
}

// namespaceRunsOn reports whether head is a CONNECT reply or DISCONNECT
// whose namespace has not ended within it.
func (pw *pollWatcher) namespaceRunsOn() bool { return socketio.NamespaceRunsOn(pw.head) }

func (pw *pollWatcher) endPacket() {
	pw.packets++
	pw.registry.follow(pw.sid, pw.head, pw.whole)
	pw.head, pw.whole = pw.head[:0], true
}

func (pw *pollWatcher) done() {
	if pw.size > 0 {
		pw.endPacket()
		count(false, false, pw.packets, pw.size)
	}
}

// closeForRate ends a polling session over its message rate: the client
// gets 429 with Retry-After on this POST and on its waiting GET, and the
// worker a close packet instead of the messages. The GET is answered by
// the edge before the worker hears of it: the worker would end it with
// an empty poll, which a client that saw it first would take for a lost
// worker, and reconnect at once instead of waiting.
func (h *Handler) closeForRate(w http.ResponseWriter, c *call) {
	wait := time.Duration(h.RateLimits.Messages.Window)
	h.registry.endPoll(c.sid, &rateClosed{wait})
	h.tooMany(w, c, wait, "session over its message rate "+h.RateLimits.Messages.String()+"; closed")
	h.tellWorker(c, []byte{byte(engineio.Close)})
	h.registry.closed(c.sid)
}

// rateClosed is why the edge ended a waiting GET: its session was closed
// for its message rate.
type rateClosed struct{ wait time.Duration }

func (*rateClosed) Error() string { return "session closed for its message rate" }

// answerRateClosed answers the waiting GET of a session closed for its
// message rate as its POST was answered (counted and logged once, there).
func (h *Handler) answerRateClosed(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", retryAfterSeconds(wait))
	writeJSON(w, http.StatusTooManyRequests, tooManyBody(wait))
}

// maxRewrittenPoll bounds the long-poll response the edge reads whole to
// find the worker's answers to denial CONNECTs; python-engineio builds
// each response in memory, so this only caps what the edge holds.
const maxRewrittenPoll = 64 << 20

// relayPollWithDenials passes a long-poll response with the worker's
// answers to denial CONNECTs turned into the client's CONNECT_ERRORs.
func (h *Handler) relayPollWithDenials(w http.ResponseWriter, c *call, res *http.Response) {
	body, err := io.ReadAll(io.LimitReader(res.Body, maxRewrittenPoll+1))
	if err != nil {
		h.logDebug("poll response cut short", c, err)
		return
	}
	if len(body) > maxRewrittenPoll {
		h.logger.Error("long-poll response too large to check", zap.Int("limit", maxRewrittenPoll))
		writeJSON(w, http.StatusBadGateway, `{"code":3,"message":"Poll response too large"}`)
		return
	}
	body = fixDenialReplies(body)
	if filtered := h.filterWorkerPoll(c, body); filtered != nil {
		body = filtered
	}
	if len(body) > 0 {
		packets := 0
		_ = engineio.Packets(body, func(p []byte) error {
			packets++
			h.registry.follow(c.sid, p, true)
			return nil
		})
		count(false, false, packets, int64(len(body)))
	}
	copyHeader(w.Header(), res.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

var errTooLarge = errors.New("body exceeds max_payload")

// readBody reads a polling POST body whole, up to max bytes, so that what
// the worker receives is exactly what the edge checked. The buffer grows
// with the bytes that arrive, never with what Content-Length announces:
// a client that announces a large body and sends nothing makes the edge
// hold nothing.
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, errTooLarge
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// refuseTooLarge answers a body over MaxPayload as the reference server
// does, with 413.
func (h *Handler) refuseTooLarge(w http.ResponseWriter, c *call, max int64) {
	security.Refused(security.ReasonSize)
	if ce := h.logger.Check(zapcore.InfoLevel, "refused Engine.IO request"); ce != nil {
		ce.Write(zap.String("reason", "size"), zap.Int64("max_payload", max),
			zap.String("remote_ip", c.client.IP), zap.String("uri", c.r.URL.Path))
	}
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
}

func (h *Handler) logDebug(msg string, c *call, err error) {
	if ce := h.logger.Check(zapcore.DebugLevel, msg); ce != nil {
		ce.Write(zap.String("remote_ip", c.client.IP), zap.String("uri", c.r.URL.Path), zap.Error(err))
	}
}
