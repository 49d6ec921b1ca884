package prometheus_test

import (
	"strings"
	"testing"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	tbprom "github.com/taskbridge-go/taskbridge/prometheus"
)

func newSink(t *testing.T, cfg tbprom.Config) (*tbprom.Sink, *prom.Registry) {
	t.Helper()
	reg := prom.NewRegistry()
	cfg.Registerer = reg
	s, err := tbprom.New(cfg)
	require.NoError(t, err)
	return s, reg
}

func TestSinkRecordsUnderThePrefix(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t, tbprom.Config{})
	s.AddCounter(taskbridge.MetricTaskStarts, 2)
	s.AddCounter(taskbridge.MetricActions, 1, taskbridge.Label{Name: "status", Value: "ACCEPTED"})
	s.AddGauge(taskbridge.MetricStreamsActive, 3, taskbridge.Label{Name: "transport", Value: "sse"})
	s.AddGauge(taskbridge.MetricStreamsActive, -1, taskbridge.Label{Name: "transport", Value: "sse"})
	s.AddCounter(taskbridge.MetricSlowConsumerDisconnects, 1, taskbridge.Label{Name: "transport", Value: "ws"})
	s.Observe(taskbridge.MetricDeliveryLatency, 0.003, taskbridge.Label{Name: "transport", Value: "sse"})
	s.Observe(taskbridge.MetricPollWait, 1.5)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP taskbridge_task_starts_total Tasks created and accepted by the executor.
# TYPE taskbridge_task_starts_total counter
taskbridge_task_starts_total 2
# HELP taskbridge_actions_total Action submissions by outcome.
# TYPE taskbridge_actions_total counter
taskbridge_actions_total{status="ACCEPTED"} 1
# HELP taskbridge_streams_active Open SSE streams and WebSocket subscriptions.
# TYPE taskbridge_streams_active gauge
taskbridge_streams_active{transport="sse"} 2
# HELP taskbridge_slow_consumer_disconnects_total Streams dropped because a write did not complete within the write timeout.
# TYPE taskbridge_slow_consumer_disconnects_total counter
taskbridge_slow_consumer_disconnects_total{transport="ws"} 1
`), "taskbridge_task_starts_total", "taskbridge_actions_total", "taskbridge_streams_active",
		"taskbridge_slow_consumer_disconnects_total"))

	n, err := testutil.GatherAndCount(reg, "taskbridge_delivery_latency_seconds", "taskbridge_poll_wait_seconds")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		require.True(t, strings.HasPrefix(mf.GetName(), "taskbridge_"), mf.GetName())
		if mf.GetName() == "taskbridge_poll_wait_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			require.EqualValues(t, 1, h.GetSampleCount())
			require.InDelta(t, 1.5, h.GetSampleSum(), 1e-9)
		}
	}
}

// TestSinkOptions: namespace, const labels and buckets are applied; bucket
// overrides must name a histogram.
func TestSinkOptions(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t, tbprom.Config{
		Namespace: "app", ConstLabels: prom.Labels{"replica": "a"},
		Buckets: map[string][]float64{taskbridge.MetricPollWait: {1, 2}},
	})
	s.Observe(taskbridge.MetricPollWait, 1.5)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "app_poll_wait_seconds" {
			continue
		}
		found = true
		m := mf.GetMetric()[0]
		require.Equal(t, "replica", m.GetLabel()[0].GetName())
		require.Len(t, m.GetHistogram().GetBucket(), 2)
		require.EqualValues(t, 1, m.GetHistogram().GetBucket()[1].GetCumulativeCount())
	}
	require.True(t, found)

	_, err = tbprom.New(tbprom.Config{Registerer: prom.NewRegistry(), Buckets: map[string][]float64{taskbridge.MetricCancels: {1}}})
	require.ErrorContains(t, err, "not a taskbridge histogram")
}

// TestSinkTwiceOnOneRegistry fails: the collectors are registered already.
func TestSinkTwiceOnOneRegistry(t *testing.T) {
	t.Parallel()
	reg := prom.NewRegistry()
	_, err := tbprom.New(tbprom.Config{Registerer: reg})
	require.NoError(t, err)
	_, err = tbprom.New(tbprom.Config{Registerer: reg})
	require.ErrorContains(t, err, "registering taskbridge_")
}

// TestSinkUnknownMetrics: a metric the sink does not know is registered on
// first use with the labels it came with; other label sets are dropped.
func TestSinkUnknownMetrics(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t, tbprom.Config{})
	s.AddCounter("widgets_total", 2, taskbridge.Label{Name: "kind", Value: "a"})
	s.AddCounter("widgets_total", 5, taskbridge.Label{Name: "other", Value: "b"})
	s.AddCounter(taskbridge.MetricActions, 1) // missing its label: dropped
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP taskbridge_widgets_total taskbridge metric widgets_total.
# TYPE taskbridge_widgets_total counter
taskbridge_widgets_total{kind="a"} 2
`), "taskbridge_widgets_total", "taskbridge_actions_total"))
}

// TestObserveDoesNotAllocate: recording into an existing series allocates
// nothing, so the per-delivery latency histogram is cheap.
func TestObserveDoesNotAllocate(t *testing.T) {
	s, _ := newSink(t, tbprom.Config{})
	labels := []taskbridge.Label{{Name: "transport", Value: "sse"}}
	s.Observe(taskbridge.MetricDeliveryLatency, 0.001, labels...)
	allocs := testing.AllocsPerRun(1000, func() {
		s.Observe(taskbridge.MetricDeliveryLatency, 0.001, labels...)
		s.AddGauge(taskbridge.MetricStreamsActive, 1, labels...)
	})
	require.Zero(t, allocs)
}
