package socketioproxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/engineio"
)

// A session begins with the worker's open packet, on either transport.
// The edge reads it whole, seals its sid to the worker and the session's
// owner (see package sticky), and only then records the session: the
// registry takes over the handshake's seat. A handshake that fails at any
// point frees its seat (call.seat, freed when ServeHTTP returns) and the
// client gets a reply its library retries.

// maxOpenResponse bounds the handshake response the edge reads whole to
// seal its sid; an open packet is a few hundred bytes.
const maxOpenResponse = 64 << 10

// relayHandshake passes the worker's answer to a polling handshake with
// the sid in its open packet sealed.
func (h *Handler) relayHandshake(w http.ResponseWriter, c *call, res *http.Response) {
	removeHopHeaders(res.Header)
	if res.StatusCode != http.StatusOK {
		copyHeader(w.Header(), res.Header)
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(res.Body, maxOpenResponse))
		return
	}
	payload, err := io.ReadAll(io.LimitReader(res.Body, maxOpenResponse+1))
	if err == nil && len(payload) > maxOpenResponse {
		err = errors.New("handshake response larger than 64 KiB")
	}
	var sealed []byte
	if err == nil {
		sealed, err = h.opened(c, payload, "polling")
	}
	if err != nil {
		h.unreadableHandshake(w, c, err)
		return
	}
	copyHeader(w.Header(), res.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(sealed)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(sealed)
	// Written whole: the connection may be parked for the client's
	// next request (see keeper).
	c.keep = err == nil && keptAlive(c.r)
}

// readOpen reads the worker's first message on a new WebSocket session,
// its open packet, and returns it sealed, the session recorded.
func (h *Handler) readOpen(w http.ResponseWriter, c *call, upConn *websocket.Conn) ([]byte, bool) {
	_ = upConn.SetReadDeadline(time.Now().Add(time.Duration(h.DialTimeout)))
	mt, msg, err := upConn.ReadMessage()
	_ = upConn.SetReadDeadline(time.Time{})
	if err == nil && mt != websocket.TextMessage {
		err = errors.New("first message is not text")
	}
	var sealed []byte
	if err == nil {
		sealed, err = h.opened(c, msg, "websocket")
	}
	if err != nil {
		upConn.Close()
		h.unreadableHandshake(w, c, err)
		return nil, false
	}
	return sealed, true
}

// opened seals the sid of the open packet at the start of payload to the
// call's worker and owner, records the session, and returns the payload
// to send the client. c.sid is then the sealed sid.
func (h *Handler) opened(c *call, payload []byte, transport string) ([]byte, error) {
	first, rest, more := bytes.Cut(payload, []byte{engineio.RecordSeparator})
	o, err := engineio.ParseOpen(first)
	if err != nil {
		return nil, err
	}
	sid := h.pool.codec.Seal(c.up.tag, o.SID, c.owner)
	open, _, err := engineio.ReplaceOpenSID(first, sid)
	if err != nil {
		return nil, err
	}
	if more {
		open = append(append(open, engineio.RecordSeparator), rest...)
	}
	idle := defaultIdle
	if o.PingInterval > 0 {
		// pingInterval + pingTimeout, plus grace.
		idle = time.Duration(o.PingInterval+o.PingTimeout)*time.Millisecond + 5*time.Second
	}
	h.registry.opened(sid, c.seat, idle, time.Now())
	c.seat, c.sid = nil, sid
	metrics.handshakes.WithLabelValues(c.up.addr, transport).Inc()
	return open, nil
}

// unreadableHandshake answers a handshake whose open packet the edge
// could not read.
func (h *Handler) unreadableHandshake(w http.ResponseWriter, c *call, err error) {
	h.logger.Error("Socket.IO worker sent an unreadable handshake", zap.String("upstream", c.up.addr),
		zap.String("remote_ip", c.client.IP), zap.Error(err))
	writeJSON(w, http.StatusBadGateway, `{"code":3,"message":"The Socket.IO worker sent an unreadable handshake"}`)
}
