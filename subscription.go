package taskbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// Subscription is a stream of one task's events for a Go program: replayed
// from the store after its cursor, then live, on the same fan-out as the
// SSE and WebSocket transports. Create it with [Service.Subscribe].
type Subscription struct {
	taskID string
	done   chan struct{} // closed by Close
	once   sync.Once

	mu     sync.Mutex // held by Next while it reads and by Close
	sub    *fanout.Subscription
	frames []*fanout.Frame // the last batch read
	next   int             // frames[next:] are still to be returned
	err    error           // the error that ended the subscription
}

// Subscribe checks that auth may see the task and that lastEventID is a
// valid, unexpired cursor ("" or "0" for the start of the retained log),
// and returns a subscription that delivers every event strictly after it.
// Errors are those of the checks: [ErrTaskNotFound], [ErrInvalidCursor],
// [ErrEventsExpired], [ErrUnauthenticated], [ErrClosed]. The caller must
// Close the subscription.
//
// Subscriptions are not counted in the streams_active gauge, which counts
// the transports' streams.
func (s *Service) Subscribe(ctx context.Context, auth AuthContext, taskID, lastEventID string) (*Subscription, error) {
	sub, err := s.subscribe(ctx, auth, taskID, lastEventID, fanout.SubscribeOpts{})
	if err != nil {
		return nil, err
	}
	return &Subscription{taskID: taskID, sub: sub, done: make(chan struct{})}, nil
}

// TaskID returns the subscribed task's id.
func (sub *Subscription) TaskID() string { return sub.taskID }

// Next returns the next event, waiting for it as long as ctx allows. After
// the task's terminal event it returns io.EOF. It returns [ErrClosed] after
// Close or when the service shuts down, [ErrEventsExpired] when retention
// removed events the subscription had yet to deliver, [ErrTaskNotFound]
// when the task was deleted, and ctx's error when ctx ends first. Any
// error but ctx's ends the subscription: it releases its resources at once
// (so a service shutdown does not wait for Close) and Next returns that
// error from then on. Call Next from one goroutine at a time.
func (sub *Subscription) Next(ctx context.Context) (TaskEvent, error) {
	for {
		select {
		case <-sub.done:
			return TaskEvent{}, ErrClosed
		default:
		}
		sub.mu.Lock()
		if sub.next == len(sub.frames) && sub.err == nil {
			fanout.Release(sub.frames) // all decoded
			clear(sub.frames)
			frames, err := sub.sub.Next(ctx, sub.frames[:0])
			sub.frames, sub.next = frames, 0
			// The engine returns frames or an error, never both.
			if len(frames) == 0 && err != nil {
				if ctx.Err() != nil {
					sub.mu.Unlock()
					return TaskEvent{}, ctx.Err()
				}
				sub.err = err
				sub.sub.Close()
			}
		}
		if sub.next < len(sub.frames) {
			f := sub.frames[sub.next]
			sub.next++
			sub.mu.Unlock()
			return decodeFrame(f)
		}
		if err := sub.err; err != nil {
			sub.mu.Unlock()
			return TaskEvent{}, err
		}
		ready := sub.sub.Ready()
		sub.mu.Unlock()
		select {
		case <-ready:
		case <-sub.done:
		case <-ctx.Done():
			return TaskEvent{}, ctx.Err()
		}
	}
}

// decodeFrame returns the event a frame encodes.
func decodeFrame(f *fanout.Frame) (TaskEvent, error) {
	var ev TaskEvent
	if err := json.Unmarshal(f.JSON, &ev); err != nil {
		return TaskEvent{}, fmt.Errorf("taskbridge: decoding event %s: %w", f.EventID, err)
	}
	ev.Seq = f.Seq
	return ev, nil
}

// Close ends the subscription and releases its resources; a Next waiting
// in another goroutine returns [ErrClosed]. It may be called from any
// goroutine, more than once.
func (sub *Subscription) Close() error {
	sub.once.Do(func() {
		close(sub.done)
		sub.mu.Lock()
		sub.sub.Close()
		sub.frames, sub.next, sub.err = nil, 0, ErrClosed
		sub.mu.Unlock()
	})
	return nil
}
