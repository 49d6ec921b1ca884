package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// scrape fetches /metrics and parses it.
func (e *env) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := e.client.Get(e.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	require.NoError(t, err)
	return mfs
}

// sample returns the value of the series of name with exactly the given
// label values (counter, gauge, or a histogram's sample count), and
// whether it exists.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && got[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsAfterAScriptedRun drives the demo like a client would (a task
// followed by long polling, one over SSE, an approval over WebSocket, a
// cancelled task) and checks what /metrics reports: names, labels and
// values.
func TestMetricsAfterAScriptedRun(t *testing.T) {
	t.Parallel()
	e := setup(t)
	delivered := map[string]int{}

	// Long polling.
	id := e.create(t, "alice", taskGreet, map[string]any{"steps": 2, "stepDelayMs": 1})
	delivered["poll"] += len(readUntil(t, e.follow(t, "poll", "alice", id), nil))

	// SSE.
	id = e.create(t, "alice", taskStream, map[string]any{"count": 3, "intervalMs": 1})
	delivered["sse"] += len(readUntil(t, e.follow(t, "sse", "alice", id), nil))

	// WebSocket, with an action.
	id = e.create(t, "alice", taskApproval, map[string]any{"ttlMs": 60000})
	r := e.follow(t, "ws", "alice", id)
	evs := readUntil(t, r, isType(suspended))
	sus := requireSuspension(t, evs[len(evs)-1], 60*time.Second)
	require.Equal(t, taskbridge.ActionAccepted, e.act(t, "alice", id, sus, actionApprove).Status)
	evs = append(evs, readUntil(t, r, nil)...)
	delivered["ws"] += len(evs)

	// Cancel, followed by long polling.
	id = e.create(t, "alice", taskGreet, map[string]any{"steps": 3, "stepDelayMs": 60000})
	pr := e.follow(t, "poll", "alice", id)
	n := len(readUntil(t, pr, isType(started)))
	// A long poll that waits for the next step, in vain.
	resp, b := e.request(t, http.MethodGet, "/api/v1/tasks/"+id+"/events?afterEventId=1&waitTimeoutMs=50", "alice", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.Equal(t, taskbridge.CancelRequested, e.cancel(t, "alice", id, nil).Status)
	delivered["poll"] += n + len(readUntil(t, pr, nil))

	var mfs map[string]*dto.MetricFamily
	// Streams end just after their terminal event went out.
	require.Eventually(t, func() bool {
		mfs = e.scrape(t)
		sse, _ := sample(mfs, "taskbridge_stream_lifetime_seconds", "transport", "sse")
		ws, _ := sample(mfs, "taskbridge_stream_lifetime_seconds", "transport", "ws")
		return sse == 1 && ws == 1
	}, testTimeout, 10*time.Millisecond)

	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"taskbridge_task_starts_total", nil, 4},
		{"taskbridge_cancels_total", nil, 1},
		{"taskbridge_actions_total", []string{"status", "ACCEPTED"}, 1},
		{"taskbridge_actions_accepted_total", nil, 1},
		{"taskbridge_action_latency_seconds", []string{"status", "ACCEPTED"}, 1},
		{"taskbridge_streams_active", []string{"transport", "sse"}, 0},
		{"taskbridge_streams_active", []string{"transport", "ws"}, 0},
		{"taskbridge_delivery_latency_seconds", []string{"transport", "poll"}, float64(delivered["poll"])},
		{"taskbridge_delivery_latency_seconds", []string{"transport", "sse"}, float64(delivered["sse"])},
		{"taskbridge_delivery_latency_seconds", []string{"transport", "ws"}, float64(delivered["ws"])},
		{"taskbridge_replay_events", []string{"transport", "sse"}, 1},
		{"taskbridge_replay_events", []string{"transport", "ws"}, 1},
	}
	for _, w := range want {
		v, ok := sample(mfs, w.name, w.labels...)
		require.True(t, ok, "%s%v is not served", w.name, w.labels)
		require.Equal(t, w.value, v, "%s%v", w.name, w.labels)
	}
	// Polls with a cursor recorded how many events they read.
	v, ok := sample(mfs, "taskbridge_replay_events", "transport", "poll")
	require.True(t, ok)
	require.Positive(t, v)
	// The long poll that waited in vain, at least.
	v, ok = sample(mfs, "taskbridge_poll_wait_seconds")
	require.True(t, ok)
	require.Positive(t, v)
	sum := mfs["taskbridge_poll_wait_seconds"].GetMetric()[0].GetHistogram().GetSampleSum()
	require.GreaterOrEqual(t, sum, 0.05)
	require.Equal(t, dto.MetricType_HISTOGRAM, mfs["taskbridge_delivery_latency_seconds"].GetType())
	// Nothing was slow or expired: those counters have no series yet.
	require.NotContains(t, mfs, "taskbridge_slow_consumer_disconnects_total")
	require.NotContains(t, mfs, "taskbridge_events_expired_total")
	// The Go runtime's metrics come along.
	require.Contains(t, mfs, "go_goroutines")
}

// TestMetricsCanBeTurnedOff: with DisableMetrics there is no /metrics
// route (the API's 404 envelope answers).
func TestMetricsCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	e := setup(t, config{DisableMetrics: true})
	resp, err := e.client.Get(e.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
