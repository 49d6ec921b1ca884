package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// Lease timing, as fractions of Config.LeaseTTL: leases are renewed every
// TTL/3 (a failed renewal is retried after TTL/10), and a job whose lease
// was last renewed (or acquired) at t stops acting for its task at
// t + TTL - TTL/5. Another process takes the task over no earlier than
// t + TTL by its own clock, so the TTL/5 margin absorbs clock differences
// between processes and a late wake-up of the renewal goroutine.
func (r *Runner) renewEvery() time.Duration { return r.cfg.LeaseTTL / 3 }
func (r *Runner) retryEvery() time.Duration { return r.cfg.LeaseTTL / 10 }
func (r *Runner) margin() time.Duration     { return r.cfg.LeaseTTL / 5 }

// renewParallel bounds the renewals one round runs at once, so that a slow
// store does not make many leases late.
const renewParallel = 16

// jobLease is a job's hold on its task's lease. Its fields are guarded by
// the job's mu.
type jobLease struct {
	// deadline is when the job stops acting for its task unless the
	// lease was renewed meanwhile (the runner's clock).
	deadline time.Time
	// due is when the lease should be renewed next.
	due time.Time
	// lost is set once the job may no longer act for its task: its
	// handler is cancelled and its emitter refuses events.
	lost bool
	// timer stops the job at its deadline, however late renewals are.
	timer *time.Timer
}

// renewed records a successful acquisition or renewal that started at
// start.
func (j *job) renewed(start time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lease.deadline = start.Add(j.r.cfg.LeaseTTL - j.r.margin())
	j.lease.due = start.Add(j.r.renewEvery())
	if j.returned || j.lease.lost {
		return
	}
	wait := j.lease.deadline.Sub(j.r.cfg.Now())
	if j.lease.timer == nil {
		j.lease.timer = time.AfterFunc(wait, j.deadlinePassed)
	} else {
		j.lease.timer.Reset(wait)
	}
}

// deadlinePassed runs on the job's deadline timer: it stops the job unless
// a renewal moved the deadline meanwhile.
func (j *job) deadlinePassed() {
	now := j.r.cfg.Now()
	j.mu.Lock()
	if j.returned || j.lease.lost {
		j.mu.Unlock()
		return
	}
	if wait := j.lease.deadline.Sub(now); wait > 0 {
		j.lease.timer.Reset(wait)
		j.mu.Unlock()
		return
	}
	j.loseLeaseLocked()
	j.mu.Unlock()
	j.r.log.LogAttrs(j.ctx, slog.LevelWarn, "runner: task lease could not be renewed in time; task stopped",
		append(j.attrs(), slog.String("outcome", "lease_lost"))...)
}

// stopLeaseTimer stops the deadline timer once the handler returned; j.mu
// must be held.
func (j *job) stopLeaseTimerLocked() {
	if j.lease != nil && j.lease.timer != nil {
		j.lease.timer.Stop()
	}
}

// retryAt schedules the next renewal attempt after a failed one.
func (j *job) retryAt(t time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lease.due = t
}

// leaseState returns when the lease is due for renewal, when the job must
// stop, and whether it already lost the lease.
func (j *job) leaseState() (due, deadline time.Time, lost bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lease.due, j.lease.deadline, j.lease.lost
}

// loseLease marks the lease lost and cancels the handler with
// [taskbridge.ErrLeaseLost]; it reports whether this call did it. j.mu
// must be held.
func (j *job) loseLeaseLocked() bool {
	if j.lease.lost {
		return false
	}
	j.lease.lost = true
	if !j.returned {
		j.cancel(fmt.Errorf("runner: task %s: %w", j.task.ID, taskbridge.ErrLeaseLost))
	}
	return true
}

func (j *job) loseLease() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.loseLeaseLocked()
}

// leaseErr returns an error wrapping [taskbridge.ErrLeaseLost] once the job
// may no longer act for its task: the lease was lost, or its deadline has
// passed on the runner's clock (checked at every call, so that a process
// that was paused stops at once, before its renewal goroutine runs).
func (j *job) leaseErr() error {
	if j.lease == nil {
		return nil
	}
	now := j.r.cfg.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.lease.lost && !now.Before(j.lease.deadline) {
		j.loseLeaseLocked()
	}
	if j.lease.lost {
		return fmt.Errorf("runner: task %s: %w", j.task.ID, taskbridge.ErrLeaseLost)
	}
	return nil
}

// leaseLost reports whether the job may no longer act for its task.
func (j *job) leaseLost() bool { return j.leaseErr() != nil }

// leasedEmitter refuses every event once its job lost the lease.
type leasedEmitter struct {
	taskbridge.Emitter
	j *job
}

// Emit implements [taskbridge.Emitter].
func (e leasedEmitter) Emit(ctx context.Context, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	if err := e.j.leaseErr(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return e.Emitter.Emit(ctx, p)
}

// EmitOnce implements [taskbridge.Emitter].
func (e leasedEmitter) EmitOnce(ctx context.Context, key string, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	if err := e.j.leaseErr(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return e.Emitter.EmitOnce(ctx, key, p)
}

// Suspend implements [taskbridge.Emitter].
func (e leasedEmitter) Suspend(ctx context.Context, opts taskbridge.SuspendOpts) (taskbridge.Suspension, error) {
	if err := e.j.leaseErr(); err != nil {
		return taskbridge.Suspension{}, err
	}
	return e.Emitter.Suspend(ctx, opts)
}

// CloseSuspension implements [taskbridge.Emitter].
func (e leasedEmitter) CloseSuspension(ctx context.Context, suspendID string, status taskbridge.SuspensionStatus) (taskbridge.Suspension, bool, error) {
	if err := e.j.leaseErr(); err != nil {
		return taskbridge.Suspension{}, false, err
	}
	return e.Emitter.CloseSuspension(ctx, suspendID, status)
}

// acquireLease acquires a task's lease for this runner; start is the time
// the attempt started, from which the lease's deadline counts.
func (r *Runner) acquireLease(ctx context.Context, taskID string) (start time.Time, ok bool, err error) {
	start = r.cfg.Now()
	_, ok, err = r.cfg.Leases.AcquireLease(ctx, taskID, r.cfg.Replica, start, r.cfg.LeaseTTL)
	if err != nil {
		return start, false, fmt.Errorf("runner: acquiring the lease of task %s: %w", taskID, err)
	}
	return start, ok, nil
}

// acquire acquires j's lease and reports whether it got it.
func (r *Runner) acquire(ctx context.Context, j *job) (bool, error) {
	start, ok, err := r.acquireLease(ctx, j.task.ID)
	if ok {
		j.renewed(start)
	}
	return ok, err
}

// release gives up j's lease after its task ended.
func (r *Runner) release(ctx context.Context, j *job) {
	if j.lease != nil {
		r.releaseLease(ctx, j.task.ID)
	}
}

// releaseLease gives up a task's lease; errors are only logged, since a
// lease ends with its task anyway.
func (r *Runner) releaseLease(ctx context.Context, taskID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.EmitTimeout)
	defer cancel()
	if err := r.cfg.Leases.ReleaseLease(ctx, taskID, r.cfg.Replica); err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "runner: lease not released",
			slog.String("taskId", taskID), slog.Any("error", err))
	}
}

// startRenewing starts the renewal goroutine unless it runs; r.mu must be
// held.
func (r *Runner) startRenewing() {
	if r.renewing {
		return
	}
	r.renewing = true
	r.wg.Add(1)
	go r.renewLoop()
}

// renewLoop renews the leases of the runner's jobs and takes the lease from
// jobs that could not renew in time. It ends when the runner holds no task.
func (r *Runner) renewLoop() {
	defer r.wg.Done()
	timer := time.NewTimer(r.renewEvery())
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-r.renewWake:
		}
		r.mu.Lock()
		if len(r.jobs) == 0 {
			r.renewing = false
			r.mu.Unlock()
			return
		}
		jobs := make([]*job, 0, len(r.jobs))
		r.inRound = make(map[string]bool, len(r.jobs))
		for id, j := range r.jobs {
			jobs = append(jobs, j)
			r.inRound[id] = true
		}
		r.mu.Unlock()
		wait := r.renewRound(jobs)
		r.mu.Lock()
		r.inRound = nil
		r.mu.Unlock()
		timer.Reset(wait)
	}
}

// renewalInFlight reports whether a renewal round in progress may still
// renew this runner's lease on a task, even one it no longer holds: a late
// renewal of an earlier lease would date a new lease of the same holder
// back, so the task is not acquired again until the round is over.
func (r *Runner) renewalInFlight(taskID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inRound[taskID]
}

// renewRound renews the leases that are due, up to renewParallel at once,
// and returns how long to wait for the next round. Jobs are stopped at
// their deadline by their own timers, not by the round, so a slow store
// makes no job late.
func (r *Runner) renewRound(jobs []*job) time.Duration {
	sem := make(chan struct{}, renewParallel)
	var wg sync.WaitGroup
	for _, j := range jobs {
		due, deadline, lost := j.leaseState()
		now := r.cfg.Now()
		if lost || now.Before(due) || !now.Before(deadline) {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r.renew(j, deadline)
		})
	}
	wg.Wait()
	// Wake for the next renewal or deadline, whichever comes first.
	now := r.cfg.Now()
	wait := r.renewEvery()
	for _, j := range jobs {
		due, deadline, lost := j.leaseState()
		if !lost {
			wait = min(wait, due.Sub(now), deadline.Sub(now))
		}
	}
	return max(wait, time.Millisecond)
}

// renew renews j's lease once; the call may take until deadline.
func (r *Runner) renew(j *job, deadline time.Time) {
	start := r.cfg.Now()
	ctx, cancel := context.WithTimeout(context.Background(), min(r.renewEvery(), deadline.Sub(start)))
	_, err := r.cfg.Leases.RenewLease(ctx, j.task.ID, r.cfg.Replica, start, r.cfg.LeaseTTL)
	cancel()
	switch {
	case err == nil:
		j.renewed(start)
	case errors.Is(err, taskbridge.ErrLeaseLost) || errors.Is(err, taskbridge.ErrTaskNotFound):
		// Taken over, or the task ended (then the job is finishing).
		if j.loseLease() && !j.hasReturned() {
			r.log.LogAttrs(j.ctx, slog.LevelWarn, "runner: task lease lost; task stopped",
				append(j.attrs(), slog.String("outcome", "lease_lost"), slog.Any("error", err))...)
		}
	default:
		j.retryAt(start.Add(r.retryEvery()))
		r.log.LogAttrs(j.ctx, slog.LevelWarn, "runner: task lease not renewed; retrying",
			append(j.attrs(), slog.Any("error", err))...)
	}
}

// hasReturned reports whether the job's handler returned (or never ran).
func (j *job) hasReturned() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.returned
}
