package sse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/bufpool"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/streamlife"
	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// chunkSize is how many bytes of a batch collect before they are written:
// each write gets its own deadline, so a large batch to a healthy client
// never runs into the write timeout. Buffers come from package bufpool and
// are held only while a batch is written, so an idle stream keeps none.
const chunkSize = 64 << 10

// stream is one client connection's write side: either the ResponseWriter
// (rc set) or a hijacked connection (conn set).
type stream struct {
	h      *Handler
	st     *streamlife.Stream
	taskID string

	w         http.ResponseWriter
	rc        *http.ResponseController
	deadlines bool // rc supports write deadlines

	conn net.Conn
}

// serve streams sub to the client and releases it and st.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, sub *fanout.Subscription, st *streamlife.Stream) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache, no-transform")
	hdr.Set("X-Accel-Buffering", "no")
	s := &stream{h: h, st: st, taskID: sub.TaskID()}
	if !h.cfg.DisableHijack && r.ProtoMajor == 1 {
		if conn, ok := hijack(w); ok {
			s.conn = conn
			// Closing the connection ends both of the stream's goroutines
			// at once, even in the middle of a blocked write.
			st.OnAbort(func() { _ = conn.Close() })
			head := bufpool.Bytes.Get()
			*head = httpx.AppendResponseHead(*head, http.StatusOK, hdr, "close")
			go s.detached(sub, head)
			return
		}
	}
	defer st.Leave()
	defer sub.Close()
	s.w, s.rc, s.deadlines = w, http.NewResponseController(w), true
	w.WriteHeader(http.StatusOK)
	// The server's ReadTimeout would otherwise fail the connection's
	// background read and cancel the request mid-stream.
	_ = s.rc.SetReadDeadline(time.Time{})
	s.run(r.Context(), sub, bufpool.Bytes.Get())
	// The server's end-of-response write (the last chunk) needs a fresh
	// deadline: the previous one may have passed while the stream was idle.
	s.setDeadline()
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
func (s *stream) detached(sub *fanout.Subscription, head *[]byte) {
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
	s.run(ctx, sub, head)
	sub.Close()
	_ = s.conn.Close()
	<-ctx.Done()
	s.st.Leave()
}

// run writes head (a pooled buffer it releases: the response head of a
// hijacked connection, or nothing) with the preamble, then replay, live
// events and heartbeats until the terminal event, the client leaves (ctx),
// a write fails or the service or handler shuts down.
func (s *stream) run(ctx context.Context, sub *fanout.Subscription, head *[]byte) {
	if n := s.h.cfg.Preamble; n > 0 {
		*head = appendPreamble(*head, n)
	}
	if r := s.h.cfg.Retry; r > 0 {
		*head = append(*head, "retry: "...)
		*head = strconv.AppendInt(*head, max(r.Milliseconds(), 1), 10)
		*head = append(*head, "\n\n"...)
	}
	err := s.write(*head, true)
	bufpool.Bytes.Put(head)
	if err != nil {
		return
	}
	for {
		fp := bufpool.Frames.Get()
		frames, err := sub.Next(ctx, *fp)
		*fp = frames
		n := len(frames)
		if n > 0 {
			end, werr := s.writeFrames(frames)
			bufpool.Frames.Put(fp)
			if end || werr != nil {
				return
			}
		} else {
			bufpool.Frames.Put(fp)
		}
		if err != nil {
			s.ended(ctx, err)
			return
		}
		if n > 0 {
			sub.HeartbeatDue() // frames went out: a heartbeat due now is moot
			// More may be available at once (replay, a burst); stop only
			// for shutdown.
			select {
			case <-s.h.done:
				return
			default:
			}
			continue
		}
		if sub.HeartbeatDue() && s.heartbeat() != nil {
			return
		}
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			return
		case <-s.h.done:
			return
		}
	}
}

// writeFrames writes frames as one batch; end reports a terminal event.
func (s *stream) writeFrames(frames []*fanout.Frame) (end bool, err error) {
	bp := bufpool.Bytes.Get()
	b := *bp
	for _, f := range frames {
		b = append(b, "id: "...)
		b = append(b, f.EventID...)
		b = append(b, "\ndata: "...)
		b = append(b, f.JSON...)
		b = append(b, "\n\n"...)
		if f.Terminal {
			end = true
			break
		}
		if len(b) >= chunkSize {
			if err = s.write(b, false); err != nil {
				break
			}
			b = b[:0]
		}
	}
	*bp = b
	if err == nil {
		err = s.write(b, true)
	}
	bufpool.Bytes.Put(bp)
	return end, err
}

// heartbeat writes a heartbeat data frame (and the comment ping).
func (s *stream) heartbeat() error {
	bp := bufpool.Bytes.Get()
	b := *bp
	if s.h.cfg.CommentPing {
		b = append(b, ": ping\n\n"...)
	}
	// Task ids are valid (ValidTaskID), so they need no JSON escaping.
	b = append(b, `data: {"type":"HEARTBEAT","taskId":"`...)
	b = append(b, s.taskID...)
	b = append(b, `","eventId":"`...)
	b = append(b, s.h.hbPrefix...)
	b = strconv.AppendUint(b, s.h.hbSeq.Add(1), 10)
	b = append(b, `","createdAt":"`...)
	b = wire.AppendTime(b, svcHooks.Now(s.h.svc))
	b = append(b, "\",\"payload\":{\"live\":true}}\n\n"...)
	*bp = b
	err := s.write(b, true)
	bufpool.Bytes.Put(bp)
	return err
}

// write writes b under a fresh write deadline, and flushes if asked.
func (s *stream) write(b []byte, flush bool) error {
	if s.conn != nil {
		if err := s.conn.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)); err != nil {
			return err
		}
		_, err := s.conn.Write(b)
		return err
	}
	s.setDeadline()
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

func (s *stream) setDeadline() {
	if !s.deadlines {
		return
	}
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)); errors.Is(err, http.ErrNotSupported) {
		s.deadlines = false
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
		slog.String("taskId", s.taskID), slog.String("transport", "sse"), slog.Any("error", err))
}

// appendPreamble appends a comment of n padding bytes.
func appendPreamble(b []byte, n int) []byte {
	b = append(b, ": preamble "...)
	for range n {
		b = append(b, ' ')
	}
	return append(b, "\n\n"...)
}
