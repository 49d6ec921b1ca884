package prometheus

import (
	"fmt"
	"sort"
	"sync"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/taskbridge-go/taskbridge"
)

// DefaultNamespace is the default [Config].Namespace: every metric name
// starts with "taskbridge_".
const DefaultNamespace = "taskbridge"

// Default histogram buckets, by metric (see [Config].Buckets).
var (
	// LatencyBuckets are the default buckets of the latency histograms
	// (delivery_latency_seconds, action_latency_seconds): 0.5 ms to 5 s.
	LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	// LifetimeBuckets are the default buckets of stream_lifetime_seconds:
	// 1 s to 2 h.
	LifetimeBuckets = []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200}
	// PollWaitBuckets are the default buckets of poll_wait_seconds: 10 ms
	// to the longest wait (60 s).
	PollWaitBuckets = []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 25, 60}
	// ReplayBuckets are the default buckets of replay_events.
	ReplayBuckets = []float64{0, 1, 5, 10, 50, 100, 500, 1000, 5000}
)

// Config configures a [Sink]. A zero field means its default.
type Config struct {
	// Registerer is where New registers the collectors. Defaults to
	// prometheus.DefaultRegisterer (served by promhttp.Handler()).
	Registerer prom.Registerer
	// Namespace prefixes every metric name. Defaults to "taskbridge".
	Namespace string
	// Buckets overrides the buckets of histograms by their taskbridge name
	// (taskbridge.MetricDeliveryLatency and the other histogram names).
	// Defaults to LatencyBuckets, LifetimeBuckets, PollWaitBuckets and
	// ReplayBuckets.
	Buckets map[string][]float64
	// ConstLabels are added to every metric (for example the replica).
	ConstLabels prom.Labels
}

// metric describes one of taskbridge's metrics.
type metric struct {
	kind    kind
	labels  []string
	help    string
	buckets []float64
}

type kind int

const (
	counter kind = iota
	gauge
	histogram
)

// metrics are the series the service records, with their fixed labels.
var metrics = map[string]metric{
	taskbridge.MetricTaskStarts:           {counter, nil, "Tasks created and accepted by the executor.", nil},
	taskbridge.MetricDuplicates:           {counter, nil, "Create requests answered with an existing task.", nil},
	taskbridge.MetricTaskFailures:         {counter, nil, "TASK_FAILED events appended.", nil},
	taskbridge.MetricCancels:              {counter, nil, "First cancellation requests of a task.", nil},
	taskbridge.MetricReplays:              {counter, nil, "Polls and stream subscriptions resuming from a cursor.", nil},
	taskbridge.MetricActions:              {counter, []string{"status"}, "Action submissions by outcome.", nil},
	taskbridge.MetricActionsAccepted:      {counter, nil, "Accepted actions.", nil},
	taskbridge.MetricActionsResumePending: {counter, nil, "Accepted actions whose resume hand-off failed and awaits reconciliation.", nil},
	taskbridge.MetricStreamsActive:        {gauge, []string{"transport"}, "Open SSE streams and WebSocket subscriptions.", nil},
	taskbridge.MetricSlowConsumerDisconnects: {counter, []string{"transport"},
		"Streams dropped because a write did not complete within the write timeout.", nil},
	taskbridge.MetricEventsExpired: {counter, []string{"transport"},
		"Cursors found expired (410 EVENTS_EXPIRED, WebSocket close 4410).", nil},
	taskbridge.MetricDeliveryLatency: {histogram, []string{"transport"},
		"Time from an event's append to its delivery to a client, in seconds.", LatencyBuckets},
	taskbridge.MetricStreamLifetime: {histogram, []string{"transport"}, "How long streams were open, in seconds.", LifetimeBuckets},
	taskbridge.MetricPollWait:       {histogram, nil, "How long long polls waited for events, in seconds.", PollWaitBuckets},
	taskbridge.MetricReplaySize: {histogram, []string{"transport"},
		"Events read from history per stream and per poll with a cursor.", ReplayBuckets},
	taskbridge.MetricActionLatency: {histogram, []string{"status"}, "Time to handle an action submission, in seconds.", LatencyBuckets},
}

// Sink is a [taskbridge.MetricsSink] and [taskbridge.HistogramSink] that
// records into Prometheus collectors. Set it as taskbridge.Config.Metrics;
// the service then records every metric listed in the package
// documentation. It is safe for concurrent use.
type Sink struct {
	cfg    Config
	mu     sync.RWMutex
	series map[string]*series // by taskbridge metric name
}

// series is one registered collector and a cache of its children by label
// values, so that recording allocates nothing once a child exists.
type series struct {
	labels   []string
	counter  *prom.CounterVec
	gauge    *prom.GaugeVec
	hist     *prom.HistogramVec
	mu       sync.RWMutex
	children map[string]any // joined label values → prom.Counter/Gauge/Observer
}

var (
	_ taskbridge.MetricsSink   = (*Sink)(nil)
	_ taskbridge.HistogramSink = (*Sink)(nil)
)

// New registers taskbridge's collectors with cfg.Registerer and returns the
// sink. It fails if they are registered already (two sinks on one
// registry).
func New(cfg Config) (*Sink, error) {
	if cfg.Registerer == nil {
		cfg.Registerer = prom.DefaultRegisterer
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	for name := range cfg.Buckets {
		if m, ok := metrics[name]; !ok || m.kind != histogram {
			return nil, fmt.Errorf("prometheus: Config.Buckets: %q is not a taskbridge histogram", name)
		}
	}
	s := &Sink{cfg: cfg, series: make(map[string]*series, len(metrics))}
	names := make([]string, 0, len(metrics))
	for name := range metrics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := s.register(name, metrics[name]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// register creates and registers the collector of a metric.
func (s *Sink) register(name string, m metric) (*series, error) {
	se := &series{labels: m.labels, children: map[string]any{}}
	var c prom.Collector
	switch m.kind {
	case counter:
		se.counter = prom.NewCounterVec(prom.CounterOpts{
			Namespace: s.cfg.Namespace, Name: name, Help: m.help, ConstLabels: s.cfg.ConstLabels,
		}, m.labels)
		c = se.counter
	case gauge:
		se.gauge = prom.NewGaugeVec(prom.GaugeOpts{
			Namespace: s.cfg.Namespace, Name: name, Help: m.help, ConstLabels: s.cfg.ConstLabels,
		}, m.labels)
		c = se.gauge
	case histogram:
		buckets := m.buckets
		if b, ok := s.cfg.Buckets[name]; ok {
			buckets = b
		}
		se.hist = prom.NewHistogramVec(prom.HistogramOpts{
			Namespace: s.cfg.Namespace, Name: name, Help: m.help, ConstLabels: s.cfg.ConstLabels, Buckets: buckets,
		}, m.labels)
		c = se.hist
	}
	if err := s.cfg.Registerer.Register(c); err != nil {
		return nil, fmt.Errorf("prometheus: registering %s_%s: %w", s.cfg.Namespace, name, err)
	}
	s.series[name] = se
	return se, nil
}

// get returns the series of name, registering one with the given labels
// for a name the sink does not know (a metric added to taskbridge later),
// or nil if that fails.
func (s *Sink) get(name string, k kind, labels []taskbridge.Label) *series {
	s.mu.RLock()
	se := s.series[name]
	s.mu.RUnlock()
	if se != nil {
		return se
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if se = s.series[name]; se != nil {
		return se
	}
	names := make([]string, len(labels))
	for i, l := range labels {
		names[i] = l.Name
	}
	sort.Strings(names)
	help := "taskbridge metric " + name + "."
	se, err := s.register(name, metric{kind: k, labels: names, help: help, buckets: prom.DefBuckets})
	if err != nil {
		return nil
	}
	return se
}

// child returns the collector child for labels, in the series' label
// order; nil when the labels do not match the series'.
func (se *series) child(labels []taskbridge.Label) any {
	key, ok := se.key(labels)
	if !ok {
		return nil
	}
	se.mu.RLock()
	c := se.children[key]
	se.mu.RUnlock()
	if c != nil {
		return c
	}
	values := make([]string, len(se.labels))
	for i, n := range se.labels {
		for _, l := range labels {
			if l.Name == n {
				values[i] = l.Value
			}
		}
	}
	var err error
	switch {
	case se.counter != nil:
		c, err = se.counter.GetMetricWithLabelValues(values...)
	case se.gauge != nil:
		c, err = se.gauge.GetMetricWithLabelValues(values...)
	default:
		c, err = se.hist.GetMetricWithLabelValues(values...)
	}
	if err != nil {
		return nil
	}
	se.mu.Lock()
	se.children[key] = c
	se.mu.Unlock()
	return c
}

// key identifies a child by its label values. The common cases (no label,
// one label) build no string.
func (se *series) key(labels []taskbridge.Label) (string, bool) {
	if len(labels) != len(se.labels) {
		return "", false
	}
	switch len(labels) {
	case 0:
		return "", true
	case 1:
		return labels[0].Value, labels[0].Name == se.labels[0]
	}
	key := ""
	for _, n := range se.labels {
		found := false
		for _, l := range labels {
			if l.Name == n {
				key += l.Value + "\xff"
				found = true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	return key, true
}

// AddCounter implements [taskbridge.MetricsSink].
func (s *Sink) AddCounter(name string, delta int64, labels ...taskbridge.Label) {
	if se := s.get(name, counter, labels); se != nil && se.counter != nil {
		if c, ok := se.child(labels).(prom.Counter); ok && delta >= 0 {
			c.Add(float64(delta))
		}
	}
}

// AddGauge implements [taskbridge.MetricsSink].
func (s *Sink) AddGauge(name string, delta int64, labels ...taskbridge.Label) {
	if se := s.get(name, gauge, labels); se != nil && se.gauge != nil {
		if g, ok := se.child(labels).(prom.Gauge); ok {
			g.Add(float64(delta))
		}
	}
}

// Observe implements [taskbridge.HistogramSink].
func (s *Sink) Observe(name string, value float64, labels ...taskbridge.Label) {
	if se := s.get(name, histogram, labels); se != nil && se.hist != nil {
		if o, ok := se.child(labels).(prom.Observer); ok {
			o.Observe(value)
		}
	}
}
