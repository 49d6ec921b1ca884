package ws

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/bufpool"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/streamlife"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// errShutdown reports that the handler shut down while a connection waited
// for its first subscribe frame.
var errShutdown = errors.New("ws: shutting down")

// statusAbort means: drop the connection without a close handshake (the
// peer is gone, it sent its own close frame, which the library answered, or
// a write failed).
const statusAbort websocket.StatusCode = -1

// conn is one WebSocket connection. Two goroutines of its own serve it:
// run, which owns the subscriptions and every data write, and readLoop,
// which reads client frames (so pings are answered and a departed client is
// noticed at once) and hands subscribe frames to run. Both wait in shallow
// frames, so that an idle connection's stacks stay at the minimum: run
// hands the work of a quiet connection to the handler's offload pool (see
// step), and readLoop waits for the client's next bytes before it reads
// them through the library (see waitReadable).
type conn struct {
	h    *Handler
	st   *streamlife.Stream
	ws   *websocket.Conn
	nc   *netConn
	auth taskbridge.AuthContext

	// ctx bounds the service calls; cancelled when the connection ends.
	// It carries the upgrade request's values (a trace span, a request
	// id) but not its cancellation: net/http cancels the request's
	// context once ServeHTTP returns, at the upgrade.
	ctx    context.Context
	cancel context.CancelFunc

	// signal is every subscription's Ready channel and is also signalled
	// by readLoop and by the handler's shutdown, so run waits on one
	// channel.
	signal     chan struct{}
	readerDone chan struct{}

	mu   sync.Mutex // guards reqs, taken and closing
	reqs []request  // frames read by readLoop, not yet handled by run
	// hasReqs is set by readLoop with each frame it adds to reqs and
	// cleared by the round that takes them: step reads it without c.mu.
	hasReqs atomic.Bool
	// closing is set by finish before the close handshake, in which the
	// library reads from run: readLoop no longer looks at what the
	// library has buffered (see waitReadable).
	closing bool
	// taken, when not nil, is closed by run once it has taken reqs:
	// readLoop waits on it while reqs is full.
	taken chan struct{}
	// readErr is why readLoop stopped; run reads it once readerDone is
	// closed.
	readErr error

	// Owned by run (and serve).
	subs []*subscription
	more bool // the last round found frames
	// grown is set when a round ran on serve's goroutine, which may have
	// grown its stack; moveOn asks serve to go on on a new goroutine.
	grown, moveOn bool
	// at is when run last read the clock, before a round: the time a
	// batch that round writes begins; lastSent is when the last round
	// that wrote began (Unix ns). See step.
	at, lastSent int64
	readerGone   bool                 // readLoop has exited
	code         websocket.StatusCode // close code once the connection ends
	reason       string
	writeErr     error // the write that failed, if one did
}

// request is a client frame read by readLoop.
type request struct {
	frame taskbridge.SubscribeFrame
	ok    bool // a valid subscribe frame
}

type subscription struct {
	sub       *fanout.Subscription
	nc        *netConn
	heartbeat []byte
	ended     bool // owned by run
	// kept holds the frames of inline deliveries that could not be
	// written (see deliver), for run's next round; guarded by sub's lock.
	kept []*fanout.Frame
}

// deliver is the subscription's SubscribeOpts.Deliver: it runs on a
// goroutine appending to the task, with the subscription locked, while run
// is not using it (run holds the locks of all subscriptions from their Next
// to the write of what they returned). It writes the frames to the socket
// with one write that does not wait, so a caught-up client gets an event
// without a wake-up of run. When that cannot be done (run or the library
// is writing, something is owed already, no socket), the frames are kept
// for run's next round, after those kept before; false wakes run, also for
// the rest of a partial write, which the connection owes before anything
// else.
func (s *subscription) deliver(frames []*fanout.Frame) (sent bool) {
	if hook := s.nc.wire.deliverHook; hook != nil {
		defer func() { hook(sent) }()
	}
	if len(s.kept) == 0 {
		if handled, flushed := s.nc.deliver(frames); handled {
			fanout.Release(frames) // copied
			return flushed
		}
	}
	s.kept = append(s.kept, frames...)
	return false
}

// close closes the subscription under its lock.
func (s *subscription) close() {
	s.sub.Lock()
	s.sub.Close()
	s.kept = nil
	s.sub.Unlock()
}

// newConn returns the connection upgraded from a request with context
// reqCtx. The connection's context keeps reqCtx's values (trace context)
// but not its cancellation; values a router recycles once ServeHTTP
// returns (chi's RouteContext) must not be read from it.
func newConn(reqCtx context.Context, h *Handler, wc *websocket.Conn, nc *netConn, auth taskbridge.AuthContext, st *streamlife.Stream) *conn {
	ctx, cancel := context.WithCancel(context.WithoutCancel(reqCtx))
	return &conn{
		h: h, st: st, ws: wc, nc: nc, auth: auth,
		ctx: ctx, cancel: cancel,
		signal:     make(chan struct{}, 1),
		readerDone: make(chan struct{}),
	}
}

// run serves the connection until it closes. Between rounds it waits in
// its own frame, and the deep work of a connection that is not busy (the
// first subscribe frame, quiet rounds) runs on a goroutine of the
// handler's offload pool (see step), so an idle connection's goroutine
// never grows past the smallest stack.
func (c *conn) run() {
	var ok bool
	c.h.offload.Run(func() { ok = c.start() })
	if ok && c.step() {
		c.serve()
		return
	}
	c.finish()
}

// serve waits for work and runs rounds until the connection is to close,
// then finishes it. A busy connection's rounds run on this goroutine and
// grow its stack, which the runtime cannot shrink again while it waits
// (see step): once such a connection has gone quiet, serve hands it to a
// new goroutine, on the smallest stack, and returns.
func (c *conn) serve() {
	for {
		// Unless more may be available at once, wait for a signal: the
		// subscriptions', readLoop's (a frame, or its end) or the
		// handler's shutdown (see Wake), all on one channel, which costs
		// a receive where a select over three would cost much more per
		// wake-up.
		if !c.more {
			<-c.signal
		}
		select {
		case <-c.h.done:
			c.code, c.reason = websocket.StatusGoingAway, "server shutting down"
			c.finish()
			return
		default:
		}
		if !c.readerGone {
			select {
			case <-c.readerDone:
				c.readerGone = true
			default:
			}
		}
		if !c.step() {
			c.finish()
			return
		}
		if c.moveOn {
			c.moveOn = false
			go c.serve()
			return
		}
	}
}

// finish closes the connection with c.code and waits for readLoop. Close
// sends the close frame (unless the library has sent one already, as it
// does for an oversize message), then reads and discards whatever the
// client sent until its own close frame arrives (or 5s pass): a socket
// closed with unread bytes in its receive buffer would end in a TCP reset,
// which can destroy the close frame before the client reads it.
func (c *conn) finish() {
	// Release the subscriptions before the close handshake, so a service
	// shutdown waiting for them is not held up by slow clients.
	var shutdown bool
	select {
	case <-c.h.done:
		shutdown = true
	default:
	}
	for _, s := range c.subs {
		switch {
		case shutdown || c.code == websocket.StatusGoingAway:
			s.sub.SetEnd(fanout.EndShutdown, nil)
		case c.writeErr != nil:
			s.sub.SetEnd(fanout.WriteEnd(c.writeErr), c.writeErr)
		}
		s.close()
	}
	c.subs = nil
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	if c.code == statusAbort {
		_ = c.ws.CloseNow()
	} else {
		err := c.ws.Close(c.code, c.reason)
		if c.h.closeHook != nil {
			c.h.closeHook(err)
		}
	}
	c.cancel()
	<-c.readerDone
	c.nc.release()
	c.st.Leave()
	c.h.life.ReleaseIfIdle(&c.h.offload)
}

// abort drops the connection at once; used when Shutdown runs out of time.
func (c *conn) abort() {
	c.cancel()
	_ = c.nc.Conn.Close()
}

// start reads the first subscribe frame and starts readLoop; false (with
// c.code set) closes the connection.
func (c *conn) start() bool {
	// A socket deadline rather than a context: the library keeps the last
	// read's context, and a timer context would stay with the connection.
	_ = c.nc.SetReadDeadline(time.Now().Add(c.h.cfg.SubscribeTimeout))
	// A shutdown interrupts the wait (at once if it has begun already), so
	// that a socket that has not subscribed yet is closed with 1001 too.
	interrupted := make(chan struct{})
	stop := context.AfterFunc(c.h.life.Context(), func() {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	req, err := c.read()
	if !stop() {
		<-interrupted
		err = errShutdown
	}
	// Clear the deadline for the connection's life, or for the close
	// handshake.
	if derr := c.nc.SetReadDeadline(time.Time{}); err == nil {
		err = derr
	}
	if err != nil || !req.ok {
		close(c.readerDone)
		switch {
		case errors.Is(err, errShutdown):
			c.code, c.reason = websocket.StatusGoingAway, "server shutting down"
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.code, c.reason = websocket.StatusPolicyViolation, "no subscribe frame in time"
		case err != nil:
			c.code, c.reason = readEnd(err)
		default:
			c.code, c.reason = websocket.StatusPolicyViolation, "expected a subscribe frame"
		}
		return false
	}
	c.reqs = append(c.reqs, req)
	go c.readLoop()
	return true
}

// read reads one client message and parses it as a subscribe frame.
func (c *conn) read() (request, error) {
	if c.h.readHook != nil {
		c.h.readHook()
	}
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return request{}, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return request{}, err
	}
	var req request
	if typ == websocket.MessageText && json.Unmarshal(data, &req.frame) == nil && httpx.DuplicateMember(data) == "" {
		req.ok = req.frame.Action == taskbridge.FrameSubscribe && taskbridge.ValidTaskID(req.frame.TaskID)
	}
	return req, nil
}

// readLoop reads client frames until the connection fails or closes, or a
// frame is invalid (run then closes with 1008). It holds at most
// MaxSubscriptions frames that run has not taken yet: with that many, it
// stops reading until run takes them, so a burst of frames is served at
// the pace run handles them (TCP flow control holds the client back).
//
// Its goroutine waits for the client in waitReadable, most of its life:
// the frames on the stack then (readLoop's, waitReadable's) are kept small,
// and the work between waits is in functions of its own (readNext,
// answer), so that the stack stays at the minimum size.
func (c *conn) readLoop() {
	defer c.readerEnded()
	for {
		head, err := c.waitReadable()
		if err == nil {
			err = c.readNext(head)
		}
		if err != nil {
			if err != errStopReading {
				c.readErr = err
			}
			return
		}
	}
}

// errStopReading ends readLoop with readErr unset: the frame it read
// explains why (see readNext).
var errStopReading = errors.New("ws: stop reading")

// readerEnded reports readLoop's end to run.
func (c *conn) readerEnded() {
	close(c.readerDone)
	c.wake() // after the close, so that the woken run sees it
}

// readNext reads the client's next message through the library and hands
// it to run. The library's read path is deep: a read that will not wait
// (head is a whole frame) runs on a goroutine of the offload pool, so that
// readLoop's stack does not grow; one that may wait for the rest of a
// message waits on readLoop's goroutine, not on the pool. An error ends
// readLoop.
func (c *conn) readNext(head *socketHead) error {
	var req request
	var err error
	if head.kind == headFrame {
		c.h.offload.Run(func() { req, err = c.read() })
	} else {
		req, err = c.read()
	}
	if err != nil {
		if head.broken {
			c.skipPayload(head.h)
		}
		return err
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	c.hasReqs.Store(true)
	var taken chan struct{}
	if len(c.reqs) >= c.h.cfg.MaxSubscriptions {
		taken = make(chan struct{})
		c.taken = taken
	}
	c.mu.Unlock()
	c.wake()
	if !req.ok {
		return errStopReading
	}
	if taken != nil {
		select {
		case <-taken:
		case <-c.ctx.Done():
			return net.ErrClosed // run has closed the connection
		}
	}
	return nil
}

// readEnd maps the error that ended reading to a close code. The peer is
// gone, or closed first (the library has answered its close frame): no
// close frame. A message over the read limit: 1009, which the library has
// sent already (with its own reason). Anything else is a framing error:
// 1002, which the library has sent already for most (an unmasked frame is
// the exception).
func readEnd(err error) (websocket.StatusCode, string) {
	var netErr net.Error
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		return websocket.StatusMessageTooBig, "message too big"
	case websocket.CloseStatus(err) != -1, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.As(err, &netErr):
		return statusAbort, ""
	}
	return websocket.StatusProtocolError, "protocol error"
}

// waitReadable waits for the client's next bytes in a shallow frame (see
// netConn.waitReadable) unless some are buffered already (read with the
// last message, or with the handshake), or the close
// handshake has begun (the library then reads on run's goroutine, and
// what it buffered is not readLoop's to look at). Pings and pongs are
// taken off the socket, or out of the buffers, here, without the library
// (see peekHead), so that a client's pings do not leave readLoop waiting
// inside the library's read for the next message. It returns what is next
// for the library to read: a whole frame (headFrame: reading it will not
// wait) or anything else (headPartial). An error means the socket can no
// longer be read.
func (c *conn) waitReadable() (*socketHead, error) {
	for {
		head, err := c.peekHead(false)
		if err == nil && head.kind == headNone {
			c.nc.waitReadable()
			head, err = c.peekHead(true)
		}
		switch {
		case err != nil:
			return nil, err
		case head.kind == headFrame, head.kind == headPartial:
			return head, nil
		case head.kind == headControl:
			c.answer(head)
		}
	}
}

// peekHead looks at the client's next bytes, and takes a ping or pong off
// them (see netConn.takeControl): unless socket is set, only when some are
// buffered; kind headNone means there is nothing to read yet. Under c.mu,
// so that the close handshake's reads (which begin once closing is set)
// cannot interleave.
func (c *conn) peekHead(socket bool) (*socketHead, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closing:
		return partialHead, nil
	case !socket && !c.nc.buffered():
		return noHead, nil
	}
	return c.nc.takeControl()
}

// answer answers a ping that peekHead took with a pong, written from the
// offload pool; a pong needs no answer.
func (c *conn) answer(head *socketHead) {
	if head.h.Opcode == wsframe.OpPing {
		c.h.offload.Run(func() { c.nc.pong(head.payload()) })
	}
}

// partialHead is what peekHead returns when it did not look at the
// client's bytes; noHead when nothing is buffered.
var (
	partialHead = &socketHead{kind: headPartial}
	noHead      = &socketHead{kind: headNone}
)

// skipPayload discards the payload of a frame the library refused once it
// had read the header (see socketHead.broken), so that the close handshake
// reads the client's next frame (its close frame, in answer to the
// library's) where it begins, rather than the payload as a frame header,
// which would end the connection with a reset or a wait. Skipped once the
// close handshake has begun: it reads on run's goroutine.
func (c *conn) skipPayload(h wsframe.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		_, _ = c.nc.br.Discard(int(h.Length))
	}
}

// headKind is what the client sent next, as takeControl found it.
type headKind uint8

const (
	headNone    headKind = iota // nothing to read after all
	headControl                 // a ping or pong, taken off the socket
	headFrame                   // a whole frame ending a message, or breaking the protocol
	headPartial                 // anything else: part of a frame, a fragment, the end of the stream
)

// Wake implements streamlife.Waker: the handler's shutdown wakes run.
func (c *conn) Wake() { c.wake() }

func (c *conn) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// step runs a round: on serve's goroutine while the connection is busy
// (the last round wrote, or one wrote less than quietAfter ago), else on
// a goroutine of the handler's offload pool, so that serve's own stack
// stays small on a connection that is mostly idle. Subscribe frames
// (authorization, store reads, a replay) are handled only by offloaded
// rounds, busy connection or not: a client that subscribes to several
// tasks one after the other would otherwise grow serve's stack for good.
func (c *conn) step() bool {
	quiet := false
	if !c.more {
		c.at = time.Now().UnixNano()
		quiet = c.at-c.lastSent >= int64(c.h.quietAfter)
	}
	if quiet || c.hasReqs.Load() {
		var ok bool
		c.h.offload.Run(func() { ok = c.round(true) })
		if quiet && c.grown {
			// Quiet after rounds of its own: the stack they grew would
			// stay with the waiting goroutine (the runtime shrinks a
			// stack to the minimum only while less than 224 bytes of it
			// are in use, and a goroutine waiting on a channel uses
			// more): serve moves on to a new one.
			c.grown, c.moveOn = false, true
		}
		return ok
	}
	c.grown = true
	return c.round(false)
}

// round handles pending subscribe frames (when offloaded: see step),
// collects what every subscription has ready and writes it as one batch.
// It sets c.more when frames were found and more may be ready at once
// (see collect), and returns false, with c.code set, when the connection
// is to be closed.
func (c *conn) round(offloaded bool) bool {
	if c.h.roundHook != nil {
		c.h.roundHook()
	}
	// Subscribe frames are for offloaded rounds (see step); those that
	// came after step looked are left for the next round (see below).
	var reqs []request
	if offloaded {
		c.mu.Lock()
		reqs = c.reqs
		c.reqs = nil
		c.hasReqs.Store(false)
		if c.taken != nil {
			close(c.taken)
			c.taken = nil
		}
		c.mu.Unlock()
	}

	mp := bufpool.Messages.Get()
	msgs := *mp
	code, reason := c.subscribe(reqs, &msgs)
	c.more = false
	// Inline deliveries (see subscription.deliver) wait from each Next to
	// the write of what it returned.
	for _, s := range c.subs {
		s.sub.Lock()
	}
	fp := bufpool.Frames.Get()
	if code == 0 {
		code, reason, c.more = c.collect(&msgs, fp)
	}
	if len(msgs) > 0 {
		c.lastSent = c.at
	}
	err := c.write(msgs)
	fanout.Release(*fp) // written, or the connection is over
	bufpool.Frames.Put(fp)
	for _, s := range c.subs {
		s.sub.Unlock()
	}
	*mp = msgs
	bufpool.Messages.Put(mp)
	c.prune()
	switch {
	case err != nil:
		c.writeErr = err
		code, reason = c.writeEnd(err)
	case code != 0:
	case !offloaded && c.hasReqs.Load():
		// Subscribe frames came after step looked: the next round,
		// offloaded, handles them at once, before the connection can end
		// for want of subscriptions or a reader.
		c.more = true
	case c.readerGone:
		// The reader stopped and left no request explaining why: its
		// error does.
		code, reason = readEnd(c.readErr)
	case len(c.subs) == 0:
		code, reason = websocket.StatusNormalClosure, "all subscribed tasks finished"
	}
	c.code, c.reason = code, reason
	return code == 0
}

// writeEnd maps a failed write to a close code. A write fails after the
// library has sent a close frame, which it does only from readLoop's read
// and in answer to it (a message over the read limit, a framing error, the
// client's own close frame): that read fails, so readLoop is ending with
// the error that says which, and the close handshake goes on. Any other
// failure ends the socket's write side: the connection is dropped.
func (c *conn) writeEnd(err error) (websocket.StatusCode, string) {
	if !errors.Is(err, errCloseSent) {
		return statusAbort, ""
	}
	if !c.readerGone {
		<-c.readerDone
		c.readerGone = true
	}
	return readEnd(c.readErr)
}

// subscribe handles subscribe frames, appending confirmations to msgs. A
// non-zero code closes the connection.
func (c *conn) subscribe(reqs []request, msgs *[][]byte) (websocket.StatusCode, string) {
	for _, req := range reqs {
		if !req.ok {
			return websocket.StatusPolicyViolation, "expected a subscribe frame"
		}
		f := req.frame
		i := c.find(f.TaskID)
		if i < 0 && len(c.subs) >= c.h.cfg.MaxSubscriptions {
			return websocket.StatusPolicyViolation, "too many subscriptions"
		}
		cursor := ""
		if f.LastEventID != nil {
			cursor = *f.LastEventID
		}
		s := &subscription{nc: c.nc}
		opts := fanout.SubscribeOpts{
			Transport:         "ws",
			HeartbeatInterval: c.h.cfg.HeartbeatInterval,
			Signal:            c.signal,
		}
		if c.nc.raw != nil && !c.h.cfg.DisableInlineWrites {
			opts.Deliver = s.deliver
		}
		sub, err := svcHooks.Subscribe(c.ctx, c.h.svc, c.auth, f.TaskID, cursor, opts)
		if err != nil {
			return c.closeFor(err)
		}
		s.sub = sub
		s.heartbeat, _ = json.Marshal(taskbridge.HeartbeatFrame{Type: taskbridge.FrameHeartbeat, TaskID: f.TaskID, Live: true})
		confirm, _ := json.Marshal(taskbridge.SubscriptionConfirmedFrame{
			Type: taskbridge.FrameSubscriptionConfirmed, TaskID: f.TaskID,
			ReplayStartedAfterEventID: f.LastEventID, Live: true,
		})
		*msgs = append(*msgs, confirm)
		if i >= 0 {
			// A repeated subscribe restarts the task's stream from the
			// new cursor.
			c.subs[i].close()
			c.subs[i] = s
		} else {
			c.subs = append(c.subs, s)
		}
	}
	return 0, ""
}

func (c *conn) find(taskID string) int {
	for i, s := range c.subs {
		if !s.ended && s.sub.TaskID() == taskID {
			return i
		}
	}
	return -1
}

// collect appends to msgs what every subscription has ready: frames, or a
// heartbeat when one is due; the frames whose JSON it appended go to
// *used, which the caller releases once msgs are written. more reports
// that frames were found and more may be available at once.
func (c *conn) collect(msgs *[][]byte, used *[]*fanout.Frame) (code websocket.StatusCode, reason string, more bool) {
	for _, s := range c.subs {
		// What inline deliveries kept comes before what Next returns.
		start := len(*used)
		all := append(*used, s.kept...)
		clear(s.kept)
		s.kept = nil
		all, err := s.sub.Next(c.ctx, all)
		*used = all
		frames := all[start:]
		for _, f := range frames {
			*msgs = append(*msgs, f.JSON)
			if f.Terminal {
				s.ended = true
				break
			}
		}
		if len(frames) > 0 {
			// Another round at once only if this subscription may have
			// more (see fanout.Subscription.More); what comes later
			// signals the connection.
			more = more || s.sub.More()
			s.sub.ClearHeartbeat() // frames went out: a heartbeat due now is moot
		}
		switch {
		case s.ended:
		case errors.Is(err, io.EOF):
			// The cursor was at or after the terminal event.
			s.ended = true
		case err != nil:
			code, reason = c.closeFor(err)
			return code, reason, false
		case len(frames) == 0 && s.sub.HeartbeatDue():
			*msgs = append(*msgs, s.heartbeat)
		}
	}
	return 0, "", more
}

// prune closes and drops the subscriptions that have ended.
func (c *conn) prune() {
	kept := c.subs[:0]
	for _, s := range c.subs {
		if s.ended {
			s.close()
		} else {
			kept = append(kept, s)
		}
	}
	clear(c.subs[len(kept):])
	c.subs = kept
}

// write sends msgs as one batch (see netConn.writeMessages).
func (c *conn) write(msgs [][]byte) error {
	return c.nc.writeMessages(msgs)
}

// closeFor maps a Subscribe or Next error to a close code.
func (c *conn) closeFor(err error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(err, taskbridge.ErrTaskNotFound):
		return websocket.StatusPolicyViolation, "task not found"
	case errors.Is(err, taskbridge.ErrInvalidCursor), errors.Is(err, taskbridge.ErrInvalidRequest):
		return websocket.StatusPolicyViolation, "invalid lastEventId"
	case errors.Is(err, taskbridge.ErrEventsExpired):
		return CloseEventsExpired, "events expired"
	case errors.Is(err, taskbridge.ErrClosed):
		return websocket.StatusGoingAway, "server shutting down"
	case c.ctx.Err() != nil:
		return statusAbort, ""
	}
	svcHooks.Logger(c.h.svc).LogAttrs(c.ctx, slog.LevelError, "taskbridge: websocket stream failed",
		slog.String("transport", "ws"), slog.String("userId", c.auth.Subject), slog.Any("error", err))
	return websocket.StatusInternalError, "internal error"
}
