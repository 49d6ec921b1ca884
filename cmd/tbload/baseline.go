package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// baselineServer is the yardstick: the minimal SSE broadcaster one writes
// by hand. Every event is encoded once into one []byte; publishing hands it
// to each subscriber's buffered channel (waiting when one is full), and each
// subscriber's handler writes it and flushes when its channel is drained.
// No store, no replay, no authorization: only the fan-out. It serves the
// same route and frames as taskbridge's SSE handler and the same control
// endpoints.
//
// It also answers long polls on taskbridge's poll route, as minimally: each
// task keeps its published events' JSON, a poll with nothing after its
// cursor waits on a channel that the next publish closes, and the answer is
// those JSON bytes in the protocol's poll envelope.
type baselineServer struct {
	heartbeat time.Duration
	buffer    int
	// direct writes each event to each subscriber's hijacked connection
	// from the publisher's goroutine (see serverConfig.Direct).
	direct bool

	mu       sync.Mutex
	tasks    map[string]*baselineTask
	mux      *http.ServeMux
	ctl      *control
	watching atomic.Int64 // tasks with a waiting long poll

	done     chan struct{} // closed by shutdown: streams end
	doneOnce sync.Once
}

type baselineTask struct {
	seq  int64
	subs map[*baselineSub]struct{}
	// conns are the direct-mode subscribers' hijacked connections.
	conns []net.Conn
	// events holds the JSON of the published events, Seq startedSeq+1 on.
	events [][]byte
	// changed is closed by the next publish; made by the first long poll
	// that waits for it. polls counts the waiting long polls.
	changed chan struct{}
	polls   int
}

type baselineSub struct {
	ch   chan []byte   // frames; closed after the terminal one
	gone chan struct{} // closed when the handler returns
}

// baselineBuffer is the default per-subscriber channel capacity, in
// events; taskbridge keeps a window of 1024 events per task.
const baselineBuffer = 1024

func newBaselineServer(cfg serverConfig) *baselineServer {
	s := &baselineServer{
		heartbeat: cfg.Heartbeat, buffer: baselineBuffer, direct: cfg.Direct,
		tasks: map[string]*baselineTask{}, mux: http.NewServeMux(), done: make(chan struct{}),
	}
	if s.heartbeat == 0 {
		s.heartbeat = 15 * time.Second
	}
	s.mux.HandleFunc("GET /api/v1/tasks/{taskId}/events/stream", s.stream)
	s.mux.HandleFunc("GET /api/v1/tasks/{taskId}/events", s.poll)
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]string{"status": "ok"}) })
	s.ctl = &control{b: s, watching: &s.watching}
	s.ctl.register(s.mux)
	return s
}

// shutdown ends the streams, so that http.Server.Shutdown does not wait
// for them.
func (s *baselineServer) shutdown(context.Context) error {
	s.doneOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	for _, t := range s.tasks {
		for _, c := range t.conns {
			_ = c.Close()
		}
		t.conns = nil
	}
	s.mu.Unlock()
	return s.ctl.endProfile()
}

func (s *baselineServer) close(context.Context) error { return nil }

// ServeHTTP implements http.Handler.
func (s *baselineServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *baselineServer) stream(w http.ResponseWriter, r *http.Request) {
	if s.direct {
		s.directStream(w, r)
		return
	}
	sub := &baselineSub{ch: make(chan []byte, s.buffer), gone: make(chan struct{})}
	id := r.PathValue("taskId")
	s.mu.Lock()
	t := s.tasks[id]
	if t != nil {
		t.subs[sub] = struct{}{}
	}
	s.mu.Unlock()
	if t == nil {
		http.NotFound(w, r)
		return
	}
	defer func() {
		s.mu.Lock()
		delete(t.subs, sub)
		s.mu.Unlock()
	}()
	// Runs first: a publisher waiting on this subscriber holds s.mu.
	defer close(sub.gone)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	var tick <-chan time.Time
	if s.heartbeat > 0 {
		ticker := time.NewTicker(s.heartbeat)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case frame, ok := <-sub.ch:
			if !ok {
				return
			}
			if _, err := w.Write(frame); err != nil {
				return
			}
			if len(sub.ch) == 0 {
				flusher.Flush()
			}
		case <-tick:
			_, _ = fmt.Fprintf(w, "data: {\"type\":\"HEARTBEAT\",\"taskId\":\"%s\",\"live\":true}\n\n", id)
			flusher.Flush()
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}

// directStream hijacks the connection, writes the response head and hands
// the connection to the task: from then on the publisher writes each event
// to it and closes it after the terminal one. No goroutine, channel or
// timer per stream; no heartbeats, no departure detection, no write
// timeout: a yardstick for healthy clients only.
func (s *baselineServer) directStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("taskId")
	s.mu.Lock()
	t := s.tasks[id]
	s.mu.Unlock()
	if t == nil {
		http.NotFound(w, r)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	// The head is written and the connection joins the task under one
	// lock, which the publisher holds while it writes: the client, which
	// counts itself subscribed once it has the head, gets every event
	// published after that, and nothing before the head.
	hdr := http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := conn.Write(httpx.AppendResponseHead(nil, http.StatusOK, hdr, "close")); err != nil {
		_ = conn.Close()
		return
	}
	t.conns = append(t.conns, conn)
}

// poll answers a long poll: the events after afterEventId, waiting up to
// waitTimeoutMs for one when there are none.
func (s *baselineServer) poll(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("taskId")
	q := r.URL.Query()
	after, err := strconv.ParseInt(q.Get("afterEventId"), 10, 64)
	if err != nil {
		http.Error(w, "bad afterEventId", http.StatusBadRequest)
		return
	}
	waitMs, err := strconv.Atoi(q.Get("waitTimeoutMs"))
	if err != nil || waitMs < 0 {
		http.Error(w, "bad waitTimeoutMs", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	t := s.tasks[id]
	switch {
	case t == nil:
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	case after < startedSeq || after > t.seq:
		s.mu.Unlock()
		http.Error(w, "bad afterEventId", http.StatusBadRequest)
		return
	}
	if after == t.seq && waitMs > 0 {
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		changed := t.changed
		if t.polls++; t.polls == 1 {
			s.watching.Add(1)
		}
		s.mu.Unlock()
		timer := time.NewTimer(time.Duration(waitMs) * time.Millisecond)
		select {
		case <-changed:
		case <-timer.C:
		case <-r.Context().Done():
		case <-s.done:
		}
		timer.Stop()
		s.mu.Lock()
		if t.polls--; t.polls == 0 {
			s.watching.Add(-1)
		}
	}
	events := t.events[after-startedSeq:]
	n := 64 + len(id)
	for _, ev := range events {
		n += len(ev) + 1
	}
	body := make([]byte, 0, n)
	body = append(append(append(body, `{"taskId":"`...), id...), `","events":[`...)
	for i, ev := range events {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, ev...)
	}
	body = strconv.AppendInt(append(body, `],"nextAfterEventId":"`...), after+int64(len(events)), 10)
	body = append(body, `","hasMore":false}`...)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *baselineServer) createTask(context.Context) (string, error) {
	id := uuid.NewString()
	s.mu.Lock()
	s.tasks[id] = &baselineTask{seq: startedSeq, subs: map[*baselineSub]struct{}{}}
	s.mu.Unlock()
	return id, nil
}

func (s *baselineServer) publish(ctx context.Context, taskID string, progress float64, sent time.Time, terminal bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[taskID]
	if t == nil {
		return errNotFound
	}
	t.seq++
	data, err := benchEventJSON(taskID, t.seq, progress, sent, terminal)
	if err != nil {
		return err
	}
	t.events = append(t.events, data)
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
	frame := make([]byte, 0, len(data)+32)
	frame = append(strconv.AppendInt(append(frame, "id: "...), t.seq, 10), "\ndata: "...)
	frame = append(append(frame, data...), "\n\n"...)
	for _, c := range t.conns {
		_, _ = c.Write(frame)
		if terminal {
			_ = c.Close()
		}
	}
	if terminal {
		t.conns = nil
	}
	for sub := range t.subs {
		select {
		case sub.ch <- frame:
		case <-sub.gone:
		case <-ctx.Done():
			return ctx.Err()
		}
		if terminal {
			close(sub.ch)
		}
	}
	if terminal {
		clear(t.subs)
	}
	return nil
}

// benchEventJSON encodes a published event (see benchPayload) with the
// given id, as taskbridge would.
func benchEventJSON(taskID string, seq int64, progress float64, sent time.Time, terminal bool) ([]byte, error) {
	p := benchPayload(progress, sent, terminal)
	raw, err := taskbridge.EncodePayload(p)
	if err != nil {
		return nil, err
	}
	return wire.AppendEvent(nil, string(p.EventType()), taskID, strconv.FormatInt(seq, 10), sent, raw), nil
}
