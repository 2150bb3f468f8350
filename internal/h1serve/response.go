package h1serve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of a request Serve serves. Like
// net/http's, it holds the start of the body until the handler returns
// or it outgrows a small buffer, so that a short response goes out with
// its Content-Length, in one write; longer ones are chunked, unless the
// handler declared a length.
type response struct {
	conn    net.Conn
	br      *bufio.Reader
	req     *http.Request
	closing func() bool // the server's Closing

	header      http.Header
	status      int
	wroteHeader bool  // the final status is set
	committed   bool  // the head is in out (or written)
	chunked     bool  // the body goes in chunks
	declared    int64 // the handler's Content-Length, or -1
	written     int64 // body bytes the handler wrote
	closeAfter  bool  // the connection closes after the response
	hijacked    bool
	readerTaken bool // the hijacker has br
	err         error

	body *[]byte // the body, held until the head is written
	out  *[]byte // what goes to the connection next
}

// holdBody is how much of a body is held before the head is written
// (net/http's bufferBeforeChunkingSize).
const holdBody = 2048

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

// putBuffer returns b to the pool, empty, unless it grew large.
func putBuffer(b *[]byte) {
	if cap(*b) <= 4*bufSize {
		*b = (*b)[:0]
		buffers.Put(b)
	}
}

func newResponse(conn net.Conn, br *bufio.Reader, req *http.Request, closing func() bool) *response {
	return &response{conn: conn, br: br, req: req, closing: closing, header: make(http.Header), declared: -1}
}

// release returns the buffers.
func (w *response) release() {
	for _, b := range []**[]byte{&w.body, &w.out} {
		if *b != nil {
			putBuffer(*b)
			*b = nil
		}
	}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once, as net/http
		// sends it.
		b := appendStatusLine(nil, code)
		b = appendHeader(b, w.header, true)
		b = append(b, "\r\n"...)
		w.write(b)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.declared = n
		} else {
			w.header.Del("Content-Length") // as net/http drops it
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.declared >= 0 && w.written > w.declared {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if w.body == nil {
			w.body = buffers.Get().(*[]byte)
		}
		if len(*w.body)+len(p) <= holdBody {
			*w.body = append(*w.body, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	w.appendBody(p)
	if w.out != nil && len(*w.out) >= bufSize {
		w.flushOut()
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// ReadFrom copies src to the body through a pooled buffer (io.Copy's
// own would be a new 32 KiB one per response).
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	bp := buffers.Get().(*[]byte)
	defer putBuffer(bp)
	buf := (*bp)[:cap(*bp)]
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Flush writes what the handler has written.
func (w *response) Flush() { _ = w.FlushError() }

func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	w.flushOut()
	return w.err
}

// Hijack hands the connection to the handler, as net/http does: what
// was written is sent first, and the returned reader holds what the
// client sent past the request.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		if !w.committed {
			w.commit(false)
		}
		w.flushOut()
	}
	w.hijacked = true
	_ = w.conn.SetDeadline(time.Time{})
	r := w.br
	if r.Buffered() > 0 {
		// The client's next bytes are in br: it goes with them.
		w.readerTaken = true
	} else {
		r = bufio.NewReaderSize(w.conn, 16)
	}
	return w.conn, bufio.NewReadWriter(r, bufio.NewWriterSize(w.conn, 16)), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.conn.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.conn.SetWriteDeadline(t) }

// EnableFullDuplex: the request's body is read already.
func (w *response) EnableFullDuplex() error { return nil }

// commit puts the head in out: the status line, the handler's header
// and what net/http adds to it. done is true once the handler returned:
// the held body is then the whole body.
func (w *response) commit(done bool) {
	w.committed = true
	h := w.header
	var held []byte
	if w.body != nil {
		held = *w.body
	}
	trailers := hasTrailers(h)
	te := h.Get("Transfer-Encoding")
	allowed := bodyAllowed(w.status)
	switch {
	case !allowed:
		h.Del("Transfer-Encoding")
	case w.declared >= 0:
		h.Del("Transfer-Encoding")
	case te == "identity":
		// Delimited by the connection's close, as net/http does it.
		h.Del("Transfer-Encoding")
		w.closeAfter = true
	case done && te == "" && !trailers:
		h["Content-Length"] = []string{strconv.Itoa(len(held))}
		w.declared = int64(len(held))
	default:
		h["Transfer-Encoding"] = []string{"chunked"}
		w.chunked = true
	}
	if _, ok := h["Content-Type"]; !ok && allowed && te == "" && len(held) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(held)}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") || w.closing != nil && w.closing() {
		w.closeAfter = true
	}
	if w.closeAfter {
		h["Connection"] = []string{"close"}
	}
	if w.out == nil {
		w.out = buffers.Get().(*[]byte)
	}
	b := appendStatusLine(*w.out, w.status)
	b = appendHeader(b, h, false)
	*w.out = append(b, "\r\n"...)
	if len(held) > 0 {
		*w.body = held[:0]
		w.appendBody(held)
	}
}

// appendBody puts p in out, as a chunk when the body is chunked; a large
// p goes to the connection as it is, not through out.
func (w *response) appendBody(p []byte) {
	if w.req.Method == http.MethodHead {
		return
	}
	if w.out == nil {
		w.out = buffers.Get().(*[]byte)
	}
	b := *w.out
	if w.chunked {
		b = strconv.AppendInt(b, int64(len(p)), 16)
		b = append(b, "\r\n"...)
	}
	if len(p) > bufSize {
		*w.out = b
		w.flushOut()
		if w.err == nil {
			_, w.err = w.conn.Write(p)
		}
		b = (*w.out)[:0]
	} else {
		b = append(b, p...)
	}
	if w.chunked {
		b = append(b, "\r\n"...)
	}
	*w.out = b
}

// finish ends the response once the handler has returned: the head (with
// the length of a body held whole), the body's end and its trailers, in
// one write.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		b := append(*w.out, "0\r\n"...)
		b = appendTrailers(b, w.header)
		*w.out = append(b, "\r\n"...)
	}
	if w.declared >= 0 && w.written != w.declared && bodyAllowed(w.status) {
		// A body shorter than it said: the client would wait for the
		// rest, or take the next response for it.
		w.closeAfter = true
	}
	w.flushOut()
}

func (w *response) flushOut() {
	if w.out == nil || len(*w.out) == 0 {
		return
	}
	if w.err == nil {
		_, w.err = w.conn.Write(*w.out)
	}
	*w.out = (*w.out)[:0]
}

func (w *response) write(b []byte) {
	w.flushOut()
	if w.err == nil {
		_, w.err = w.conn.Write(b)
	}
}

// bodyAllowed is net/http's bodyAllowedForStatus.
func bodyAllowed(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		return append(append(b, text...), "\r\n"...)
	}
	b = append(b, "status code "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "\r\n"...)
}

// appendHeader writes h as net/http's Header.Write does: invalid names
// left out, line breaks in values made spaces, surrounding space trimmed.
// For an informational response, the headers only a final one may carry
// are left out, as net/http leaves them.
func appendHeader(b []byte, h http.Header, informational bool) []byte {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if informational {
			switch k {
			case "Content-Length", "Transfer-Encoding", "Trailer":
				continue
			}
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

func appendValue(b []byte, v string) []byte {
	v = strings.TrimSpace(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// hasTrailers reports whether the handler declared trailers (the
// Trailer header, or a key with http.TrailerPrefix).
func hasTrailers(h http.Header) bool {
	if len(h["Trailer"]) > 0 {
		return true
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// appendTrailers writes the trailers the handler declared and set.
func appendTrailers(b []byte, h http.Header) []byte {
	for _, decl := range h["Trailer"] {
		for _, k := range strings.Split(decl, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			switch k {
			case "", "Transfer-Encoding", "Trailer", "Content-Length":
				continue
			}
			for _, v := range h[k] {
				if httpguts.ValidHeaderFieldName(k) {
					b = append(append(append(b, k...), ": "...), appendValue(nil, v)...)
					b = append(b, "\r\n"...)
				}
			}
		}
	}
	for k, vv := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
			for _, v := range vv {
				b = append(append(append(b, name...), ": "...), appendValue(nil, v)...)
				b = append(b, "\r\n"...)
			}
		}
	}
	return b
}
