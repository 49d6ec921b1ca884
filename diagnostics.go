package taskbridge

import (
	"context"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// Diagnostics are hooks into the life of the transports' streams and long
// polls, for metrics, tracing and debugging (the reference backend's
// TransportDiagnosticsSink). Set the functions you need in
// [Config].Diagnostics; a nil function is not called, and the zero value
// costs nothing: no call and no allocation per delivered event.
//
// Transports are "poll" (httpapi's long poll), "sse", "ws" and "go"
// ([Service.Subscribe]). The hooks are called on the goroutine serving the
// stream or the request: they must be safe for concurrent use and must not
// block, since a slow hook slows the stream down.
type Diagnostics struct {
	// ReplayStart is called when a stream has subscribed, or a long poll
	// starts reading, after the client's cursor (empty: from the start).
	// ctx is the request's (for a WebSocket, the connection's, which
	// carries the upgrade request's values but not its cancellation).
	ReplayStart func(ctx context.Context, info ReplayInfo)
	// Delivery is called for every event handed to a client: by a stream
	// as it writes it, by a long poll for each event of its answer.
	Delivery func(info DeliveryInfo)
	// Heartbeat is called when an idle SSE or WebSocket subscription is
	// sent a heartbeat.
	Heartbeat func(info StreamInfo)
	// Disconnect is called once when a stream ends, with the reason.
	Disconnect func(info DisconnectInfo)
	// EventsExpired is called when a client's cursor names events that
	// retention removed: a long poll or a subscription refused with
	// [ErrEventsExpired] (StreamID 0), or a stream that fell behind
	// retention (followed by Disconnect with [DisconnectEventsExpired]).
	EventsExpired func(info StreamInfo)
	// EventAppended is called after an executor's event was appended
	// through the service's [Emitter] (not for a repeated EmitOnce), with
	// the executor's context: trace context it carries links events to the
	// task.
	EventAppended func(ctx context.Context, ev TaskEvent)
}

// StreamInfo identifies a stream or a long poll in [Diagnostics] hooks.
type StreamInfo struct {
	// Transport is "poll", "sse", "ws" or "go".
	Transport string
	// TaskID is the task's id.
	TaskID string
	// StreamID identifies one stream within the service, from ReplayStart
	// to Disconnect; several subscriptions of one WebSocket have distinct
	// ids. It is 0 for long polls and for refused subscriptions.
	StreamID uint64
}

// ReplayInfo is the argument of [Diagnostics].ReplayStart.
type ReplayInfo struct {
	StreamInfo
	// Cursor is the client's lastEventId or afterEventId ("" for none).
	Cursor string
}

// DeliveryInfo is the argument of [Diagnostics].Delivery.
type DeliveryInfo struct {
	StreamInfo
	// EventID and Seq identify the event.
	EventID string
	Seq     int64
	// CreatedAt is when the event was appended; time.Since(CreatedAt) is
	// its append-to-delivery latency.
	CreatedAt time.Time
	// Replayed reports an event read from the store's history for this
	// client rather than delivered live as it was appended. Every event a
	// long poll returns is read from the store, so for polls it reports a
	// poll with a cursor.
	Replayed bool
}

// DisconnectReason says why a stream ended.
type DisconnectReason string

// Reasons a stream ends, in [DisconnectInfo].
const (
	// DisconnectClientGone: the client closed the connection, cancelled
	// the request, replaced the subscription (WebSocket) or closed its
	// [Subscription].
	DisconnectClientGone DisconnectReason = fanout.EndClientGone
	// DisconnectSlowConsumer: a write did not complete within the write
	// timeout; the client resumes by cursor when it reconnects.
	DisconnectSlowConsumer DisconnectReason = fanout.EndSlowConsumer
	// DisconnectShutdown: the handler or the service shut down.
	DisconnectShutdown DisconnectReason = fanout.EndShutdown
	// DisconnectTerminal: the task's terminal event was delivered (or the
	// cursor was at it).
	DisconnectTerminal DisconnectReason = fanout.EndTerminal
	// DisconnectEventsExpired: retention removed events the stream had
	// yet to deliver.
	DisconnectEventsExpired DisconnectReason = fanout.EndExpired
	// DisconnectError: reading the store failed, or the task was deleted.
	DisconnectError DisconnectReason = fanout.EndError
)

// DisconnectInfo is the argument of [Diagnostics].Disconnect.
type DisconnectInfo struct {
	StreamInfo
	// Reason says why the stream ended.
	Reason DisconnectReason
	// Err is the error behind DisconnectSlowConsumer (the write's),
	// DisconnectEventsExpired and DisconnectError, or nil.
	Err error
	// Lifetime is how long the stream was open.
	Lifetime time.Duration
	// Replayed counts the events read from the store's history for this
	// stream; Delivered counts every event it handed out, replayed or
	// live.
	Replayed, Delivered int64
}

// Labels of the transports, made once so that recording a metric per
// delivery does not allocate.
var transportLabels = map[string][]Label{
	"poll": {{"transport", "poll"}},
	"sse":  {{"transport", "sse"}},
	"ws":   {{"transport", "ws"}},
	"go":   {{"transport", "go"}},
}

func labelsOf(transport string) []Label {
	if l, ok := transportLabels[transport]; ok {
		return l
	}
	return []Label{{"transport", transport}}
}

// observer returns the fan-out's observer: the Diagnostics hooks and the
// stream metrics. Nil when neither is wanted, so that the fan-out skips it.
func (s *Service) observer() *fanout.Observer {
	d := s.cfg.Diagnostics
	hist := s.hist
	var obs fanout.Observer
	if d.Delivery != nil || hist != nil {
		obs.Deliver = func(sub *fanout.Subscription, f *fanout.Frame, replayed bool) {
			s.delivered(streamInfo(sub), f.EventID, f.Seq, f.CreatedAt, replayed)
		}
	}
	if d.Heartbeat != nil {
		obs.Heartbeat = func(sub *fanout.Subscription) { d.Heartbeat(streamInfo(sub)) }
	}
	// Ends feed counters, which every sink has: always observed.
	obs.End = func(sub *fanout.Subscription, end fanout.End) {
		info := DisconnectInfo{
			StreamInfo: streamInfo(sub), Reason: DisconnectReason(end.Reason), Err: end.Err,
			Lifetime: end.Lifetime, Replayed: end.Replayed, Delivered: end.Delivered,
		}
		s.disconnected(info)
	}
	return &obs
}

func streamInfo(sub *fanout.Subscription) StreamInfo {
	return StreamInfo{Transport: sub.Transport(), TaskID: sub.TaskID(), StreamID: sub.ID()}
}

// delivered reports one delivered event to the hook and the latency
// histogram.
func (s *Service) delivered(info StreamInfo, eventID string, seq, createdAt int64, replayed bool) {
	var at time.Time
	if createdAt != 0 {
		at = time.Unix(0, createdAt)
	}
	if fn := s.cfg.Diagnostics.Delivery; fn != nil {
		fn(DeliveryInfo{StreamInfo: info, EventID: eventID, Seq: seq, CreatedAt: at, Replayed: replayed})
	}
	if s.hist != nil && createdAt != 0 {
		s.hist.Observe(MetricDeliveryLatency, s.now().Sub(at).Seconds(), labelsOf(info.Transport)...)
	}
}

func (s *Service) disconnected(info DisconnectInfo) {
	labels := labelsOf(info.Transport)
	switch info.Reason {
	case DisconnectSlowConsumer:
		s.metrics.AddCounter(MetricSlowConsumerDisconnects, 1, labels...)
	case DisconnectEventsExpired:
		s.eventsExpired(info.StreamInfo)
	}
	if s.hist != nil {
		s.hist.Observe(MetricStreamLifetime, info.Lifetime.Seconds(), labels...)
		s.hist.Observe(MetricReplaySize, float64(info.Replayed), labels...)
	}
	if fn := s.cfg.Diagnostics.Disconnect; fn != nil {
		fn(info)
	}
}

func (s *Service) eventsExpired(info StreamInfo) {
	s.metrics.AddCounter(MetricEventsExpired, 1, labelsOf(info.Transport)...)
	if fn := s.cfg.Diagnostics.EventsExpired; fn != nil {
		fn(info)
	}
}

func (s *Service) replayStart(ctx context.Context, info StreamInfo, cursor string) {
	if fn := s.cfg.Diagnostics.ReplayStart; fn != nil {
		fn(ctx, ReplayInfo{StreamInfo: info, Cursor: cursor})
	}
}
