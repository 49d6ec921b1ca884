package taskbridge_test

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// histograms is a MetricsSink that also records histogram observations.
type histograms struct {
	taskbridge.MemoryMetrics
	mu  sync.Mutex
	obs map[string][]float64 // name{labels} → values
}

var _ taskbridge.HistogramSink = (*histograms)(nil)

func (h *histograms) Observe(name string, v float64, labels ...taskbridge.Label) {
	key := name
	for _, l := range labels {
		key += "," + l.Name + "=" + l.Value
	}
	h.mu.Lock()
	if h.obs == nil {
		h.obs = map[string][]float64{}
	}
	h.obs[key] = append(h.obs[key], v)
	h.mu.Unlock()
}

func (h *histograms) values(key string) []float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]float64(nil), h.obs[key]...)
}

// diagHooks records Diagnostics calls.
type diagHooks struct {
	mu          sync.Mutex
	replays     []taskbridge.ReplayInfo
	deliveries  []taskbridge.DeliveryInfo
	disconnects []taskbridge.DisconnectInfo
	expired     []taskbridge.StreamInfo
	appended    []string // event types
}

func (h *diagHooks) diagnostics() taskbridge.Diagnostics {
	return taskbridge.Diagnostics{
		ReplayStart: func(_ context.Context, i taskbridge.ReplayInfo) {
			h.mu.Lock()
			h.replays = append(h.replays, i)
			h.mu.Unlock()
		},
		Delivery: func(i taskbridge.DeliveryInfo) {
			h.mu.Lock()
			h.deliveries = append(h.deliveries, i)
			h.mu.Unlock()
		},
		Disconnect: func(i taskbridge.DisconnectInfo) {
			h.mu.Lock()
			h.disconnects = append(h.disconnects, i)
			h.mu.Unlock()
		},
		EventsExpired: func(i taskbridge.StreamInfo) {
			h.mu.Lock()
			h.expired = append(h.expired, i)
			h.mu.Unlock()
		},
		EventAppended: func(_ context.Context, ev taskbridge.TaskEvent) {
			h.mu.Lock()
			h.appended = append(h.appended, string(ev.Type))
			h.mu.Unlock()
		},
	}
}

func withDiagnostics(h *diagHooks, m *histograms) envOpt {
	return func(c *taskbridge.Config, _ *memstore.Config) {
		c.Diagnostics = h.diagnostics()
		c.Metrics = m
	}
}

// TestDiagnosticsSubscribe: a Go subscription reports its replay start,
// each delivery (replayed or live) and its end, with the counts.
func TestDiagnosticsSubscribe(t *testing.T) {
	t.Parallel()
	h, m := &diagHooks{}, &histograms{}
	e := setup(t, withDiagnostics(h, m))
	id := e.started(t, alice, "r1")
	e.emit(t, id, taskbridge.ProgressPayload{Progress: 0.5})
	ctx := context.Background()
	sub, err := e.svc.Subscribe(ctx, alice, id, "1")
	require.NoError(t, err)
	ev, err := sub.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "2", ev.EventID)
	e.clock.Advance(250 * time.Millisecond)
	e.emit(t, id, taskbridge.CompletedPayload{})
	ev, err = sub.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "3", ev.EventID)
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, sub.Close())

	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.replays, 1)
	r := h.replays[0]
	require.Equal(t, "go", r.Transport)
	require.Equal(t, id, r.TaskID)
	require.Equal(t, "1", r.Cursor)
	require.NotZero(t, r.StreamID)
	require.Len(t, h.deliveries, 2)
	require.Equal(t, []string{"2", "3"}, []string{h.deliveries[0].EventID, h.deliveries[1].EventID})
	require.True(t, h.deliveries[0].Replayed)
	require.False(t, h.deliveries[1].Replayed)
	require.Equal(t, r.StreamInfo, h.deliveries[1].StreamInfo)
	require.True(t, h.deliveries[1].CreatedAt.Equal(e.clock.Now()))
	require.Len(t, h.disconnects, 1)
	d := h.disconnects[0]
	require.Equal(t, taskbridge.DisconnectTerminal, d.Reason)
	require.Equal(t, r.StreamInfo, d.StreamInfo)
	require.EqualValues(t, 2, d.Delivered)
	require.EqualValues(t, 1, d.Replayed)
	require.Equal(t, []string{"TASK_STARTED", "TASK_PROGRESS", "TASK_COMPLETED"}, h.appended)

	require.Len(t, m.values("delivery_latency_seconds,transport=go"), 2)
	require.Equal(t, []float64{1}, m.values("replay_events,transport=go"))
	require.Len(t, m.values("stream_lifetime_seconds,transport=go"), 1)
	// Subscriptions are not streams of a transport.
	require.Zero(t, m.Value(taskbridge.MetricStreamsActive, taskbridge.Label{Name: "transport", Value: "go"}))
}

// TestDiagnosticsSubscribeClosedByCaller: Close before the end is "client
// gone"; Shutdown is "shutdown".
func TestDiagnosticsSubscribeClosedByCaller(t *testing.T) {
	t.Parallel()
	h, m := &diagHooks{}, &histograms{}
	e := setup(t, withDiagnostics(h, m))
	id := e.started(t, alice, "r1")
	sub, err := e.svc.Subscribe(context.Background(), alice, id, "")
	require.NoError(t, err)
	require.NoError(t, sub.Close())
	sub2, err := e.svc.Subscribe(context.Background(), alice, id, "")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = sub2.Next(ctx)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.svc.Shutdown(ctx) }()
	_, err = sub2.Next(ctx)
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	require.NoError(t, <-done)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.disconnects, 2)
	require.Equal(t, taskbridge.DisconnectClientGone, h.disconnects[0].Reason)
	require.Equal(t, taskbridge.DisconnectShutdown, h.disconnects[1].Reason)
}

// TestDiagnosticsPoll: a poll reports its start with the cursor and each
// event it returns; its wait is recorded.
func TestDiagnosticsPoll(t *testing.T) {
	t.Parallel()
	h, m := &diagHooks{}, &histograms{}
	e := setup(t, withDiagnostics(h, m))
	id := e.started(t, alice, "r1")
	ctx := context.Background()
	resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{})
	require.NoError(t, err)
	require.Len(t, resp.Events, 1)
	require.Empty(t, m.values("poll_wait_seconds"), "a poll that found events did not wait")
	resp, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: 30 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, resp.Events)
	waits := m.values("poll_wait_seconds")
	require.Len(t, waits, 1)
	require.GreaterOrEqual(t, waits[0], 0.03)
	e.emit(t, id, taskbridge.ProgressPayload{Progress: 0.5})
	resp, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1"})
	require.NoError(t, err)
	require.Len(t, resp.Events, 1)

	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.replays, 3)
	require.Equal(t, taskbridge.ReplayInfo{StreamInfo: taskbridge.StreamInfo{Transport: "poll", TaskID: id}}, h.replays[0])
	require.Equal(t, "1", h.replays[2].Cursor)
	require.Len(t, h.deliveries, 2)
	require.Equal(t, "1", h.deliveries[0].EventID)
	require.False(t, h.deliveries[0].Replayed)
	require.Equal(t, "2", h.deliveries[1].EventID)
	require.True(t, h.deliveries[1].Replayed)
	require.Empty(t, h.disconnects)
	require.Len(t, m.values("delivery_latency_seconds,transport=poll"), 2)
	require.Equal(t, []float64{0, 1}, m.values("replay_events,transport=poll"))
}

// TestDiagnosticsEventsExpired: a poll or a subscription whose cursor was
// removed by retention is reported and counted by transport.
func TestDiagnosticsEventsExpired(t *testing.T) {
	t.Parallel()
	h, m := &diagHooks{}, &histograms{}
	e := setup(t, withDiagnostics(h, m), func(_ *taskbridge.Config, mc *memstore.Config) { mc.MaxEventsPerTask = 2 })
	id := e.started(t, alice, "r1")
	for range 3 {
		e.emit(t, id, taskbridge.ProgressPayload{Progress: 0.5})
	}
	_, err := e.svc.PollEvents(context.Background(), alice, id, taskbridge.PollRequest{AfterEventID: "1"})
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
	_, err = e.svc.Subscribe(context.Background(), alice, id, "1")
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Equal(t, []taskbridge.StreamInfo{{Transport: "poll", TaskID: id}, {Transport: "go", TaskID: id}}, h.expired)
	require.EqualValues(t, 1, m.Value(taskbridge.MetricEventsExpired, taskbridge.Label{Name: "transport", Value: "poll"}))
	require.EqualValues(t, 1, m.Value(taskbridge.MetricEventsExpired, taskbridge.Label{Name: "transport", Value: "go"}))
}

// TestActionLatencyIsRecorded: an action's handling time is observed by
// outcome.
func TestActionLatencyIsRecorded(t *testing.T) {
	t.Parallel()
	m := &histograms{}
	e := setup(t, func(c *taskbridge.Config, _ *memstore.Config) { c.Metrics = m })
	id, sid := e.suspended(t, "r1", 0)
	req := taskbridge.ActionRequest{ClientActionID: "a1", SuspendID: sid, ActionType: "approve", Payload: json.RawMessage(`{}`)}
	_, err := e.svc.SubmitAction(context.Background(), alice, id, req)
	require.NoError(t, err)
	_, err = e.svc.SubmitAction(context.Background(), alice, id, taskbridge.ActionRequest{ClientActionID: "a2", SuspendID: "nope", ActionType: "approve"})
	require.Error(t, err)
	require.Len(t, m.values("action_latency_seconds,status=ACCEPTED"), 1)
	require.Len(t, m.values("action_latency_seconds,status=ERROR"), 1)
}
