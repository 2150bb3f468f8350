package socketioproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/flaskedge/flaskedge/internal/h1client"
	"github.com/flaskedge/flaskedge/internal/park"
)

// A session's GET waits at its worker until the worker has something to
// send: a ping, every ping interval, when the session is idle. Served by
// net/http under Caddy's handler chain, a waiting GET holds two
// goroutines (its own, deep in the chain, and its connection's
// background reader), net/http's buffers and Caddy's state of the
// request: most of what an idle polling session costs.
//
// A waitingPoll holds none of it. Once the request to the worker is
// written, the edge takes the client's connection from net/http (the
// site's handlers have put their headers on the answer by then) and
// parks both connections (internal/park): the worker's, until its answer
// comes, and the client's, to see it leave (or send its next request
// early, which is read and kept). The answer is then written
// by the edge itself, through the same code as a GET served by net/http,
// and the client's connection goes on to the handler's keeper, which
// serves its next request.
type waitingPoll struct {
	h       *Handler
	c       *call
	k       *keeper
	client  net.Conn // taken from net/http
	pending []byte   // the client's next bytes, read by net/http or readClient (under mu while it runs)
	// site is the site's handlers' headers for the answer, as name and
	// value pairs (see flatHeader).
	site []string
	// head is the GET's head to the worker, as sent (see workerHeader).
	head []byte
	// req is the call's request once net/http's is let go (c.r), and
	// url its URL: what the call reads of it, in the waitingPoll's
	// allocation.
	req    http.Request
	url    url.URL
	cut    context.Context
	forget func()
	done   func() // frees the session's GET

	ended atomic.Bool // the answer is written: the call may end
	gone  atomic.Bool // the client has gone

	mu      sync.Mutex // guards the fields below
	claimed bool       // the answer is being written (or the client has gone)
	early   bool       // ended early: the edge exits, the worker is cut off or leaves, or endPoll
	cause   error      // endPoll's
	ex      *h1client.Exchange
	up      *park.Conn // the worker's connection, parked
	cw      *park.Conn // the client's, parked
	// held is the client's connection as parked (cw, kept once cw is
	// handed back): it may have been put to sleep (park.Hold), and the
	// connection is then taken back from it (see wakeClient).
	held *park.Conn
	// reading is closed when readClient, which watches a client's
	// connection that cw cannot, has returned.
	reading chan struct{}
}

// parkedLogField marks a parked long-poll's access log line.
var parkedLogField = zap.String("socketio_poll", "parked; its answer is written later and not logged")

// keptAlive reports whether r's connection may serve another request
// after r's answer: HTTP/1.1 without Connection: close.
func keptAlive(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor == 1 && !r.Close
}

// maxPending bounds what a client may send behind its waiting GET.
const maxPending = 64 << 10

// readClient reads the client's connection while its GET waits: what
// it sends is kept for the keeper (its next requests), its leaving (or
// sending more than maxPending) ends the GET as clientLeft does. finish
// stops it with a read deadline in the past.
func (wp *waitingPoll) readClient() {
	var b [512]byte
	for {
		n, err := wp.client.Read(b[:])
		wp.mu.Lock()
		wp.pending = append(wp.pending, b[:n]...)
		over, claimed := len(wp.pending) > maxPending, wp.claimed
		wp.mu.Unlock()
		if err == nil && !over {
			continue
		}
		close(wp.reading) // before clientLeft, whose finish waits for it
		if !claimed {
			wp.clientLeft()
		}
		return
	}
}

// parkPoll sends a session's GET to its worker and parks it, reporting
// whether it did; when it did not, nothing was sent and the caller serves
// the GET as before.
func (h *Handler) parkPoll(w http.ResponseWriter, c *call) bool {
	r := c.r
	// HTTP/1.1 kept alive, and no body: what net/http reads past the
	// request is then the client's next request (a GET's body, which
	// net/http discards, would be served as one).
	if !keptAlive(r) || r.ContentLength != 0 || len(r.TransferEncoding) > 0 || c.pollDone == nil || !plainWriters(w) {
		return false
	}
	k := h.keeperFor(r)
	if k == nil {
		return false
	}
	uri := c.up.httpURL(c.uri)
	out, err := http.NewRequestWithContext(context.Background(), http.MethodGet, uri, nil)
	if err != nil {
		return false
	}
	out.Header = upstreamHeader(r, false)
	out.Host = r.Host
	head, err := h1client.Head(out)
	if err != nil {
		return false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	conn = replayed(conn)
	// Caddy's access log line for the request is written as the handler
	// returns, before the answer: status 0 and the time to park. It says
	// so, for an operator reading it.
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Add(parkedLogField)
	}
	// edge_cors puts its headers on the answer as its header is
	// written: asked to now, it puts them in the header map, which the
	// answer starts from.
	prepareHeader(w)
	wp := &waitingPoll{h: h, c: c, k: k, client: conn, site: flatHeader(w.Header()), head: head,
		cut: c.up.cutOff(), done: c.pollDone}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		wp.pending = bytes.Clone(b)
	}
	c.waiting = wp
	// What the call needs of the request from now on: the request
	// itself, through its context, holds net/http's connection state
	// and buffers and Caddy's, which a waiting GET must not. (Without a
	// context of its own, its context is Background.) The strings are
	// copied: taken as they are, they would keep the request's line and
	// header, which they point into, for as long as the GET waits.
	wp.url.Path = strings.Clone(r.URL.Path)
	// (A GET, HTTP/1.1: see keptAlive.)
	wp.req = http.Request{Method: http.MethodGet, URL: &wp.url, Host: strings.Clone(r.Host),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: strings.Clone(r.RemoteAddr),
		Header: http.Header{}}
	c.r = &wp.req
	sid := strings.Clone(c.sid)
	if strings.HasPrefix(sid, c.workerSID) {
		c.workerSID = sid[:len(c.workerSID)] // the sealed sid starts with it
	} else {
		c.workerSID = strings.Clone(c.workerSID)
	}
	c.sid, c.q.SID = sid, sid
	c.client.Origin = strings.Clone(c.client.Origin)
	// Until it is parked, what would end it waits (claim takes mu).
	wp.mu.Lock()
	h.registry.parkedGet(c.sid, wp)
	// It ends early as a GET served by net/http does (see servePolling).
	wp.forget = h.registry.waiting(c.sid, wp.endWith)
	if !h.registry.pollWaiting(wp) {
		wp.claimed, wp.early = true, true
		wp.mu.Unlock()
		wp.finish(nil, context.Canceled)
		return true
	}
	ex, err := c.up.poll.SendHead(context.Background(), head)
	if err != nil {
		wp.claimed = true
		wp.mu.Unlock()
		wp.finish(nil, err)
		return true
	}
	wp.ex = ex
	up, ok := park.Hold(ex.Conn(), wp.answered)
	if ok {
		wp.up = up
		ex.Lend()
	}
	if len(wp.pending) == 0 {
		wp.cw, _ = park.Hold(conn, wp.clientReadable)
		wp.held = wp.cw
	}
	if wp.held != nil {
		// The connection is the watcher's, and may be closed by its
		// sleep: what answers the GET takes it back from wp.held. (Kept
		// here, the closed connection's state would be kept too.)
		wp.client = nil
	}
	if wp.cw == nil {
		// A connection epoll cannot watch (a listener wrapper's), or
		// a client that sent more behind its GET: its leaving is seen
		// by a goroutine reading it.
		wp.reading = make(chan struct{})
		go wp.readClient()
	}
	wp.mu.Unlock()
	if !ok {
		// Not a connection epoll can watch: waited for on a goroutine.
		go wp.answered(nil)
	}
	return true
}

// Err is not nil once the client has gone: the GET's flight (see
// registry.poll) is over.
func (wp *waitingPoll) Err() error {
	if wp.gone.Load() {
		return context.Canceled
	}
	return nil
}

// answered reads the worker's answer and writes it to the client.
func (wp *waitingPoll) answered(pc *park.Conn) {
	wp.mu.Lock()
	ex := wp.ex
	claimed := wp.claimed
	wp.mu.Unlock()
	if pc != nil {
		// Held (park.Hold): it may have been put to sleep, and the
		// exchange goes on on the connection taken back.
		if claimed {
			pc.Close()
			return
		}
		ex.Resume(pc.Conn())
	}
	if claimed {
		ex.Abort()
		return
	}
	res, err := ex.Receive()
	if errors.Is(err, h1client.ErrSendAgain) {
		// The kept connection had been closed by the worker: the GET
		// goes again on a new one, as RoundTrip sends it.
		ex, err = wp.c.up.poll.SendHead(context.Background(), wp.head)
		if err == nil {
			wp.mu.Lock()
			if wp.claimed {
				wp.mu.Unlock()
				ex.Abort()
				return
			}
			wp.ex = ex
			if up, ok := park.Hold(ex.Conn(), wp.answered); ok {
				wp.up = up
				ex.Lend()
				wp.mu.Unlock()
				return
			}
			wp.up = nil
			wp.mu.Unlock()
			res, err = ex.Receive()
		}
	}
	wp.mu.Lock()
	if wp.claimed {
		wp.mu.Unlock()
		if res != nil {
			res.Body.Close()
		}
		return
	}
	wp.claimed = true
	cw := wp.cw
	wp.mu.Unlock()
	if cw != nil {
		cw.Unpark()
	}
	wp.finish(res, err)
}

// clientReadable is called when the client's connection turns readable
// while its GET waits: the client hung up, or sent its next request
// before the answer (HTTP/1.1 pipelining). It is read (readClient) to
// tell which.
func (wp *waitingPoll) clientReadable(*park.Conn) {
	wp.mu.Lock()
	if wp.claimed {
		wp.mu.Unlock()
		return
	}
	wp.cw = nil
	wp.client = wp.held.Conn()
	wp.reading = make(chan struct{})
	wp.mu.Unlock()
	wp.readClient()
}

// clientLeft ends the GET as one whose client has gone.
func (wp *waitingPoll) clientLeft() {
	wp.gone.Store(true)
	if !wp.claim(false, nil) {
		return
	}
	wp.finish(nil, context.Canceled)
}

// endWith ends the wait early: when the edge exits, the worker is cut
// off or leaves, or the session is closed for its message rate (cause;
// see registry.endPoll).
func (wp *waitingPoll) endWith(cause error) {
	if !wp.claim(true, cause) {
		return
	}
	wp.finish(nil, context.Canceled)
}

// claim takes the answer for the caller, stopping both watches; false
// when it is taken already.
func (wp *waitingPoll) claim(early bool, cause error) bool {
	wp.mu.Lock()
	if wp.claimed {
		wp.mu.Unlock()
		return false
	}
	wp.claimed, wp.early, wp.cause = true, early, cause
	ex, up, cw := wp.ex, wp.up, wp.cw
	wp.mu.Unlock()
	if cw != nil {
		cw.Unpark()
	}
	// The exchange ends here, even when answered has the worker's
	// connection already (a worker stalled mid-answer would hold it):
	// it sees the claim and lets the rest go. A held connection is
	// closed through its park.Conn, which has it (asleep, or as
	// answered took it back); ex's may be one closed by its sleep.
	if up != nil {
		up.Unpark()
		up.Close()
	} else if ex != nil {
		ex.Abort()
	}
	return true
}

func (wp *waitingPoll) clientGone() bool { return wp.gone.Load() }

// finish writes the answer (res, or what err calls for), ends the call
// and keeps the client's connection for its next request.
func (wp *waitingPoll) finish(res *http.Response, err error) {
	c := wp.c
	wp.forget()
	wp.h.registry.pollAnswered(wp)
	// The worker's GET is over: the session may send its next one,
	// which its client may do as soon as it has read this answer.
	wp.done()
	wp.mu.Lock()
	reading := wp.reading
	wp.mu.Unlock()
	if reading != nil {
		_ = wp.client.SetReadDeadline(time.Unix(1, 0))
		<-reading
		_ = wp.client.SetReadDeadline(time.Time{})
	}
	// The client's connection is back from the watcher: taken from
	// it, as it may have been put to sleep.
	if wp.held != nil {
		wp.client = wp.held.Conn()
	}
	// answerPoll reads why a GET ended early from its context.
	ctx := context.Background()
	wp.mu.Lock()
	if wp.early {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		cancel(wp.cause)
	}
	wp.mu.Unlock()
	if err := park.WakeErr(wp.client); errors.Is(err, park.ErrWake) {
		wp.h.logger.Error("a waiting GET's client connection could not be woken; its answer is lost, its client will reconnect (is the edge out of file descriptors?)",
			zap.String("remote_ip", c.client.IP), zap.Error(err))
	}
	cw := newConnWriter(wp.client, wp.siteHeader())
	// A reload stopped the keeper that would serve the connection next
	// (see keeper.stop): this answer is its last.
	cw.last = wp.k.closing.Load()
	wp.h.answerPoll(cw, c, ctx, res, err, pollSent{})
	keep := !wp.clientGone() && cw.close() && !cw.last
	wp.gone.Store(true)
	wp.ended.Store(true)
	c.end()
	if !keep {
		wp.client.Close()
		return
	}
	wp.k.keep(wp.client, wp.pending, false)
}

// flatHeader is h as name and value pairs, in one allocation where a
// copy of the map would be one per name and more: what a waiting GET
// keeps of its site's headers.
func flatHeader(h http.Header) []string {
	n := 0
	for _, vv := range h {
		n += 2 * len(vv)
	}
	kv := make([]string, 0, n)
	for k, vv := range h {
		for _, v := range vv {
			kv = append(kv, k, v)
		}
	}
	return kv
}

// siteHeader is the site's handlers' headers for the answer, as a map
// the answer's writer may change.
func (wp *waitingPoll) siteHeader() http.Header {
	h := make(http.Header, len(wp.site)/2+4)
	for i := 0; i+1 < len(wp.site); i += 2 {
		h[wp.site[i]] = append(h[wp.site[i]], wp.site[i+1])
	}
	return h
}

// workerHeader is the header of the GET sent to the worker, for a
// request of the edge's own in the session (see tellWorker): its lines
// as Request.Write wrote them, less Host. They are read back as they
// are, not with net/http's parser, which refuses what Request.Write
// lets through (a control byte in a value: a user id from the cookie),
// and would leave the edge's request without the session's header.
func (wp *waitingPoll) workerHeader() http.Header {
	h := http.Header{}
	lines := strings.Split(string(wp.head), "\r\n")
	for _, line := range lines[min(1, len(lines)):] {
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "Host" {
			continue
		}
		h[k] = append(h[k], strings.TrimLeft(v, " \t"))
	}
	return h
}

// answerWriteStall bounds each write of an answer to its client: a
// client that reads, however slowly, gets it whole.
const answerWriteStall = 10 * time.Second

// stallWriter writes to a connection with a deadline for each write.
type stallWriter struct{ conn net.Conn }

func (sw stallWriter) Write(p []byte) (int, error) {
	_ = sw.conn.SetWriteDeadline(time.Now().Add(answerWriteStall))
	return sw.conn.Write(p)
}

// connWriter is the http.ResponseWriter of an answer the edge writes
// itself, on a connection taken from net/http: HTTP/1.1, with the
// length the header says or chunked.
type connWriter struct {
	conn    net.Conn
	bw      *bufio.Writer
	header  http.Header
	edge    http.Header // the site's handlers' CORS headers: theirs win
	status  int
	started bool  // the head is written
	chunked bool  // the body is chunked
	left    int64 // what the declared length still expects
	// last: the connection closes after this answer, which says so
	// (Connection: close), as net/http's last answer on a connection
	// does.
	last bool
	err  error
}

var answerWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// newConnWriter writes an answer on conn starting from header, the site's
// handlers' headers, which it takes: their CORS headers win over any the
// answer sets.
func newConnWriter(conn net.Conn, header http.Header) *connWriter {
	var edge http.Header
	for k, v := range header {
		if strings.HasPrefix(k, "Access-Control-") {
			if edge == nil {
				edge = make(http.Header, 4)
			}
			edge[k] = v
		}
	}
	return &connWriter{conn: conn, header: header, edge: edge}
}

// prepareHeader has the writers w wraps that set headers as the header
// is written (edge_cors's) set them now; see plainWriters.
func prepareHeader(w http.ResponseWriter) {
	for {
		if p, ok := w.(interface{ PrepareHeader() }); ok {
			p.PrepareHeader()
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

func (cw *connWriter) Header() http.Header { return cw.header }

func (cw *connWriter) WriteHeader(status int) {
	if cw.status == 0 {
		cw.status = status
	}
}

func (cw *connWriter) Write(p []byte) (int, error) {
	cw.start()
	if cw.err != nil {
		return 0, cw.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if cw.chunked {
		_, _ = cw.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		_, _ = cw.bw.WriteString("\r\n")
	} else if int64(len(p)) > cw.left {
		cw.err = errors.New("answer longer than its Content-Length")
		return 0, cw.err
	}
	n, err := cw.bw.Write(p)
	if cw.chunked {
		_, _ = cw.bw.WriteString("\r\n")
	} else {
		cw.left -= int64(n)
	}
	if err != nil {
		cw.err = err
	}
	return n, err
}

// start writes the head once: the status line and the header, with the
// site's handlers' CORS headers in place of any other.
func (cw *connWriter) start() {
	if cw.started {
		return
	}
	cw.started = true
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	h := cw.header
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			if v, ok := cw.edge[k]; ok {
				h[k] = v
			} else {
				delete(h, k)
			}
		}
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade", "Proxy-Connection"} {
		h.Del(k)
	}
	if cw.last {
		h.Set("Connection", "close")
	}
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		cw.left = n
	} else {
		h.Del("Content-Length")
		h.Set("Transfer-Encoding", "chunked")
		cw.chunked = true
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	cw.bw = answerWriters.Get().(*bufio.Writer)
	cw.bw.Reset(stallWriter{cw.conn})
	_, _ = cw.bw.WriteString("HTTP/1.1 " + strconv.Itoa(cw.status) + " " + http.StatusText(cw.status) + "\r\n")
	if err := h.Write(cw.bw); err != nil {
		cw.err = err
	}
	_, _ = cw.bw.WriteString("\r\n")
}

// close ends the answer and reports whether the connection may serve
// another request: written whole, as long as it said.
func (cw *connWriter) close() bool {
	cw.start()
	if cw.chunked {
		_, _ = cw.bw.WriteString("0\r\n\r\n")
	}
	if err := cw.bw.Flush(); err != nil && cw.err == nil {
		cw.err = err
	}
	cw.bw.Reset(nil)
	answerWriters.Put(cw.bw)
	cw.bw = nil
	_ = cw.conn.SetWriteDeadline(time.Time{})
	return cw.err == nil && (cw.chunked || cw.left == 0)
}
