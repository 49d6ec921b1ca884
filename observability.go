package taskbridge

import (
	"context"
	"sort"
	"sync"
)

// Metric names, as in the upstream TaskBridge backend. Each is recorded in
// exactly one place.
const (
	// MetricTaskStarts counts tasks created and accepted by the executor.
	MetricTaskStarts = "task_starts_total"
	// MetricDuplicates counts create requests answered with an existing task.
	MetricDuplicates = "duplicates_total"
	// MetricTaskFailures counts TASK_FAILED events appended.
	MetricTaskFailures = "task_failures_total"
	// MetricCancels counts first cancellation requests of a task.
	MetricCancels = "cancels_total"
	// MetricReplays counts polls and stream subscriptions that resume from a
	// non-empty cursor.
	MetricReplays = "replays_total"
	// MetricActions counts action submissions by outcome (label "status").
	MetricActions = "actions_total"
	// MetricActionsAccepted counts accepted actions.
	MetricActionsAccepted = "actions_accepted_total"
	// MetricActionsResumePending counts accepted actions whose resume
	// hand-off failed and was left for reconciliation.
	MetricActionsResumePending = "actions_resume_pending_total"
	// MetricStreamsActive is the number of open subscriptions (label
	// "transport"); an up/down gauge.
	MetricStreamsActive = "streams_active"
	// MetricSlowConsumerDisconnects counts streams dropped because a write
	// did not complete within the write timeout (label "transport").
	MetricSlowConsumerDisconnects = "slow_consumer_disconnects_total"
	// MetricEventsExpired counts cursors found expired: polls and
	// subscriptions refused with 410 EVENTS_EXPIRED and streams that fell
	// behind retention (label "transport").
	MetricEventsExpired = "events_expired_total"
)

// Histogram names, recorded only when [Config].Metrics implements
// [HistogramSink]. Durations are in seconds.
const (
	// MetricDeliveryLatency is the time from an event's append to its
	// delivery to a client (label "transport": poll, sse, ws, go).
	MetricDeliveryLatency = "delivery_latency_seconds"
	// MetricStreamLifetime is how long a stream was open (label
	// "transport").
	MetricStreamLifetime = "stream_lifetime_seconds"
	// MetricPollWait is how long a long poll waited for events (only polls
	// that waited: no events were there when they arrived).
	MetricPollWait = "poll_wait_seconds"
	// MetricReplaySize is the number of events a stream or a poll with a
	// cursor read from history (label "transport"). Streams record it when
	// they end.
	MetricReplaySize = "replay_events"
	// MetricActionLatency is the time to handle an action submission, by
	// outcome (label "status", as in actions_total).
	MetricActionLatency = "action_latency_seconds"
)

// Label is a metric dimension.
type Label struct {
	Name, Value string
}

// MetricsSink receives the service's metrics. Implementations must be safe
// for concurrent use and should not block.
type MetricsSink interface {
	// AddCounter adds delta (>= 0) to a counter.
	AddCounter(name string, delta int64, labels ...Label)
	// AddGauge adds delta (possibly negative) to an up/down gauge.
	AddGauge(name string, delta int64, labels ...Label)
}

// HistogramSink is implemented by [MetricsSink]s that also record
// distributions (the Metric*Latency and other histogram names). The
// service checks for it with a type assertion; sinks without it get the
// counters and gauges only. Observe must be safe for concurrent use, must
// not block, and must not keep labels (the service reuses the slice).
type HistogramSink interface {
	// Observe records one value of the named histogram.
	Observe(name string, value float64, labels ...Label)
}

type nopMetrics struct{}

func (nopMetrics) AddCounter(string, int64, ...Label) {}
func (nopMetrics) AddGauge(string, int64, ...Label)   {}

// MemoryMetrics is a [MetricsSink] that keeps values in memory, for tests and
// diagnostics endpoints.
type MemoryMetrics struct {
	mu     sync.Mutex
	values map[string]int64
}

// AddCounter implements [MetricsSink].
func (m *MemoryMetrics) AddCounter(name string, delta int64, labels ...Label) {
	m.add(name, delta, labels)
}

// AddGauge implements [MetricsSink].
func (m *MemoryMetrics) AddGauge(name string, delta int64, labels ...Label) {
	m.add(name, delta, labels)
}

func (m *MemoryMetrics) add(name string, delta int64, labels []Label) {
	key := metricKey(name, labels)
	m.mu.Lock()
	if m.values == nil {
		m.values = map[string]int64{}
	}
	m.values[key] += delta
	m.mu.Unlock()
}

// Value returns the current value of a metric series, e.g.
// Value("actions_total", Label{"status", "ACCEPTED"}).
func (m *MemoryMetrics) Value(name string, labels ...Label) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.values[metricKey(name, labels)]
}

// Snapshot returns every series as "name{label=value,...}" → value.
func (m *MemoryMetrics) Snapshot() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.values))
	for k, v := range m.values {
		out[k] = v
	}
	return out
}

func metricKey(name string, labels []Label) string {
	if len(labels) == 0 {
		return name
	}
	ls := append([]Label(nil), labels...)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	key := name + "{"
	for i, l := range ls {
		if i > 0 {
			key += ","
		}
		key += l.Name + "=" + l.Value
	}
	return key + "}"
}

// ReadinessProbe reports whether a dependency is ready to serve. Stores and
// executors may implement it.
type ReadinessProbe interface {
	// CheckReady returns nil when ready, or an error saying why not.
	CheckReady(ctx context.Context) error
}

// ProbeFunc adapts a function to [ReadinessProbe].
type ProbeFunc func(ctx context.Context) error

// CheckReady implements [ReadinessProbe].
func (f ProbeFunc) CheckReady(ctx context.Context) error { return f(ctx) }

// ProbeResult is one named probe's outcome in a [ReadinessReport].
type ProbeResult struct {
	// Status is "ready" or "not_ready".
	Status string `json:"status"`
	// Message explains a not_ready status.
	Message string `json:"message,omitempty"`
}

// ReadinessReport is the outcome of [Readiness.Check].
type ReadinessReport struct {
	// Status is "ready" when every probe is ready, else "not_ready".
	Status  string                 `json:"status"`
	Details map[string]ProbeResult `json:"details"`
}

// Ready reports whether every probe was ready.
func (r ReadinessReport) Ready() bool { return r.Status == "ready" }

// Readiness is a composite [ReadinessProbe] over named probes; all must be
// ready. Probes run concurrently.
type Readiness map[string]ReadinessProbe

// CheckReady implements [ReadinessProbe].
func (r Readiness) CheckReady(ctx context.Context) error {
	rep := r.Check(ctx)
	if rep.Ready() {
		return nil
	}
	names := make([]string, 0, len(rep.Details))
	for n, d := range rep.Details {
		if d.Status != "ready" {
			names = append(names, n+": "+d.Message)
		}
	}
	sort.Strings(names)
	return &notReadyError{names}
}

type notReadyError struct{ reasons []string }

func (e *notReadyError) Error() string {
	s := "taskbridge: not ready"
	for _, r := range e.reasons {
		s += "; " + r
	}
	return s
}

// Check runs every probe and reports each outcome.
func (r Readiness) Check(ctx context.Context) ReadinessReport {
	rep := ReadinessReport{Status: "ready", Details: make(map[string]ProbeResult, len(r))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, p := range r {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := ProbeResult{Status: "ready"}
			if err := p.CheckReady(ctx); err != nil {
				res = ProbeResult{Status: "not_ready", Message: err.Error()}
			}
			mu.Lock()
			rep.Details[name] = res
			if res.Status != "ready" {
				rep.Status = "not_ready"
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return rep
}
