package streamtest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// Recorder records every call of the service's diagnostics hooks.
type Recorder struct {
	mu          sync.Mutex
	replays     []taskbridge.ReplayInfo
	deliveries  []taskbridge.DeliveryInfo
	heartbeats  []taskbridge.StreamInfo
	disconnects []taskbridge.DisconnectInfo
	expired     []taskbridge.StreamInfo
	appended    []taskbridge.TaskEvent
}

// Diagnostics returns hooks that record into r.
func (r *Recorder) Diagnostics() taskbridge.Diagnostics {
	return taskbridge.Diagnostics{
		ReplayStart: func(_ context.Context, i taskbridge.ReplayInfo) { rec(r, &r.replays, i) },
		Delivery:    func(i taskbridge.DeliveryInfo) { rec(r, &r.deliveries, i) },
		Heartbeat:   func(i taskbridge.StreamInfo) { rec(r, &r.heartbeats, i) },
		Disconnect:  func(i taskbridge.DisconnectInfo) { rec(r, &r.disconnects, i) },
		EventsExpired: func(i taskbridge.StreamInfo) {
			rec(r, &r.expired, i)
		},
		EventAppended: func(_ context.Context, ev taskbridge.TaskEvent) { rec(r, &r.appended, ev) },
	}
}

func rec[T any](r *Recorder, list *[]T, v T) {
	r.mu.Lock()
	*list = append(*list, v)
	r.mu.Unlock()
}

func get[T any](r *Recorder, list *[]T) []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*list)
}

// Replays returns the ReplayStart calls so far.
func (r *Recorder) Replays() []taskbridge.ReplayInfo { return get(r, &r.replays) }

// Deliveries returns the Delivery calls so far.
func (r *Recorder) Deliveries() []taskbridge.DeliveryInfo { return get(r, &r.deliveries) }

// Heartbeats returns the Heartbeat calls so far.
func (r *Recorder) Heartbeats() []taskbridge.StreamInfo { return get(r, &r.heartbeats) }

// Disconnects returns the Disconnect calls so far.
func (r *Recorder) Disconnects() []taskbridge.DisconnectInfo { return get(r, &r.disconnects) }

// Expired returns the EventsExpired calls so far.
func (r *Recorder) Expired() []taskbridge.StreamInfo { return get(r, &r.expired) }

// Appended returns the events reported by EventAppended so far.
func (r *Recorder) Appended() []taskbridge.TaskEvent { return get(r, &r.appended) }

// WaitDisconnect waits for the Disconnect call of the task's only stream
// and returns it.
func (r *Recorder) WaitDisconnect(t testing.TB, taskID string) taskbridge.DisconnectInfo {
	t.Helper()
	var found taskbridge.DisconnectInfo
	require.Eventually(t, func() bool {
		for _, d := range r.Disconnects() {
			if d.TaskID == taskID {
				found = d
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "no Disconnect for task %s", taskID)
	return found
}
