package sse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/bufpool"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/rawwrite"
	"github.com/taskbridge-go/taskbridge/internal/streamlife"
	"github.com/taskbridge-go/taskbridge/internal/wire"
	"github.com/taskbridge-go/taskbridge/internal/writewatch"
)

// chunkSize is how many bytes of a batch collect before they are written:
// the write watchdog times each write on its own, so a large batch to a
// healthy client never runs into the write timeout. Buffers come from
// package bufpool and are held only while a batch is written, so an idle
// stream keeps none.
const chunkSize = 64 << 10

// stream is one client connection's write side: either the ResponseWriter
// (rc set) or a hijacked connection (conn set).
type stream struct {
	h   *Handler
	st  *streamlife.Stream
	sub *fanout.Subscription

	w         http.ResponseWriter
	rc        *http.ResponseController
	deadlines bool // rc supports write deadlines

	// mu orders the stream's deadlines with abort, and keeps abort off the
	// ResponseWriter once ServeHTTP is about to return.
	mu       sync.Mutex
	aborted  bool // abort ran: deadlines stay in the past
	finished bool // ServeHTTP is returning: abort must not touch rc

	conn net.Conn
	// inline is set when the stream takes inline deliveries (see
	// deliver); apart, so that the others do not pay for it.
	inline *streamInline

	// guard times the stream's writes (see package writewatch): a write
	// that overruns Config.WriteTimeout aborts the stream. nil when the
	// ResponseWriter supports no deadlines, so no write can be cut off.
	guard *writewatch.Writer

	// head is what precedes the first event, written with the first batch:
	// the response head of a hijacked connection, the preamble and the
	// retry field. A pooled buffer; nil once written.
	head *[]byte
	// lastSent is when the last batch or heartbeat began; see
	// streamlife.QuietAfter.
	lastSent int64 // Unix ns
	// grown is set when a step ran on the goroutine that runs the
	// stream, which may have grown its stack (see run).
	grown bool
}

// start commits to the stream s (its subscription open): it returns the
// stream to serve inside ServeHTTP, or starts the goroutines of a hijacked
// stream and returns nil. The response head goes out with the first batch.
func (h *Handler) start(w http.ResponseWriter, r *http.Request, s *stream) *stream {
	hdr := w.Header()
	hdr["Content-Type"] = headerEventStream
	hdr["Cache-Control"] = headerNoCache
	hdr["X-Accel-Buffering"] = headerNo
	s.head = bufpool.Bytes.Get()
	st := s.st
	st.OnClose(s.sub)
	if h.cfg.Hijack && r.ProtoMajor == 1 {
		if conn, ok := hijack(w); ok {
			s.conn = conn
			if s.inline != nil {
				s.inline.raw = rawwrite.Conn(conn)
			}
			// Closing the connection ends both of the stream's goroutines
			// at once, even in the middle of a blocked write.
			st.OnAbort(func() { _ = conn.Close() })
			// No deadline per write: the watchdog closes the connection
			// when a write overruns. Clear one the server may have set.
			_ = conn.SetWriteDeadline(time.Time{})
			s.guard = h.wd.Add(func() { _ = conn.Close() })
			*s.head = s.appendIntro(httpx.AppendResponseHead(*s.head, http.StatusOK, hdr, "close"))
			go s.detached()
			return nil
		}
	}
	s.w, s.rc = w, http.NewResponseController(w)
	if r.ProtoMajor == 1 && r.ProtoMinor >= 1 {
		// An HTTP/1.1 stream is delimited by closing the connection, as a
		// hijacked one is, instead of being chunked: net/http writes each
		// batch as it is, without a chunk header to format (a sixth of its
		// write path). A stream ends only when the task did or the client
		// left, and then the client opens a new connection either way.
		hdr["Transfer-Encoding"] = headerIdentity
	}
	w.WriteHeader(http.StatusOK)
	// The server's ReadTimeout would otherwise fail the connection's
	// background read and cancel the request mid-stream.
	_ = s.rc.SetReadDeadline(time.Time{})
	// Neither the server's WriteTimeout nor a deadline per write: the
	// watchdog aborts the stream when a write overruns (a write deadline
	// in the past fails the blocked write).
	err := s.rc.SetWriteDeadline(time.Time{})
	if s.deadlines = !errors.Is(err, http.ErrNotSupported); s.deadlines {
		st.OnAbort(s.abort)
		s.guard = h.wd.Add(s.abort)
	}
	*s.head = s.appendIntro(*s.head)
	return s
}

// A stream's response header values, assigned under their canonical keys.
// Every stream shares them, never modified: net/http writes a copy of the
// handler's header, which the stream's ResponseWriter keeps as long as it
// is open, so values of its own would stay allocated for nothing.
var (
	headerEventStream = []string{"text/event-stream"}
	headerNoCache     = []string{"no-cache, no-transform"}
	headerNo          = []string{"no"}
	headerIdentity    = []string{"identity"}
)

// appendIntro appends what precedes the first event: the preamble and the
// retry field.
func (s *stream) appendIntro(b []byte) []byte {
	if n := s.h.cfg.Preamble; n > 0 {
		b = appendPreamble(b, n)
	}
	if r := s.h.cfg.Retry; r > 0 {
		b = append(b, "retry: "...)
		b = strconv.AppendInt(b, max(r.Milliseconds(), 1), 10)
		b = append(b, "\n\n"...)
	}
	return b
}

// serve runs a stream inside ServeHTTP until it ends; ctx is the request's.
func (s *stream) serve(ctx context.Context) {
	s.run(ctx)
	s.finish()
}

// finish releases a stream served inside ServeHTTP.
func (s *stream) finish() {
	s.mu.Lock()
	s.finished = true
	// The server's end-of-response write (the last chunk) needs a fresh
	// deadline: the previous one may have passed while the stream was
	// idle. An aborted stream keeps its deadline in the past.
	s.setDeadlineLocked(time.Now())
	s.mu.Unlock()
	if s.guard != nil {
		s.guard.Remove()
	}
	s.closeSub()
	s.leave()
}

// leave counts the stream out of its handler; the last one to leave
// releases the goroutines of the offload pool.
func (s *stream) leave() {
	s.st.Leave()
	s.h.life.ReleaseIfIdle(&s.h.offload)
}

// closeSub closes the subscription under its lock and drops what deliver
// left unwritten: the stream is over.
func (s *stream) closeSub() {
	s.sub.Lock()
	s.sub.Close()
	if s.inline != nil && s.inline.out != nil {
		bufpool.Bytes.Put(s.inline.out)
		s.inline.out = nil
	}
	s.sub.Unlock()
}

// abort forces a stream inside ServeHTTP to end (see Handler.Shutdown):
// with the write deadline in the past a blocked write fails, and with the
// read deadline in the past the request's context is cancelled (net/http's
// background read fails), which ends a store read.
func (s *stream) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished || s.aborted {
		return
	}
	s.aborted = true
	past := time.Unix(1, 0)
	_ = s.rc.SetReadDeadline(past)
	_ = s.rc.SetWriteDeadline(past)
}

// hijack takes over the connection, if the ResponseWriter allows it.
// Nothing has been written to the response yet, so the server's write
// buffer is empty; bytes the client sent after its request are ignored.
func hijack(w http.ResponseWriter) (net.Conn, bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	return conn, err == nil
}

// detached serves a hijacked stream: this goroutine writes, a second one
// reads so that a departing client is noticed at once. The response is
// delimited by closing the connection.
func (s *stream) detached() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// The client sends nothing after its request; a read returns
		// when it goes away (or when the stream closes the connection).
		defer cancel()
		var b [64]byte
		for {
			if _, err := s.conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	s.runDetached(ctx)
}

// runDetached runs a hijacked stream on this goroutine until it is over,
// then releases it; or returns at once when run has handed the stream to
// a new goroutine, which goes on with it (see run and resume).
func (s *stream) runDetached(ctx context.Context) {
	if s.run(ctx) {
		s.release(ctx)
	}
}

// resume goes on with a hijacked stream that run handed over: it waits
// for work, as run would have, then runs the stream.
func (s *stream) resume(ctx context.Context) {
	if s.h.waitHook != nil {
		s.h.waitHook(false)
	}
	select {
	case <-s.sub.Ready():
		s.runDetached(ctx)
	case <-ctx.Done():
		s.sub.SetEnd(fanout.EndClientGone, nil)
		s.release(ctx)
	}
}

// release ends a hijacked stream once run is over: the subscription and
// the connection close, and it leaves once the reading goroutine is done.
func (s *stream) release(ctx context.Context) {
	s.closeSub()
	_ = s.conn.Close()
	s.guard.Remove()
	<-ctx.Done()
	s.leave()
}

// run writes replay, live events and heartbeats until the terminal event,
// the client leaves (ctx), a write fails or the service or handler shuts
// down, and then returns true. A busy stream's steps run on this goroutine
// and grow its stack, which the runtime does not shrink back to the
// minimum while it waits (it would need less than 224 bytes in use): a
// hijacked stream whose first quiet step follows such steps is handed to
// a new goroutine (resume), and run returns false. A stream inside
// ServeHTTP stays on net/http's goroutine.
func (s *stream) run(ctx context.Context) (over bool) {
	more := false
	// at is when the loop last read the clock, before a step: the time a
	// batch that step writes begins. A step right after one that sent
	// reads no clock and takes the earlier time: lastSent may then be
	// older than the batch, which only makes a busy stream look quiet
	// sooner.
	var at int64
	// sent is lastSent before the steps since the last wait: whether
	// they sent tells a busy stream (see below).
	var sent int64
	// stop, while set, unregisters the wake-up of a busy stream's
	// subscription when ctx ends (see below).
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		var ok bool
		// A step right after one that sent (more) is not quiet: no clock
		// read needed.
		if !more {
			at = time.Now().UnixNano()
			sent = s.lastSent
		}
		quiet := !more && at-s.lastSent >= int64(s.h.quietAfter)
		if quiet {
			more, ok = s.offloadStep(ctx, at)
		} else {
			s.grown = true
			more, ok = s.step(ctx, at, false)
		}
		if !ok {
			return true
		}
		// Stop for shutdown. After frames went out more may be available
		// at once (replay, a burst): step again. Otherwise wait for Ready,
		// which the handler's shutdown wakes too (see start) rather than
		// being a case of its own: a goroutine parked in a select holds a
		// sudog per case, and an idle stream is mostly that.
		select {
		case <-s.h.done:
			s.sub.SetEnd(fanout.EndShutdown, nil)
			return true
		default:
		}
		if more {
			continue
		}
		if quiet && s.grown && s.conn != nil {
			// The new goroutine starts as this one would go on; a
			// busy stream's registration (stop) ends with this call.
			s.grown = false
			go s.resume(ctx)
			return false
		}
		switch {
		case quiet && stop != nil:
			stop()
			stop = nil
		case !quiet && stop == nil && s.lastSent != sent:
			// A busy stream (its steps ran on its goroutine and sent)
			// parks once per delivery: on Ready alone, which ctx's end
			// then wakes too, a receive being much cheaper than a
			// select. Registered until the stream is quiet again: its
			// context.AfterFunc costs some 300 bytes meanwhile, which a
			// stream that has never been busy does not pay.
			stop = context.AfterFunc(ctx, s.sub.Wake)
		}
		if s.h.waitHook != nil {
			s.h.waitHook(stop != nil)
		}
		if stop != nil {
			<-s.sub.Ready()
			if ctx.Err() == nil {
				continue
			}
		} else {
			select {
			case <-s.sub.Ready():
				continue
			case <-ctx.Done():
			}
		}
		s.sub.SetEnd(fanout.EndClientGone, nil)
		return true
	}
}

// writeFailed records why a write failed: a handler shutting down (which
// forces deadlines into the past), a slow consumer or a departed client.
func (s *stream) writeFailed(err error) {
	select {
	case <-s.h.done:
		s.sub.SetEnd(fanout.EndShutdown, nil)
	default:
		s.sub.SetEnd(fanout.WriteEnd(err), err)
	}
}

// offloadStep is step on another goroutine, one of the handler's pool
// that waits for quiet streams' steps (see package internal/gopool).
func (s *stream) offloadStep(ctx context.Context, at int64) (more, ok bool) {
	s.h.offload.Run(func() { more, ok = s.step(ctx, at, true) })
	return more, ok
}

// step writes what is due: the frames the subscription has now (after the
// head, the first time), or else a heartbeat if one is due. more reports
// that frames went out and more may follow at once (see
// fanout.Subscription.More: a caught-up solo member waits for its signal
// instead of calling Next for nothing); ok is false when the stream is
// over. at is the time a batch it writes begins (see run). quiet is set
// for the step of a quiet stream (see offloadStep), whose writes bypass
// net/http's response buffer (see writeAround).
func (s *stream) step(ctx context.Context, at int64, quiet bool) (more, ok bool) {
	s.sub.Lock()
	defer s.sub.Unlock()
	if in := s.inline; in != nil && in.out != nil {
		// What deliver could not write goes first.
		s.lastSent = time.Now().UnixNano()
		err := s.write(*in.out, true, false)
		bufpool.Bytes.Put(in.out)
		in.out = nil
		if err != nil {
			s.writeFailed(err)
			return false, false
		}
	}
	fp := bufpool.Frames.Get()
	frames, err := s.sub.Next(ctx, *fp)
	n := len(frames)
	var end bool
	var werr error
	if n > 0 || s.head != nil {
		end, werr = s.writeFrames(frames, at, quiet)
	}
	fanout.Release(frames) // written, or the stream is over
	*fp = frames
	bufpool.Frames.Put(fp)
	switch {
	case werr != nil:
		s.writeFailed(werr)
		return false, false
	case end:
		return false, false
	case err != nil:
		s.ended(ctx, err)
		return false, false
	case n > 0:
		s.sub.ClearHeartbeat() // frames went out: a heartbeat due now is moot
		return s.sub.More(), true
	case s.sub.HeartbeatDue():
		if err := s.heartbeat(); err != nil {
			s.writeFailed(err)
			return false, false
		}
		return false, true
	}
	return false, true
}

// writeFrames writes frames as one batch begun at at, after the head if
// that is still pending; end reports a terminal event. quiet is step's.
func (s *stream) writeFrames(frames []*fanout.Frame, at int64, quiet bool) (end bool, err error) {
	s.lastSent = at
	bp := s.head
	s.head = nil
	if bp == nil {
		bp = bufpool.Bytes.Get()
	}
	b := *bp
	for _, f := range frames {
		b = appendFrame(b, f)
		if f.Terminal {
			end = true
			break
		}
		if len(b) >= chunkSize {
			if err = s.write(b, false, quiet); err != nil {
				break
			}
			b = b[:0]
		}
	}
	*bp = b
	if err == nil {
		err = s.write(b, true, quiet)
	}
	bufpool.Bytes.Put(bp)
	return end, err
}

// streamInline is what a stream taking inline deliveries adds.
type streamInline struct {
	// raw writes to conn without waiting, for deliver; nil when conn is
	// not a socket (or the stream stayed inside ServeHTTP).
	raw syscall.RawConn
	// out holds what deliver could not write at once: the stream's
	// goroutine writes it before anything else. A pooled buffer, nil when
	// empty; guarded by the subscription's lock, like every write.
	out *[]byte
}

// appendFrame appends f as an SSE event.
func appendFrame(b []byte, f *fanout.Frame) []byte {
	b = append(b, "id: "...)
	b = append(b, f.EventID...)
	b = append(b, "\ndata: "...)
	b = append(b, f.JSON...)
	return append(b, "\n\n"...)
}

// deliver is the stream's SubscribeOpts.Deliver: it runs on a goroutine
// appending to the task, with the subscription locked, while the stream's
// own goroutine waits for Ready. It writes the frames to a hijacked socket
// with one non-blocking write, so an event reaches the client without a
// wake-up of the stream's goroutine. What the socket does not take at once
// (or everything, when there is no socket to write to without blocking or
// an earlier remainder is still waiting) is kept in out for the stream's
// goroutine, which deliver's false return wakes; that goroutine writes it
// under the write watchdog, so a slow client is cut off as usual.
func (s *stream) deliver(frames []*fanout.Frame) (sent bool) {
	if s.h.deliverHook != nil {
		defer func() { s.h.deliverHook(sent) }()
	}
	in := s.inline
	if in.out == nil {
		in.out = bufpool.Bytes.Get()
	}
	b := *in.out
	kept := len(b) > 0 // an earlier remainder goes first: keep these after it
	for _, f := range frames {
		b = appendFrame(b, f)
	}
	fanout.Release(frames) // copied
	if !kept && in.raw != nil {
		b = rawwrite.Drain(in.raw, b)
	}
	*in.out = b
	if len(b) > 0 {
		return false
	}
	bufpool.Bytes.Put(in.out)
	in.out = nil
	return true
}

// heartbeat writes a heartbeat data frame (and the comment ping): a quiet
// write, as the stream has sent nothing for a while.
func (s *stream) heartbeat() error {
	s.lastSent = time.Now().UnixNano()
	bp := bufpool.Bytes.Get()
	b := *bp
	if s.h.cfg.CommentPing {
		b = append(b, ": ping\n\n"...)
	}
	// Task ids are valid (ValidTaskID), so they need no JSON escaping.
	b = append(b, `data: {"type":"HEARTBEAT","taskId":"`...)
	b = append(b, s.sub.TaskID()...)
	b = append(b, `","eventId":"`...)
	b = append(b, s.h.hbPrefix...)
	b = strconv.AppendUint(b, s.h.hbSeq.Add(1), 10)
	b = append(b, `","createdAt":"`...)
	b = wire.AppendTime(b, svcHooks.Now(s.h.svc))
	b = append(b, "\",\"payload\":{\"live\":true}}\n\n"...)
	*bp = b
	err := s.write(b, true, true)
	bufpool.Bytes.Put(bp)
	return err
}

// write writes b, and flushes if asked, timed by the write watchdog. A
// quiet stream's write goes around net/http's response buffer if it can
// (see writeAround).
func (s *stream) write(b []byte, flush, quiet bool) error {
	if s.guard == nil {
		return s.writeFlush(b, flush, quiet)
	}
	s.guard.Begin()
	return s.guard.End(s.writeFlush(b, flush, quiet))
}

func (s *stream) writeFlush(b []byte, flush, quiet bool) error {
	if s.conn != nil {
		_, err := s.conn.Write(b)
		return err
	}
	if quiet && len(b) > 0 {
		if rf, ok := s.w.(io.ReaderFrom); ok {
			return s.writeAround(rf, b)
		}
	}
	if len(b) > 0 {
		if _, err := s.w.Write(b); err != nil {
			return err
		}
	}
	if !flush {
		return nil
	}
	return s.rc.Flush()
}

// writeAround writes b to the connection past net/http's response buffer,
// through the ResponseWriter's ReadFrom, which writes straight to the
// socket once the response header is out (hence the flush first: it sends
// the header if it has not gone yet, and nothing else is buffered). That
// buffer (2 KiB per response) is allocated with the response but not
// touched until a write goes through it, so a stream that only ever writes
// this way (one that sends heartbeats, or events now and then) keeps it
// out of the process's resident memory: about 2 KiB of the 24 KiB an idle
// stream costs. A write this way costs an allocation more than a buffered
// one; a busy stream's writes go through the buffer.
func (s *stream) writeAround(rf io.ReaderFrom, b []byte) error {
	if err := s.rc.Flush(); err != nil {
		return err
	}
	r := readers.Get().(*bytes.Reader)
	r.Reset(b)
	_, err := rf.ReadFrom(r)
	r.Reset(nil)
	readers.Put(r)
	return err
}

// readers holds the readers writeAround hands to ReadFrom.
var readers = sync.Pool{New: func() any { return new(bytes.Reader) }}

// setDeadlineLocked gives the next write WriteTimeout from now, unless the
// stream was aborted. s.mu is held.
func (s *stream) setDeadlineLocked(now time.Time) {
	if s.deadlines && !s.aborted {
		_ = s.rc.SetWriteDeadline(now.Add(s.h.cfg.WriteTimeout))
	}
}

// ended handles an error from Next: io.EOF is the normal end after the
// terminal event, ErrClosed a shutdown, a cancelled context a departed
// client. Anything else (the task was deleted, retention overtook the
// stream, the store failed) ends the stream too; the client reconnects with
// its cursor and gets a proper error response.
func (s *stream) ended(ctx context.Context, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, taskbridge.ErrClosed) || ctx.Err() != nil {
		return
	}
	level := slog.LevelWarn
	if errors.Is(err, taskbridge.ErrTaskNotFound) || errors.Is(err, taskbridge.ErrEventsExpired) {
		level = slog.LevelInfo
	}
	svcHooks.Logger(s.h.svc).LogAttrs(ctx, level, "taskbridge: sse stream ended",
		slog.String("taskId", s.sub.TaskID()), slog.String("transport", "sse"), slog.Any("error", err))
}

// appendPreamble appends a comment of n padding bytes.
func appendPreamble(b []byte, n int) []byte {
	b = append(b, ": preamble "...)
	for range n {
		b = append(b, ' ')
	}
	return append(b, "\n\n"...)
}
