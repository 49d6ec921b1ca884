// Package prometheus records taskbridge's metrics in Prometheus
// collectors: set a [Sink] as taskbridge.Config.Metrics and serve the
// registry (promhttp.Handler for the default one).
//
//	sink, err := prometheus.New(prometheus.Config{}) // registers with prometheus.DefaultRegisterer
//	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: exec, Metrics: sink})
//	mux.Handle("GET /metrics", promhttp.Handler())
//
// Every name starts with "taskbridge_" (Config.Namespace):
//
//	counter   task_starts_total, duplicates_total, task_failures_total,
//	          cancels_total, replays_total, actions_accepted_total,
//	          actions_resume_pending_total
//	counter   actions_total{status}
//	counter   slow_consumer_disconnects_total{transport}, events_expired_total{transport}
//	gauge     streams_active{transport}
//	histogram delivery_latency_seconds{transport}   append → delivery
//	histogram stream_lifetime_seconds{transport}
//	histogram poll_wait_seconds
//	histogram replay_events{transport}              events read from history
//	histogram action_latency_seconds{status}
//
// transport is poll, sse, ws or go (taskbridge.Service.Subscribe). The
// service records all of them itself; the histograms because [Sink]
// implements taskbridge.HistogramSink. docs/OPERATIONS.md describes each
// and what to alert on.
package prometheus
