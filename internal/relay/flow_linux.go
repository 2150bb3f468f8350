//go:build linux

package relay

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/flaskedge/flaskedge/internal/rawsys"
)

// What a flow does with the payload of the frame it is reading.
const (
	modeHeader   = iota // reading a frame header
	modeForward         // passing the payload on as it is
	modeDiscard         // dropping it (a binary message the filter refused)
	modePeek            // collecting the first bytes of a text message for Filter.Peek
	modeAssemble        // collecting a text message whole for Filter.Rewrite
	modeControl         // collecting a control frame
)

const (
	// maxOwed bounds the bytes of the edge's own frames waiting for a
	// side (see flow.queue): past it, the edge stops reading that side,
	// whose messages are what make it owe more (a refusal answered per
	// message), as a blocked write would stop a goroutine relay.
	maxOwed      = 64 << 10
	maxHeader    = 14 // 2 bytes, a 64-bit length and a mask key
	maxOut       = 6  // segments a flow sends in one write
	readsPerTurn = 16 // reads a flow makes before other pairs' turn
)

// errUnexpectedEOF is what gorilla reports for a connection that ends
// without a close frame.
var errUnexpectedEOF = &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}

// flow is one direction of a pair: it reads frames from src and sends
// them to dst, parsing only their headers. A frame nobody needs to look
// into is sent on byte for byte (masked, from the client) straight from
// the buffer it was read into; the buffer is returned to readBufs once
// its bytes are all sent. What a flow needs only while bytes are on
// their way is in its flowIO, lent while it has any, so that an idle
// flow is its frame parser's state alone.
//
// Frames of the edge's own (close frames, injected messages, the
// farewell) wait in queue until dst is between two frames, or, for a
// message, between two messages.
type flow struct {
	p          *pair
	src, dst   *endpoint
	fromClient bool
	filter     *Filter
	*flowIO    // nil while idle
	queue      []queued
	queuedLen  int // bytes in queue

	// The frame being read.
	mode   uint8
	opcode byte
	fin    bool
	masked bool
	hdr    [maxHeader]byte
	hn     int // header bytes read
	mask   [4]byte
	left   int64 // payload bytes not read yet

	// The data message being read.
	msgType byte // 0 between messages
	msgMode uint8
	peeked  bool  // Peek chose the message, being assembled
	msgLen  int64 // announced so far, against the limit
	limit   int64

	readDone bool // src is not read any more
	shutDst  bool // send dst a FIN once what is queued is sent, then linger
	closeDst bool // close dst once what is queued is sent
}

// flowIO is a flow's state while bytes are on their way.
type flowIO struct {
	buf              *[readBufSize]byte // nil while nothing is buffered
	r, w             int                // parsed and read bytes of buf
	runStart, runEnd int                // buf[runStart:runEnd]: parsed bytes to send on as they are
	hdrAt            int                // where the frame header began in buf, or -1 (an earlier read)
	outArr           [maxOut][]byte
	out              [][]byte // to send before parsing on
	maskPos          int
	peek             [maxPeek]byte
	pn, want         int    // peeked bytes, and how many Peek needs
	msg              []byte // the message being assembled
	ctl              []byte // the control frame being read
}

var flowIOs = sync.Pool{New: func() any { return new(flowIO) }}

// takeIO lends f a flowIO unless it has one.
func (f *flow) takeIO() {
	if f.flowIO == nil {
		f.flowIO = flowIOs.Get().(*flowIO)
	}
}

// putIO returns f's flowIO once it holds nothing.
func (f *flow) putIO() {
	io := f.flowIO
	if io == nil || len(io.out) > 0 || io.buf != nil || io.msg != nil || io.ctl != nil || f.mode == modePeek {
		return
	}
	*io = flowIO{}
	flowIOs.Put(io)
	f.flowIO = nil
}

// queued is a frame of the edge's own waiting for its turn.
type queued struct {
	frame []byte
	data  bool // a message: it waits for a message boundary
}

func (f *flow) other() *flow {
	if f == &f.p.up {
		return &f.p.down
	}
	return &f.p.up
}

func (f *flow) enqueue(frame []byte, data bool) {
	f.queue = append(f.queue, queued{frame, data})
	f.queuedLen += len(frame)
	f.p.dirty = true
}

// clearQueue drops the frames waiting in f's queue.
func (f *flow) clearQueue() {
	f.queue, f.queuedLen = nil, 0
}

// owing reports whether the frames waiting for f's source (in the other
// flow's queue) are past maxOwed: f then reads no more from its source.
func (f *flow) owing() bool { return f.other().queuedLen > maxOwed }

// pump moves f as far as it can without waiting: it sends what is
// pending, reads and parses what src has, and returns once src has
// nothing more (EAGAIN) or dst takes nothing more, which leaves the rest
// in the socket and the peer at its TCP window.
func (f *flow) pump() {
	f.takeIO()
	defer f.putIO()
	for reads := 0; ; {
		if len(f.out) > 0 {
			if !f.send() {
				return
			}
			continue
		}
		if f.buf != nil && (f.r == f.w || f.readDone) {
			f.release()
		}
		if f.sendQueued() {
			continue
		}
		if len(f.queue) == 0 && f.afterQueue() {
			continue
		}
		if f.p.stopping && f == &f.p.down && !f.readDone && f.atMessageBoundary() {
			f.farewell()
			continue
		}
		if !f.readDone && f.src.closed {
			f.finish(net.ErrClosed)
		}
		if f.readDone {
			if f == &f.p.up && f.p.lingering {
				f.p.lingerRead()
			}
			return
		}
		if f.r < f.w {
			f.parse()
			continue
		}
		if !f.src.readable || f.owing() {
			return
		}
		if reads++; reads > readsPerTurn {
			// Let the poller's other pairs have their turn; src is
			// still readable, and the pair is served again after them.
			f.p.po.again(f.p)
			return
		}
		if !f.read() {
			return
		}
	}
}

// send writes what is pending to dst, and reports whether pump may go
// on: false when dst is full.
func (f *flow) send() bool {
	if f.dst.closed || f.dst.broken {
		f.clearOut()
		f.clearQueue()
		f.finish(net.ErrClosed)
		return true
	}
	if !f.dst.writable {
		return false
	}
	n, err := writev(f.dst.fd, f.out)
	switch {
	case err == syscall.EAGAIN:
		f.dst.writable = false
		return false
	case err == syscall.EINTR:
		return true
	case err != nil:
		f.dst.broken = true
		f.clearOut()
		f.clearQueue()
		f.finish(os.NewSyscallError("write", err))
		return true
	}
	for n > 0 {
		if n < len(f.out[0]) {
			f.out[0] = f.out[0][n:]
			break
		}
		n -= len(f.out[0])
		f.out = f.out[1:]
	}
	if len(f.out) == 0 {
		f.clearOut()
	}
	return true
}

func (f *flow) clearOut() {
	f.outArr = [maxOut][]byte{}
	f.out = f.outArr[:0]
}

func (f *flow) emit(b []byte) {
	if len(b) == 0 {
		return
	}
	if f.out == nil {
		f.out = f.outArr[:0]
	}
	f.out = append(f.out, b)
}

// sendQueued moves the next queued frame to out when dst is at a place
// it may go, and reports whether it did.
func (f *flow) sendQueued() bool {
	if len(f.queue) == 0 {
		return false
	}
	if f.dst.closed || f.dst.broken || (f.readDone && f.midFrame()) {
		// It will never have its turn: dst is gone, or the frame
		// being forwarded will never end.
		f.clearQueue()
		return false
	}
	q := f.queue[0]
	if f.midFrame() || (q.data && f.midMessage()) {
		return false
	}
	f.queue[0] = queued{}
	f.queue = f.queue[1:]
	if len(f.queue) == 0 {
		f.queue = nil
	}
	if f.queuedLen > maxOwed && f.queuedLen-len(q.frame) <= maxOwed {
		// The other flow may read its source again.
		f.p.dirty = true
	}
	f.queuedLen -= len(q.frame)
	f.emit(q.frame)
	return true
}

// midFrame tells whether dst is inside a frame f forwards.
func (f *flow) midFrame() bool { return f.mode == modeForward }

// midMessage tells whether dst is inside a message f forwards frame by
// frame.
func (f *flow) midMessage() bool { return f.msgType != 0 && f.msgMode == modeForward }

func (f *flow) atMessageBoundary() bool { return !f.midFrame() && !f.midMessage() }

// afterQueue does what waited for everything queued to be sent: the
// client's FIN, or the upstream's close. It reports whether it did.
func (f *flow) afterQueue() bool {
	switch {
	case f.shutDst && !f.dst.shut && !f.dst.closed:
		f.dst.shut = true
		_ = syscall.Shutdown(f.dst.fd, syscall.SHUT_WR)
		f.p.startLinger()
		return true
	case f.closeDst && !f.dst.closed:
		f.p.po.release(f.dst)
		f.p.dirty = true
		return true
	}
	return false
}

// farewell ends the worker's direction for Stop: the farewell message,
// then (as the relay ends with ErrStopped) 1001 to both sides.
func (f *flow) farewell() {
	if fw := f.p.opt.Farewell; fw != nil {
		f.enqueue(newFrame(websocket.TextMessage, fw, false), true)
	}
	f.finish(ErrStopped)
}

// finish stops reading src: err is why.
func (f *flow) finish(err error) {
	if f.readDone {
		return
	}
	f.readDone = true
	if f.flowIO != nil {
		f.ctl, f.msg = nil, nil
	}
	if f.mode != modeForward {
		// Nothing waits for the rest of a frame being collected; one
		// being forwarded stays unfinished, and nothing more may be
		// sent after it (see sendQueued).
		f.mode = modeHeader
	}
	f.p.flowEnded(f, err)
}

// read reads what src has into a borrowed buffer, and reports whether
// pump may go on.
func (f *flow) read() bool {
	if f.buf == nil {
		f.buf = readBufs.Get().(*[readBufSize]byte)
	}
	n, err := rawsys.Read(f.src.fd, f.buf[:])
	switch {
	case err == syscall.EAGAIN:
		f.src.readable = false
		f.release()
		return false
	case err == syscall.EINTR:
		return true
	case err != nil:
		f.finish(os.NewSyscallError("read", err))
		return true
	case n == 0:
		f.finish(errUnexpectedEOF)
		return true
	}
	f.r, f.w, f.runStart, f.runEnd = 0, n, 0, 0
	if f.hn > 0 {
		f.hdrAt = -1
	}
	if n < len(f.buf) && !f.src.hup {
		// A stream socket's read stops short only once its receive
		// queue is empty: what arrives next is a new edge, reported
		// by epoll, so the read that would only say EAGAIN is saved.
		// Not after the peer's FIN: the EOF to read next comes with
		// no event of its own.
		f.src.readable = false
	}
	return true
}

// release returns f's buffer, all of it sent or dropped.
func (f *flow) release() {
	readBufs.Put(f.buf)
	f.buf = nil
	f.r, f.w, f.runStart, f.runEnd = 0, 0, 0, 0
}

// drop lets go of everything f holds, as its pair ends.
func (f *flow) drop() {
	f.clearQueue()
	if f.flowIO == nil {
		return
	}
	if f.buf != nil {
		f.release()
	}
	f.clearOut()
	f.ctl, f.msg = nil, nil
	f.mode = modeHeader
	f.putIO()
}

// parse reads frames from buf until it has something to send, the
// buffer is all parsed, or f stops.
func (f *flow) parse() {
	// What is emitted may point into hdr and peek, which the next frame's
	// header and Peek overwrite: parsing stops at the first emit, so that
	// it is sent first, except within the frame being forwarded, whose
	// rest (a run of buf) then goes in the same write as its header and
	// peeked bytes: one writev per frame, not two.
	for f.r < f.w && !f.readDone && (len(f.out) == 0 || f.mode == modeForward && len(f.out) <= maxOut-2) {
		in := f.buf[f.r:f.w]
		if f.mode == modeHeader {
			f.readHeader(in)
			continue
		}
		n := len(in)
		if int64(n) > f.left {
			n = int(f.left)
		}
		in = in[:n]
		switch f.mode {
		case modeForward:
			f.extendRun(f.r, f.r+n)
		case modePeek:
			n = min(n, f.want-f.pn)
			in = in[:n]
			f.unmask(in)
			f.pn += copy(f.peek[f.pn:], in)
		case modeAssemble:
			f.unmask(in)
			f.msg = append(f.msg, in...)
		case modeControl:
			f.ctl = append(f.ctl, in...)
		}
		f.r += n
		f.left -= int64(n)
		f.settle()
	}
	if f.r == f.w || f.readDone {
		f.flushRun()
	}
}

// extendRun adds buf[start:end], to send on as it is, to the run, which
// is sent first when the two are not contiguous.
func (f *flow) extendRun(start, end int) {
	if start != f.runEnd {
		f.flushRun()
		f.runStart = start
	}
	f.runEnd = end
}

func (f *flow) flushRun() {
	if f.runEnd > f.runStart {
		f.emit(f.buf[f.runStart:f.runEnd])
	}
	f.runStart = f.runEnd
}

func (f *flow) unmask(b []byte) {
	if !f.masked {
		return
	}
	for i := range b {
		b[i] ^= f.mask[f.maskPos&3]
		f.maskPos++
	}
}

// headerLen is the length of the header being read, as far as known.
func (f *flow) headerLen() int {
	if f.hn < 2 {
		return 2
	}
	n := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.hdr[1]&0x80 != 0 {
		n += 4
	}
	return n
}

func (f *flow) readHeader(in []byte) {
	if f.hn == 0 {
		f.hdrAt = f.r
	}
	need := f.headerLen()
	k := copy(f.hdr[f.hn:need], in)
	f.hn += k
	f.r += k
	if need == 2 && f.hn == 2 {
		if msg := f.checkHeader(); msg != "" {
			f.protocolError(msg)
			return
		}
	}
	if f.hn == f.headerLen() {
		f.beginFrame()
	}
}

// checkHeader refuses, as gorilla does, the first two bytes of a frame
// that breaks the protocol.
func (f *flow) checkHeader() string {
	b0, b1 := f.hdr[0], f.hdr[1]
	var errs []string
	for i, name := range [...]string{"RSV1 set", "RSV2 set", "RSV3 set"} {
		if b0&(0x40>>i) != 0 {
			errs = append(errs, name)
		}
	}
	switch op := b0 & 0xf; op {
	case websocket.CloseMessage, websocket.PingMessage, websocket.PongMessage:
		if b1&0x7f > 125 {
			errs = append(errs, "len > 125 for control")
		}
		if b0&0x80 == 0 {
			errs = append(errs, "FIN not set on control")
		}
	case websocket.TextMessage, websocket.BinaryMessage:
		if f.msgType != 0 {
			errs = append(errs, "data before FIN")
		}
	case 0:
		if f.msgType == 0 {
			errs = append(errs, "continuation after FIN")
		}
	default:
		errs = append(errs, "bad opcode "+strconv.Itoa(int(op)))
	}
	if (b1&0x80 != 0) != f.fromClient {
		errs = append(errs, "bad MASK")
	}
	return strings.Join(errs, ", ")
}

// frameError ends a relay whose one side sent a frame that breaks the
// protocol: that side was sent 1002 (protocolError), the other one is
// sent 1001 as for any other end (see pair.end).
type frameError struct {
	msg  string
	from *flow // the flow whose source sent the frame
}

func (e *frameError) Error() string { return "websocket: " + e.msg }

// protocolError ends f as gorilla does a connection that breaks the
// protocol: src is sent 1002 with msg, and no other close frame.
func (f *flow) protocolError(msg string) {
	data := websocket.FormatCloseMessage(websocket.CloseProtocolError, msg)
	if len(data) > 125 {
		data = data[:125]
	}
	back := f.other()
	back.enqueue(newFrame(websocket.CloseMessage, data, back.fromClient), false)
	f.finish(&frameError{msg: msg, from: f})
}

// beginFrame acts on a whole header.
func (f *flow) beginFrame() {
	f.opcode, f.fin = f.hdr[0]&0xf, f.hdr[0]&0x80 != 0
	at := 2
	switch n := f.hdr[1] & 0x7f; n {
	case 126:
		f.left, at = int64(binary.BigEndian.Uint16(f.hdr[2:])), 4
	case 127:
		u := binary.BigEndian.Uint64(f.hdr[2:])
		if u>>63 != 0 {
			f.finish(websocket.ErrReadLimit)
			return
		}
		f.left, at = int64(u), 10
	default:
		f.left = int64(n)
	}
	f.masked, f.maskPos = f.hdr[1]&0x80 != 0, 0
	if f.masked {
		copy(f.mask[:], f.hdr[at:])
	}
	if f.opcode >= 8 {
		f.mode = modeControl
		f.ctl = append(make([]byte, 0, f.hn+int(f.left)), f.hdr[:f.hn]...)
		f.settle()
		return
	}
	if f.beginData() {
		f.settle()
	}
}

// beginData applies the limit, AdmitClient and the filter to a data
// frame, and reports whether f goes on.
func (f *flow) beginData() bool {
	first := f.opcode != 0
	if first {
		f.msgType, f.msgLen = f.opcode, 0
		if f.fromClient {
			f.limit = f.p.limit()
		}
	}
	f.msgLen += f.left
	if f.fromClient && f.limit > 0 && f.msgLen > f.limit {
		f.finish(websocket.ErrReadLimit)
		return false
	}
	if first {
		if admit := f.p.opt.AdmitClient; f.fromClient && admit != nil {
			if err := admit(); err != nil {
				f.finish(&PolicyError{Reason: err.Error()})
				return false
			}
		}
		f.msgMode = f.chooseMode()
	}
	f.mode = f.msgMode
	switch f.mode {
	case modeForward:
		f.forwardHeader()
	case modePeek:
		f.pn, f.want = 0, int(min(int64(f.filter.PeekLen), f.left))
	case modeAssemble:
		if first {
			f.peeked = false
		}
	}
	return true
}

// chooseMode says what becomes of a message as it begins.
func (f *flow) chooseMode() uint8 {
	fl := f.filter
	switch {
	case fl == nil:
		return modeForward
	case f.msgType == websocket.BinaryMessage:
		if fl.Binary != nil && !fl.Binary() {
			return modeDiscard
		}
		return modeForward
	case !f.fin:
		// A fragmented text message is assembled whole, and peeked
		// at once it is.
		return modeAssemble
	}
	return modePeek
}

// forwardHeader sends the frame header on: with the run when it is in
// buf right after it, else from hdr.
func (f *flow) forwardHeader() {
	if f.hdrAt >= 0 {
		f.extendRun(f.hdrAt, f.r)
		return
	}
	f.flushRun()
	f.emit(f.hdr[:f.hn])
	f.runStart, f.runEnd = f.r, f.r
}

// settle does what needs no more bytes: Peek once it has its bytes, and
// the end of a frame.
func (f *flow) settle() {
	if f.mode == modePeek && f.pn == f.want {
		f.decidePeek()
	}
	if f.left > 0 || f.readDone {
		return
	}
	switch f.mode {
	case modeControl:
		f.controlDone()
	case modeForward, modeDiscard, modeAssemble:
		f.frameDone()
	}
}

// decidePeek asks Peek about the first bytes of a single-frame text
// message: either they are sent on as they came, masked again, and the
// rest of the frame after them, or the message is assembled.
func (f *flow) decidePeek() {
	head := f.peek[:f.pn]
	if f.filter.Peek(head) {
		f.msgMode, f.mode, f.peeked = modeAssemble, modeAssemble, true
		f.msg = append(make([]byte, 0, 2*len(head)), head...)
		return
	}
	f.maskPos = 0
	f.unmask(head)
	f.msgMode, f.mode = modeForward, modeForward
	f.flushRun()
	f.emit(f.hdr[:f.hn])
	f.emit(head)
	f.runStart, f.runEnd = f.r, f.r
}

// frameDone ends a data frame, and its message with the last frame.
func (f *flow) frameDone() {
	mode := f.mode
	f.mode, f.hn = modeHeader, 0
	if !f.fin {
		return
	}
	switch mode {
	case modeForward:
		f.p.count(f.fromClient, f.msgLen)
	case modeAssemble:
		f.deliver()
	}
	f.msgType = 0
}

// deliver passes an assembled text message through the filter and sends
// what it returns as a new frame (masked with a fresh key toward the
// worker).
func (f *flow) deliver() {
	msg := f.msg
	f.msg = nil
	if !f.peeked && !f.filter.Peek(msg[:min(len(msg), f.filter.PeekLen)]) {
		f.sendMessage(msg)
		return
	}
	out, err := f.filter.Rewrite(msg)
	if err != nil {
		f.finish(&PolicyError{Reason: err.Error()})
		return
	}
	if out == nil {
		f.p.count(f.fromClient, 0)
		return
	}
	f.sendMessage(out)
}

func (f *flow) sendMessage(msg []byte) {
	f.flushRun()
	f.emit(newFrame(websocket.TextMessage, msg, f.fromClient))
	f.p.count(f.fromClient, int64(len(msg)))
}

// controlDone passes a control frame on: a ping or a pong as it came, a
// close checked (as gorilla does) and made anew, which ends f.
func (f *flow) controlDone() {
	frame := f.ctl
	f.ctl, f.mode = nil, modeHeader
	hn := f.hn
	f.hn = 0
	f.flushRun()
	if f.opcode != websocket.CloseMessage {
		f.emit(frame)
		return
	}
	payload := frame[hn:]
	f.unmask(payload)
	code, text := websocket.CloseNoStatusReceived, ""
	if len(payload) >= 2 {
		code, text = int(binary.BigEndian.Uint16(payload)), string(payload[2:])
		if !validCloseCode(code) {
			f.protocolError("bad close code " + strconv.Itoa(code))
			return
		}
		if !utf8.ValidString(text) {
			f.protocolError("invalid utf8 payload in close frame")
			return
		}
	}
	var msg []byte
	if code != websocket.CloseNoStatusReceived {
		msg = websocket.FormatCloseMessage(code, text)
	}
	f.emit(newFrame(websocket.CloseMessage, msg, f.fromClient))
	f.finish(&websocket.CloseError{Code: code, Text: text})
}

// validCloseCode is gorilla's check of a received close code.
func validCloseCode(code int) bool {
	switch code {
	case websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseProtocolError,
		websocket.CloseUnsupportedData, websocket.CloseInvalidFramePayloadData,
		websocket.ClosePolicyViolation, websocket.CloseMessageTooBig, websocket.CloseMandatoryExtension,
		websocket.CloseInternalServerErr, websocket.CloseServiceRestart, websocket.CloseTryAgainLater:
		return true
	}
	return code >= 3000 && code <= 4999
}

// newFrame makes a whole frame of type op, masked with a fresh random key
// when masked (toward the worker: the edge is its client).
func newFrame(op int, payload []byte, masked bool) []byte {
	b := make([]byte, 0, maxHeader+len(payload))
	b = append(b, 0x80|byte(op))
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, maskBit|byte(n))
	case n < 1<<16:
		b = append(b, maskBit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, maskBit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := rand.Uint32()
	b = binary.LittleEndian.AppendUint32(b, key)
	k := b[len(b)-4:]
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= k[i&3]
	}
	return b
}
