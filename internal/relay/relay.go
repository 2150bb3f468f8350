// Package relay joins two WebSocket connections and passes messages and
// control frames between them, one frame at a time.
//
// It is the data path of a proxied Socket.IO WebSocket: every message a
// client sends crosses Relay on its way to the worker, so it is written to
// hold no buffer of its own while a connection is idle and to copy each
// message straight from one connection's read buffer into the other's
// write buffer.
package relay

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// Options tune a relay.
type Options struct {
	// MaxMessage is the largest message, in bytes, accepted from the
	// client; a larger one closes the connection with 1009 (message too
	// big). Zero means no limit.
	MaxMessage int64
	// CloseGrace is how long, once one side has closed, the other side
	// has to answer the close before both connections are torn down.
	CloseGrace time.Duration
}

// controlWait bounds a control-frame write to a peer that stopped reading.
const controlWait = 5 * time.Second

// Relay passes messages between client and upstream until either side
// closes or fails, then closes both. A close frame from one side is passed
// to the other with its code and reason, so a client sees the worker's
// close and the worker sees the client's. It returns the error that ended
// the relay: a *websocket.CloseError for an orderly close.
func Relay(client, upstream *websocket.Conn, opt Options) error {
	if opt.MaxMessage > 0 {
		client.SetReadLimit(opt.MaxMessage)
	}
	if opt.CloseGrace <= 0 {
		opt.CloseGrace = 5 * time.Second
	}
	forwardControl(client, upstream)
	forwardControl(upstream, client)

	done := make(chan error, 2)
	go func() { done <- pipe(upstream, client) }()
	go func() { done <- pipe(client, upstream) }()

	first := <-done
	// One side is finished. If it ended without a close frame (a dropped
	// TCP connection, which gorilla reports as 1006, or an oversized
	// message), tell the other side.
	var ce *websocket.CloseError
	if !errors.As(first, &ce) || ce.Code == websocket.CloseAbnormalClosure {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "")
		if errors.Is(first, websocket.ErrReadLimit) {
			msg = websocket.FormatCloseMessage(websocket.CloseMessageTooBig, "")
		}
		deadline := time.Now().Add(controlWait)
		_ = client.WriteControl(websocket.CloseMessage, msg, deadline)
		_ = upstream.WriteControl(websocket.CloseMessage, msg, deadline)
	}
	select {
	case <-done:
	case <-time.After(opt.CloseGrace):
	}
	client.Close()
	upstream.Close()
	return first
}

// pipe copies messages from src to dst until src fails or closes.
func pipe(dst, src *websocket.Conn) error {
	for {
		mt, r, err := src.NextReader()
		if err != nil {
			return err
		}
		w, err := dst.NextWriter(mt)
		if err != nil {
			return err
		}
		// gorilla's message writer implements io.ReaderFrom, so this
		// reads straight into dst's write buffer.
		if _, err := io.Copy(w, r); err != nil {
			w.Close()
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
}

// forwardControl makes src's ping, pong and close frames go to dst as they
// are, instead of being answered by the relay.
func forwardControl(src, dst *websocket.Conn) {
	src.SetPingHandler(func(data string) error {
		return ignoreTimeout(dst.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(controlWait)))
	})
	src.SetPongHandler(func(data string) error {
		return ignoreTimeout(dst.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(controlWait)))
	})
	src.SetCloseHandler(func(code int, text string) error {
		msg := websocket.FormatCloseMessage(code, text)
		if code == websocket.CloseNoStatusReceived {
			msg = []byte{}
		}
		_ = dst.WriteControl(websocket.CloseMessage, msg, time.Now().Add(controlWait))
		return nil
	})
}

// ignoreTimeout lets a relay outlive a control frame that could not be
// written in time; the data path will notice a dead peer on its own.
func ignoreTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}
