package edgecors

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// corsWriter puts the edge's CORS headers on the response at the moment
// its header is written, after the next handler (and reverse_proxy,
// which copies upstream headers with Add) has set its own. Flushing
// writes the header first, as net/http would; hijacking, which
// reverse_proxy does for WebSockets after writing 101, goes straight
// through, as does anything reached with http.ResponseController.
type corsWriter struct {
	caddyhttp.ResponseWriterWrapper
	h           *Handler
	acao        []string // nil when the origin is not allowed or absent
	public      bool     // under client_path: Access-Control-Allow-Origin: * alone
	wroteHeader bool
}

func (cw *corsWriter) WriteHeader(status int) {
	if !cw.wroteHeader {
		// An informational response sends the header map as it stands
		// and keeps it for the final one, so fix it for each; fixing
		// is idempotent.
		cw.PrepareHeader()
		cw.wroteHeader = status >= 200 || status == http.StatusSwitchingProtocols
	}
	cw.ResponseWriterWrapper.WriteHeader(status)
}

// PrepareHeader puts the edge's CORS headers on the header map without
// writing it: for a handler that takes the connection and writes the
// answer itself later (socketio_proxy's parked long-polls), from this
// map.
func (cw *corsWriter) PrepareHeader() {
	if cw.public {
		setPublicHeaders(cw.Header())
	} else {
		cw.h.setResponseHeaders(cw.Header(), cw.acao, varyOrigin)
	}
}

func (cw *corsWriter) Write(b []byte) (int, error) {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	return cw.ResponseWriterWrapper.Write(b)
}

// ReadFrom keeps the embedded io.ReaderFrom from writing the header
// past WriteHeader.
func (cw *corsWriter) ReadFrom(r io.Reader) (int64, error) {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	return cw.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError is what http.ResponseController.Flush calls.
func (cw *corsWriter) FlushError() error {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(cw.ResponseWriter).Flush()
}

// Flush implements http.Flusher for handlers that assert it.
func (cw *corsWriter) Flush() { _ = cw.FlushError() }

// Hijack implements http.Hijacker for handlers that assert it.
func (cw *corsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(cw.ResponseWriter).Hijack()
}

var writerPool = sync.Pool{New: func() any { return new(corsWriter) }}

// serveWithCORS serves r with next through a corsWriter set up as cw
// (its ResponseWriter is w) and reports whether next wrote the header.
// The wrapper is pooled: an allowed request then allocates nothing. It
// is safe because, as net/http requires, no handler uses the writer
// after its ServeHTTP returns (reverse_proxy waits for its WebSocket
// tunnel and its flush timer before returning); the wrapper is cleared
// before it goes back, so a use after that would fail on a nil writer
// rather than reach another response.
func serveWithCORS(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, cw corsWriter) (wroteHeader bool, err error) {
	pooled := writerPool.Get().(*corsWriter)
	*pooled = cw
	pooled.ResponseWriterWrapper = caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
	err = next.ServeHTTP(pooled, r)
	wroteHeader = pooled.wroteHeader
	*pooled = corsWriter{}
	writerPool.Put(pooled)
	return wroteHeader, err
}

// Interface guards
var (
	_ http.ResponseWriter = (*corsWriter)(nil)
	_ http.Flusher        = (*corsWriter)(nil)
	_ http.Hijacker       = (*corsWriter)(nil)
	_ io.ReaderFrom       = (*corsWriter)(nil)
)
