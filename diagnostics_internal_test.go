package taskbridge

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// countingSink is a MetricsSink and HistogramSink that allocates nothing.
type countingSink struct{ observed int }

func (*countingSink) AddCounter(string, int64, ...Label)  {}
func (*countingSink) AddGauge(string, int64, ...Label)    {}
func (c *countingSink) Observe(string, float64, ...Label) { c.observed++ }

// TestDeliveryObservationDoesNotAllocate: with Diagnostics unset and no
// HistogramSink the fan-out gets no delivery hook at all; with a Delivery
// hook and a HistogramSink, reporting a delivery allocates nothing.
func TestDeliveryObservationDoesNotAllocate(t *testing.T) {
	s := &Service{metrics: nopMetrics{}, now: time.Now}
	require.Nil(t, s.observer().Deliver, "free when unset: no hook per delivery")

	sink := &countingSink{}
	var calls int
	s = &Service{metrics: sink, hist: sink, now: time.Now, cfg: Config{Diagnostics: Diagnostics{
		Delivery: func(DeliveryInfo) { calls++ },
	}}}
	obs := s.observer()
	hub, err := fanout.New(fanout.Config{Source: emptySource{}, Observer: obs})
	require.NoError(t, err)
	sub, err := hub.Subscribe(context.Background(), "task-1", fanout.Start{}, fanout.SubscribeOpts{Transport: "sse"})
	require.NoError(t, err)
	defer func() { sub.Close(); require.NoError(t, hub.Shutdown(context.Background())) }()
	frame := &fanout.Frame{Seq: 1, EventID: "1", CreatedAt: 1}
	allocs := testing.AllocsPerRun(1000, func() { obs.Deliver(sub, frame, false) })
	require.Zero(t, allocs)
	require.Positive(t, calls)
	require.Positive(t, sink.observed)
}

// emptySource is a fanout.Source of tasks without events.
type emptySource struct{}

func (emptySource) Read(context.Context, string, int64, int) ([]*fanout.Frame, error) {
	return nil, nil
}
func (emptySource) Watch(string, func()) func() { return func() {} }

// BenchmarkDeliveryObservation measures what the service adds to each
// delivered event: nothing without hooks or histograms (the fan-out gets
// no Deliver function), a call with a Delivery hook, and a histogram
// observation with a HistogramSink.
func BenchmarkDeliveryObservation(b *testing.B) {
	frame := &fanout.Frame{Seq: 1, EventID: "1", CreatedAt: 1}
	sink := &countingSink{}
	for _, bc := range []struct {
		name string
		s    *Service
	}{
		{"unset", &Service{metrics: nopMetrics{}, now: time.Now}},
		{"delivery-hook", &Service{metrics: nopMetrics{}, now: time.Now, cfg: Config{Diagnostics: Diagnostics{Delivery: func(DeliveryInfo) {}}}}},
		{"histogram", &Service{metrics: sink, hist: sink, now: time.Now}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			obs := bc.s.observer()
			hub, err := fanout.New(fanout.Config{Source: emptySource{}, Observer: obs})
			require.NoError(b, err)
			sub, err := hub.Subscribe(context.Background(), "task-1", fanout.Start{}, fanout.SubscribeOpts{Transport: "sse"})
			require.NoError(b, err)
			defer func() { sub.Close(); require.NoError(b, hub.Shutdown(context.Background())) }()
			b.ReportAllocs()
			for b.Loop() {
				if obs.Deliver != nil {
					obs.Deliver(sub, frame, false)
				}
			}
		})
	}
}
