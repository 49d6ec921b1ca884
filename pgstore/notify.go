package pgstore

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// notifier sends the events channel's notifications of appends that did
// not notify in their own transaction (see [Store.Append]): after the
// commit, one statement per batch of task ids, on a pooled connection. Its
// goroutine starts with the first id and ends with the store.
type notifier struct {
	s *Store

	mu      sync.Mutex
	pending map[string]struct{}
	started bool
	closed  bool
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func newNotifier(s *Store) *notifier {
	return &notifier{s: s, pending: map[string]struct{}{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add queues a notification for taskID.
func (n *notifier) add(taskID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.pending[taskID] = struct{}{}
	if !n.started {
		n.started = true
		ctx, cancel := context.WithCancel(context.Background())
		n.cancel = cancel
		go n.run(ctx)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// take returns the queued ids and empties the queue.
func (n *notifier) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]string, 0, len(n.pending))
	for id := range n.pending {
		ids = append(ids, id)
	}
	clear(n.pending)
	return ids
}

func (n *notifier) run(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-ctx.Done():
			n.flush(context.Background())
			return
		case <-n.wake:
		}
		n.flush(ctx)
	}
}

// flush sends the queued notifications. A failure is logged and dropped:
// the store's listeners wake every watcher when their connection comes
// back, and the task's next notified event wakes its watchers anyway.
func (n *notifier) flush(ctx context.Context) {
	ids := n.take()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.s.pool.Exec(ctx, n.s.q[qNotifyEvents], ids); err != nil && ctx.Err() == nil {
		n.s.log.LogAttrs(ctx, slog.LevelWarn, "pgstore: notifying appends failed",
			slog.String("schema", n.s.cfg.Schema), slog.Int("tasks", len(ids)), slog.Any("error", err))
	}
}

// close sends what is queued and stops the goroutine.
func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	started := n.started
	n.mu.Unlock()
	if started {
		n.cancel()
		<-n.done
	}
}
