package socketioproxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/engineio"
	"github.com/flaskedge/flaskedge/internal/relay"
	"github.com/flaskedge/flaskedge/internal/security"
)

// serveBridged serves one Engine.IO request of a handler with Recover:
// the edge is the Engine.IO server (see bridge).
func (h *Handler) serveBridged(w http.ResponseWriter, c *call) {
	if c.sid == "" {
		h.openBridge(w, c)
		return
	}
	b := bridges.lookup(c.sid)
	if b == nil {
		// Another edge's session, or one that ended: the client opens
		// a new one on this answer.
		h.refuse(w, c, engineio.CodeSessionIDUnknown, security.ReasonSID, "no session for this sid on this edge")
		return
	}
	if !b.servesSID(c.sid) {
		// The client's earlier Engine.IO session, whose Socket.IO
		// session a newer one recovered.
		h.refuse(w, c, engineio.CodeSessionIDUnknown, security.ReasonSID, "the session was recovered by the client's newer one")
		return
	}
	switch {
	case c.q.Transport == engineio.WebSocket:
		b.upgradeClient(w, c)
	case c.r.Method == http.MethodGet:
		b.poll(w, c)
	default:
		b.post(w, c)
	}
}

// workerURI is the URI of the worker's WebSocket for a handshake that
// came on transport polling: the same path and query, transport=websocket.
func workerURI(c *call) string {
	if c.q.Transport == engineio.WebSocket {
		return c.uri
	}
	path, query, _ := strings.Cut(c.uri, "?")
	params := strings.Split(query, "&")
	for i, p := range params {
		if p == "transport=polling" {
			params[i] = "transport=websocket"
		}
	}
	return path + "?" + strings.Join(params, "&")
}

// openBridge opens a session: the worker's WebSocket first (its refusal
// reaches the client as its reply), then the client's side on the
// transport it asked for.
func (h *Handler) openBridge(w http.ResponseWriter, c *call) {
	r := c.r
	upConn, res, ok := h.dialWorker(w, c, workerURI(c))
	if !ok {
		return
	}
	_ = upConn.SetReadDeadline(time.Now().Add(time.Duration(h.DialTimeout)))
	mt, first, err := upConn.ReadMessage()
	_ = upConn.SetReadDeadline(time.Time{})
	// The bridge reads the worker through gorilla for the session's life.
	stopRecording(upConn)
	if err == nil && mt != websocket.TextMessage {
		err = errors.New("first message is not text")
	}
	var o engineio.OpenPacket
	if err == nil {
		o, err = engineio.ParseOpen(first)
	}
	var open []byte
	if err == nil {
		transport := "polling"
		if c.q.Transport == engineio.WebSocket {
			transport = "websocket"
		}
		open, err = h.opened(c, first, transport)
	}
	var upgrades []string
	if c.q.Transport == engineio.Polling {
		upgrades = []string{"websocket"}
	}
	if err == nil {
		open, err = openFor(open, c.sid, upgrades)
	}
	if err != nil {
		upConn.Close()
		if c.sid != "" {
			h.registry.closed(c.sid)
		}
		h.unreadableHandshake(w, c, err)
		return
	}
	var respHeader http.Header
	if cookies := res.Header.Values("Set-Cookie"); len(cookies) > 0 {
		respHeader = http.Header{"Set-Cookie": cookies}
	}
	if c.q.Transport == engineio.WebSocket {
		clientConn, err := upgrader.Upgrade(hijacker{w}, r, respHeader)
		if err != nil {
			upConn.Close()
			h.registry.closed(c.sid)
			return
		}
		b := h.newBridge(c, upConn, o)
		cs := &clientSocket{conn: clientConn}
		cs.b.Store(b)
		if err := cs.write(eioPacket{data: open}); err != nil {
			b.end("client unreachable", websocket.CloseGoingAway)
			clientConn.Close()
			return
		}
		b.mu.Lock()
		b.ws, b.upgraded = cs, true
		b.mu.Unlock()
		go h.readClient(cs)
		return
	}
	h.newBridge(c, upConn, o)
	copyHeader(w.Header(), respHeader)
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(open)
}

// readClient reads the client's WebSocket until it closes, passing each
// message to the bridge it feeds now.
func (h *Handler) readClient(cs *clientSocket) {
	var err error
	defer func() {
		if cs.closing.Load() {
			// The grace began with the close frame (see close).
			relay.Drain(cs.conn, err)
			return
		}
		relay.Linger(cs.conn, err, controlWait)
	}()
	for {
		var (
			mt  int
			msg []byte
		)
		mt, msg, err = readLimited(cs.conn, func() int64 { return cs.b.Load().pol().maxPayload })
		if err == nil && cs.closing.Load() {
			continue
		}
		b := cs.b.Load()
		if errors.Is(err, websocket.ErrReadLimit) {
			// Refused from the frame that crosses the limit: the
			// message never reaches the worker, and the session ends
			// (it is not held: the client broke a rule).
			h.refusedMessageSize(b.client, b.pol().maxPayload)
			b.end("", websocket.CloseMessageTooBig)
			cs.close(websocket.CloseMessageTooBig, "")
			return
		}
		if err != nil {
			b.clientGone(cs, err)
			return
		}
		count(true, true, 1, int64(len(msg)))
		if err := b.fromClient(eioPacket{data: msg, binary: mt == websocket.BinaryMessage}); err != nil {
			var over *overRate
			if !errors.As(err, &over) {
				security.Refused(security.ReasonMalformed)
			}
			b.end(err.Error(), websocket.ClosePolicyViolation)
			return
		}
	}
}

// readLimited reads one message of at most limit() bytes, asked as the
// message begins, so that a limit a reload lowered applies from the next
// message on; the buffer grows with the bytes that arrive.
func readLimited(conn *websocket.Conn, limit func() int64) (int, []byte, error) {
	max := limit()
	conn.SetReadLimit(max)
	mt, r, err := conn.NextReader()
	if err != nil {
		return 0, nil, err
	}
	if now := limit(); now != max {
		max = now
		conn.SetReadLimit(max)
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return 0, nil, err
	}
	if n > max {
		return 0, nil, websocket.ErrReadLimit
	}
	return mt, buf.Bytes(), nil
}

// poll answers a client's GET with the packets waiting for it, or waits
// for some.
func (b *bridge) poll(w http.ResponseWriter, c *call) {
	b.mu.Lock()
	if b.getting || b.ws != nil {
		b.mu.Unlock()
		b.h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "a second GET of the session while one is in flight, or a poll of an upgraded session")
		return
	}
	b.getting = true
	if b.pollCut != nil {
		b.pollCut.Stop()
	}
	b.mu.Unlock()
	cur := b
	if !b.resumeInPlace(c.sid) {
		// Ended, recovered by a newer session, or a WebSocket's: the
		// client opens a new session on the close packet.
		b.mu.Lock()
		b.getting = false
		b.mu.Unlock()
		writePoll(w, []eioPacket{{data: []byte{byte(engineio.Close)}}})
		return
	}
	// The session's rights are those of the client's cookie as of this
	// request, as on an unbridged polling session.
	b.live.rebase(c.id)
	defer func() {
		cur.mu.Lock()
		cur.getting = false
		cur.mu.Unlock()
		// A polling client polls again as soon as it has read the
		// answer; one that does not is gone (its network, most
		// likely, without a word).
		cur.armPollCut()
	}()
	for {
		cur.mu.Lock()
		switch {
		case cur.ended && cur.overRate != nil:
			over := cur.overRate
			cur.mu.Unlock()
			b.h.answerRateClosed(w, over.wait)
			return
		case cur.ended || cur.current != c.sid:
			// Ended, or recovered by the client's newer session.
			cur.mu.Unlock()
			writePoll(w, []eioPacket{{data: []byte{byte(engineio.Close)}}})
			return
		case cur.ws != nil || (cur.probing && len(cur.queue) == 0):
			// Upgraded or upgrading: this poll ends with a noop, so
			// the client can pause polling and finish the upgrade.
			cur.mu.Unlock()
			writePoll(w, []eioPacket{{data: []byte{byte(engineio.Noop)}}})
			return
		case len(cur.queue) > 0:
			q := cur.queue
			cur.queue, cur.queued = nil, 0
			cur.mu.Unlock()
			q = cur.forClient(q, c.id.At(time.Now()))
			writePoll(w, q)
			count(false, false, len(q), int64(len(encodePoll(q))))
			return
		}
		wake := cur.wake
		cur.mu.Unlock()
		select {
		case <-wake:
			if nb := bridges.lookup(c.sid); nb != nil && nb != cur {
				// The session was recovered into another: go on there.
				cur.mu.Lock()
				cur.getting = false
				cur.mu.Unlock()
				nb.mu.Lock()
				nb.getting = true
				nb.mu.Unlock()
				cur = nb
			}
		case <-c.r.Context().Done():
			// The client cut the poll: gone unless it polls again soon.
			cur.armPollCut()
			return
		}
	}
}

// armPollCut counts the client gone unless it polls again within
// pollGrace (or upgrades).
func (b *bridge) armPollCut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended || b.away || b.ws != nil {
		return
	}
	if b.pollCut != nil {
		b.pollCut.Stop()
	}
	b.pollCut = time.AfterFunc(pollGrace, func() {
		b.mu.Lock()
		idle := !b.getting && b.ws == nil && !b.probing
		b.mu.Unlock()
		if idle {
			b.goAway("client stopped polling")
		}
	})
}

func writePoll(w http.ResponseWriter, pkts []eioPacket) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(encodePoll(pkts))
}

// post takes a client's POST: its packets go to the worker in order.
func (b *bridge) post(w http.ResponseWriter, c *call) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Duration(b.h.BodyTimeout)))
	max := b.pol().maxPayload
	body, err := readBody(c.r, max)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			_, _ = io.CopyN(io.Discard, c.r.Body, max)
			b.h.refuseTooLarge(w, c, max)
			return
		}
		b.h.logger.Info("polling body not received", zap.String("remote_ip", c.client.IP), zap.Error(err))
		security.Refused(security.ReasonMalformed)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	b.mu.Lock()
	upgraded := b.ws != nil || b.upgraded
	b.mu.Unlock()
	if upgraded {
		b.h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "a POST on an upgraded session")
		return
	}
	if !b.resumeInPlace(c.sid) {
		b.h.refuse(w, c, engineio.CodeSessionIDUnknown, security.ReasonSID, "the session ended, or the client closed it")
		return
	}
	b.live.rebase(c.id)
	var pkts []eioPacket
	n := 0
	err = engineio.Packets(body, func(p []byte) error {
		n++
		pkts = append(pkts, eioPacket{data: p})
		return nil
	})
	if err != nil {
		b.h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "polling body: "+err.Error())
		return
	}
	count(true, false, n, int64(len(body)))
	for _, p := range pkts {
		// Each packet goes to the bridge that serves the session now:
		// a CONNECT with a pid may have moved it.
		cur := bridges.lookup(c.sid)
		if cur == nil {
			break
		}
		if !cur.servesSID(c.sid) || cur.isAway() {
			// Recovered elsewhere, or closed by a packet before this
			// one: nothing after it reaches the worker.
			break
		}
		if err := cur.fromClient(p); err != nil {
			var over *overRate
			if errors.As(err, &over) {
				// The waiting poll gets the same 429 (see poll), as on
				// an unbridged session (closeForRate): a close packet
				// there would look like a lost worker.
				cur.mu.Lock()
				cur.overRate = over
				cur.mu.Unlock()
				cur.end(over.msg, websocket.ClosePolicyViolation)
				b.h.answerRateClosed(w, over.wait)
				return
			}
			cur.end(err.Error(), websocket.ClosePolicyViolation)
			b.h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "polling body: "+err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
}

// upgradeClient moves a polling session to WebSocket, as an Engine.IO
// server does: "2probe" is answered "3probe", the waiting poll ends with a
// noop, and from "5" on the session's packets go on the WebSocket.
func (b *bridge) upgradeClient(w http.ResponseWriter, c *call) {
	b.mu.Lock()
	refused := b.ws != nil || b.ended || b.away || b.current != c.sid
	b.mu.Unlock()
	if refused {
		b.h.refuse(w, c, engineio.CodeBadRequest, security.ReasonMalformed, "an upgrade of a session that has a WebSocket, or whose client is away")
		return
	}
	conn, err := upgrader.Upgrade(hijacker{w}, c.r, nil)
	if err != nil {
		return
	}
	cs := &clientSocket{conn: conn}
	cs.b.Store(b)
	go func() {
		fail := func() {
			conn.Close()
			// Polls answer at once only while an upgrade is under way.
			setProbing(c.sid, false)
		}
		_ = conn.SetReadDeadline(time.Now().Add(b.timeout))
		mt, msg, err := conn.ReadMessage()
		if err != nil || mt != websocket.TextMessage || string(msg) != "2probe" {
			fail()
			return
		}
		if cs.write(eioPacket{data: []byte("3probe")}) != nil {
			fail()
			return
		}
		setProbing(c.sid, true) // the waiting poll ends with a noop
		mt, msg, err = conn.ReadMessage()
		if err != nil || mt != websocket.TextMessage || string(msg) != "5" {
			fail()
			return
		}
		_ = conn.SetReadDeadline(time.Time{})
		cur := bridges.lookup(c.sid)
		if cur == nil {
			fail()
			return
		}
		cs.b.Store(cur)
		cur.mu.Lock()
		if cur.ended || cur.ws != nil || cur.away || cur.current != c.sid {
			cur.mu.Unlock()
			fail()
			return
		}
		q := cur.queue
		cur.queue, cur.queued = nil, 0
		cur.ws, cur.probing, cur.upgraded = cs, false, true
		cur.live.rebase(c.id)
		cur.wakeLocked()
		cur.mu.Unlock()
		for _, p := range q {
			if cs.write(p) != nil {
				cur.clientGone(cs, err)
				conn.Close()
				return
			}
		}
		cur.h.readClient(cs)
	}()
}

// setProbing marks the bridge that serves sid now as probed for an
// upgrade, or no longer, and wakes its waiting poll. The bridge the
// upgrade's request found may not be the one: a CONNECT that recovered a
// held session between the request and its probe moved the sid to the
// held session's bridge (adopt), and marking the one it left would let
// the client's poll wait there for the next ping, with every packet the
// client emits meanwhile (socket.io-client sends nothing while it
// upgrades). adopt routes sids with both bridges locked, so the sid's
// bridge checked under its own lock is the one serving it.
func setProbing(sid string, on bool) {
	for {
		cur := bridges.lookup(sid)
		if cur == nil {
			return
		}
		cur.mu.Lock()
		if bridges.lookup(sid) != cur {
			cur.mu.Unlock()
			continue
		}
		cur.probing = on
		if on {
			cur.wakeLocked()
		}
		cur.mu.Unlock()
		return
	}
}
