package taskbridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// controlRelay hands the control changes a [ControlFeed] reports to the
// [LocalExecutor] of this process, for the tasks it holds: a cancel request
// becomes [TaskExecutor.Cancel], an accepted action whose hand-off is
// PENDING becomes [Resumer.Resume] (through Service.resume). Notifications
// are coalesced into a set that one goroutine drains, so the feed's
// callback never blocks.
type controlRelay struct {
	s    *Service
	exec LocalExecutor

	mu      sync.Mutex
	pending map[string]struct{} // task ids to look at
	all     bool                // look at every held task ("" was notified)
	wake    chan struct{}       // capacity 1: something is pending

	stopFeed func()
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
}

// startControlRelay starts the relay when the store has a control feed and
// the executor runs tasks in this process; otherwise it returns nil.
func startControlRelay(s *Service) *controlRelay {
	feed, ok := s.store.(ControlFeed)
	if !ok {
		return nil
	}
	exec, ok := s.exec.(LocalExecutor)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &controlRelay{
		s:       s,
		exec:    exec,
		pending: map[string]struct{}{},
		wake:    make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go c.run()
	c.stopFeed = feed.WatchControl(c.notify)
	return c
}

// notify records taskID ("" for every held task) and wakes the relay. It
// never blocks.
func (c *controlRelay) notify(taskID string) {
	c.mu.Lock()
	if taskID == "" {
		c.all = true
	} else {
		c.pending[taskID] = struct{}{}
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// shutdown stops the feed and the relay and waits for it. Idempotent.
func (c *controlRelay) shutdown() {
	c.once.Do(func() {
		c.stopFeed()
		c.cancel()
	})
	<-c.done
}

func (c *controlRelay) run() {
	defer close(c.done)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		ids, all := c.pending, c.all
		c.pending, c.all = map[string]struct{}{}, false
		c.mu.Unlock()
		if all {
			for _, id := range c.exec.HeldTasks() {
				ids[id] = struct{}{}
			}
		}
		for id := range ids {
			if c.ctx.Err() != nil {
				return
			}
			if c.exec.Holds(id) {
				c.relay(c.ctx, id)
			}
		}
	}
}

// relay applies the recorded control state of a task this process holds.
func (c *controlRelay) relay(ctx context.Context, taskID string) {
	log := func(msg string, err error) {
		level := slog.LevelWarn
		if ctx.Err() != nil || !c.exec.Holds(taskID) {
			level = slog.LevelDebug // shutting down, or the task ended meanwhile
		}
		c.s.log.LogAttrs(ctx, level, msg, slog.String("taskId", taskID),
			slog.String("transport", "internal"), slog.String("outcome", "failed"), slog.Any("error", err))
	}
	task, err := c.s.store.GetTask(ctx, taskID)
	if err != nil {
		if !errors.Is(err, ErrTaskNotFound) {
			log("taskbridge: control relay could not read the task", err)
		}
		return
	}
	if task.Status.Terminal() {
		return
	}
	if task.CancelRequested {
		if err := c.exec.Cancel(ctx, task); err != nil {
			log("taskbridge: relayed cancel failed", err)
		}
	}
	sus, err := c.s.store.ListSuspensions(ctx, taskID)
	if err != nil {
		log("taskbridge: control relay could not list suspensions", err)
		return
	}
	for _, sp := range sus {
		if sp.Status != SuspensionResolved || sp.ResumeStatus != ResumePending {
			continue
		}
		rec, err := c.s.store.GetReceipt(ctx, taskID, sp.ResolvedActionID)
		if err == nil {
			err = c.s.resume(ctx, task, sp, rec)
		}
		if err != nil {
			// Left PENDING for Reconcile.
			log("taskbridge: relayed resume failed", err)
			continue
		}
		c.s.log.LogAttrs(ctx, slog.LevelDebug, "taskbridge: resume relayed",
			slog.String("taskId", taskID), slog.String("clientRequestId", sp.ResolvedActionID),
			slog.String("transport", "internal"), slog.String("outcome", "dispatched"))
	}
}

// holdsElsewhere reports whether the task is not held by this process
// while a relay runs: then the process that holds it acts on control
// changes, through its own relay.
func (s *Service) holdsElsewhere(taskID string) bool {
	return s.relay != nil && !s.relay.exec.Holds(taskID)
}
