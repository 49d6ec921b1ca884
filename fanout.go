package taskbridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/bridge"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// The fan-out engine (internal/fanout) serves long polls, SSE, WebSocket and
// Go subscribers alike. This file wires a Service to it: the engine reads
// the Service's EventStore through eventSource, which encodes each event
// once; the transports reach it through the hooks installed below.

func init() {
	bridge.Install(bridge.Hooks[Service, AuthContext]{
		Logger: func(s *Service) *slog.Logger { return s.log },
		Now:    func(s *Service) time.Time { return s.now().UTC() },
		Subscribe: func(ctx context.Context, s *Service, auth AuthContext, taskID, lastEventID string, opts fanout.SubscribeOpts) (*fanout.Subscription, error) {
			return s.subscribe(ctx, auth, taskID, lastEventID, opts)
		},
	})
}

// newHub returns the fan-out of s.
func newHub(s *Service) (*fanout.Hub, error) {
	return fanout.New(fanout.Config{
		Source: newEventSource(s.store),
		Batch:  s.cfg.ReplayBatch,
		Logger: s.log,
		StreamsActive: func(transport string, delta int64) {
			if transport != "go" { // Subscribe's are not streams of a transport
				s.metrics.AddGauge(MetricStreamsActive, delta, labelsOf(transport)...)
			}
		},
		Observer:          s.observer(),
		InlineReads:       inlineReads(s.store),
		DisableWakePacing: s.cfg.DisableWakePacing,
		ErrClosed:         ErrClosed,
		ErrExpired:        ErrEventsExpired,
		ErrNotFound:       ErrTaskNotFound,
		ErrInvalidCursor:  ErrInvalidCursor,
	})
}

// inlineReads reports whether store may be read from inside its watch
// callbacks (see InlineReader).
func inlineReads(store EventStore) bool {
	r, ok := store.(InlineReader)
	return ok && r.InlineReads()
}

// eventSource is the engine's view of an EventStore: events read once and
// encoded once, into frames every subscriber shares.
type eventSource struct {
	store  EventStore
	lender EventLender // store, when it lends its events
	// vouched is set when the lender vouches for the payloads it lends
	// (VettedAppender): their encoding does not check them.
	vouched bool
}

var _ fanout.Source = eventSource{}

func newEventSource(store EventStore) eventSource {
	l, _ := store.(EventLender)
	return eventSource{store: store, lender: l, vouched: l != nil && vettedAppender(store) != nil}
}

func (s eventSource) Read(ctx context.Context, taskID string, after int64, limit int) ([]*fanout.Frame, error) {
	if s.lender != nil {
		return s.readLent(ctx, taskID, after, limit)
	}
	events, err := s.store.Read(ctx, taskID, after, limit)
	if err != nil {
		return nil, err
	}
	return framesOf(events, taskID, false), nil
}

// readLent encodes the events the store lends: no copy of them is made,
// and a read of one event allocates nothing but, when no released frame
// is at hand, its frame and JSON (see framesOf).
func (s eventSource) readLent(ctx context.Context, taskID string, after int64, limit int) ([]*fanout.Frame, error) {
	c := frameCollectors.Get().(*frameCollector)
	c.taskID, c.vouched = taskID, s.vouched
	err := s.lender.LendEvents(ctx, taskID, after, limit, c.encode)
	frames := c.frames
	c.frames, c.taskID = nil, ""
	frameCollectors.Put(c)
	if err != nil {
		return nil, err
	}
	return frames, nil
}

// frameCollector holds the frames of a lent read; pooled with its encode
// method value, so that a read allocates no callback.
type frameCollector struct {
	taskID  string // the read's
	vouched bool   // the store vouches for the payloads (see eventSource)
	frames  []*fanout.Frame
	encode  func([]TaskEvent)
}

var frameCollectors = sync.Pool{New: func() any {
	c := &frameCollector{}
	c.encode = func(events []TaskEvent) { c.frames = framesOf(events, c.taskID, c.vouched) }
	return c
}}

// framesOf encodes events, read from taskID's log, into frames; vouched
// is set when the store vouches for their payloads (see newFrame). A read
// of one event, the usual read of a live stream, allocates nothing when a
// released frame can be reused (see fanout.Release): the frame carries the
// slice holding it.
func framesOf(events []TaskEvent, taskID string, vouched bool) []*fanout.Frame {
	if len(events) == 1 {
		return newFrame(&events[0], taskID, vouched).Single()
	}
	frames := make([]*fanout.Frame, len(events))
	for i := range events {
		frames[i] = newFrame(&events[i], taskID, vouched)
	}
	return frames
}

func (s eventSource) Watch(taskID string, notify func()) (stop func()) {
	return s.store.Watch(taskID, notify)
}

// newFrame encodes ev, read from taskID's log, into a frame whose buffer
// has room for it, so that the encoding allocates at most once.
//
// The hub reads only the logs of tasks whose ids passed ValidTaskID (every
// subscription and long poll starts with ownedTask), so an event that
// carries the read's task id and a protocol event type needs neither
// checked for escaping; anything else a store returns is checked as usual.
// Nor is the payload when vouched: the store vouches for it (see
// VettedAppender).
func newFrame(ev *TaskEvent, taskID string, vouched bool) *fanout.Frame {
	f := fanout.NewFrame(ev.jsonSize())
	f.Seq = ev.Seq
	f.EventID = ev.EventID
	f.Terminal = ev.Terminal()
	switch {
	case ev.TaskID == taskID && ev.Type.Valid() && vouched:
		f.JSON = wire.AppendVettedEvent(f.JSON, string(ev.Type), ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload)
	case ev.TaskID == taskID && ev.Type.Valid():
		f.JSON = wire.AppendSafeEvent(f.JSON, string(ev.Type), ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload)
	default:
		f.JSON = wire.AppendEvent(f.JSON, string(ev.Type), ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload)
	}
	if !ev.CreatedAt.IsZero() {
		f.CreatedAt = ev.CreatedAt.UnixNano()
	}
	return f
}

// jsonSize is the length of ev's wire encoding on the encoder's fast path:
// a buffer of this capacity holds it without growing.
func (ev TaskEvent) jsonSize() int {
	return wire.EventOverhead + len(ev.Type) + len(ev.TaskID) + len(ev.EventID) + len(ev.Payload)
}

// subscribe checks that auth may see the task and that lastEventID is a
// valid, unexpired cursor, and returns a fan-out subscription delivering
// every event strictly after it: first replayed from the store, then live.
// Errors are those of the checks ([ErrTaskNotFound], [ErrInvalidCursor],
// [ErrEventsExpired], [ErrClosed]), so a transport can answer them before
// it commits to a stream. The caller must Close the subscription.
func (s *Service) subscribe(ctx context.Context, auth AuthContext, taskID, lastEventID string, opts fanout.SubscribeOpts) (*fanout.Subscription, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	after, err := ParseEventID(lastEventID)
	if err != nil {
		return nil, err
	}
	task, err := s.ownedTask(ctx, auth, taskID)
	if err != nil {
		return nil, err
	}
	if opts.Transport == "" {
		opts.Transport = "go"
	}
	transport := opts.Transport
	sub, err := s.hub.Subscribe(ctx, taskID, fanout.Start{After: after, LastSeq: task.LastSeq, Terminal: task.Status.Terminal()}, opts)
	if err != nil {
		if errors.Is(err, ErrEventsExpired) {
			s.eventsExpired(StreamInfo{Transport: transport, TaskID: taskID})
		}
		return nil, err
	}
	if lastEventID != "" {
		s.metrics.AddCounter(MetricReplays, 1)
	}
	s.replayStart(ctx, streamInfo(sub), lastEventID)
	s.log.LogAttrs(ctx, slog.LevelDebug, "taskbridge: subscribed",
		slog.String("taskId", taskID), slog.String("eventId", lastEventID),
		slog.String("userId", auth.Subject), slog.String("transport", transport),
		slog.String("outcome", "subscribed"))
	return sub, nil
}
