package runner

import (
	"context"
	"fmt"
	"slices"

	"github.com/taskbridge-go/taskbridge"
)

// Scheduling. A job gets a slot (one of Config.Concurrency) to run its
// handler; jobs waiting for one are served round-robin by owner: each
// owner with jobs waiting and slots left under MaxRunningPerOwner takes
// its turn in r.turn, one slot per turn, a handler back from Suspend
// before a job that has not started. A handler waiting in Suspend gives
// its slot up (when MaxSuspended and MaxSuspendedPerOwner allow) and waits
// for a new one once its action arrives or its suspension expires.
//
// Every job has its own goroutine from its first slot to its end; r.mu
// guards all of the state below.

// slotState is where a job stands with respect to slots.
type slotState uint8

const (
	slotNone    slotState = iota // not scheduled: not queued yet, or finished
	slotQueued                   // in its owner's queue, never started
	slotHeld                     // its handler holds a slot
	slotAway                     // its handler waits in Suspend without a slot
	slotWanted                   // back from Suspend, in its owner's resumes
	slotDropped                  // back from Suspend cancelled: ends without a slot
)

// owner is the scheduling state of one task owner.
type owner struct {
	id        string
	held      int            // jobs of the owner that the runner holds
	running   int            // slots its handlers hold
	queue     []*job         // jobs waiting for their first slot
	resumes   []*job         // handlers back from Suspend, waiting for a slot
	reserved  []*reservation // room AdmitTask keeps for creates in flight
	suspended int            // handlers waiting in Suspend without a slot
	inTurn    bool           // in r.turn
}

// waiting is how many of the owner's jobs wait for a slot.
func (o *owner) waiting() int { return len(o.queue) + len(o.resumes) }

// active is what counts against the owner's limit: handlers at work, jobs
// waiting for a slot and creates in flight.
func (o *owner) active() int { return o.running + o.waiting() + len(o.reserved) }

// reservation is room kept for one create in flight (see AdmitTask).
type reservation struct {
	o    *owner
	key  string // the create's clientRequestId
	done bool   // taken by the task's Submit, or released
}

// active is the runner's total of what its QueueSize bounds.
func (r *Runner) active() int { return r.running + r.waiting + r.reserved }

// ownerFor returns the state of owner id, creating it.
func (r *Runner) ownerFor(id string) *owner {
	o := r.owners[id]
	if o == nil {
		o = &owner{id: id}
		r.owners[id] = o
	}
	return o
}

// forget drops an owner's state once nothing refers to it.
func (r *Runner) forget(o *owner) {
	if o.held == 0 && len(o.reserved) == 0 && r.owners[o.id] == o {
		delete(r.owners, o.id)
	}
}

// fits reports why the runner cannot take another task of o (nil for an
// owner it holds nothing of), or nil.
func (r *Runner) fits(o *owner) error {
	if r.closed {
		return fmt.Errorf("runner: not accepting tasks: %w", taskbridge.ErrClosed)
	}
	if o == nil {
		o = &owner{}
	}
	if n := o.active(); n >= r.ownerBudget {
		return fmt.Errorf("%w: %d of your tasks are running or waiting to run (at most %d); retry once one has ended",
			taskbridge.ErrTooManyTasks, n, r.ownerBudget)
	}
	if r.cfg.MaxSuspended > 0 && o.suspended >= r.cfg.MaxSuspendedPerOwner {
		return fmt.Errorf("%w: %d of your tasks are waiting for an action (at most %d); retry once one has ended",
			taskbridge.ErrTooManyTasks, o.suspended, r.cfg.MaxSuspendedPerOwner)
	}
	if r.active() >= r.budget {
		return ErrQueueFull
	}
	return nil
}

// AdmitTask implements [taskbridge.TaskAdmitter]: the service asks it
// before it creates a task. It refuses with an error wrapping
// [taskbridge.ErrTooManyTasks] (429 TOO_MANY_TASKS) when the caller
// already has MaxRunningPerOwner+MaxQueuedPerOwner tasks running or
// waiting for a slot, or MaxSuspendedPerOwner tasks waiting in [Suspend];
// with one wrapping [taskbridge.ErrSubmission] and [ErrQueueFull] (503
// TASK_SUBMISSION_ERROR) when the runner holds Concurrency+QueueSize such
// tasks in all; and with [taskbridge.ErrClosed] after [Runner.Shutdown].
// Otherwise it keeps room for the task until release is called, and the
// Submit of the task (the same owner and clientRequestId) takes it.
func (r *Runner) AdmitTask(_ context.Context, auth taskbridge.AuthContext, req taskbridge.CreateTaskRequest) (release func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fits(r.owners[auth.Subject]); err != nil {
		if err == ErrQueueFull {
			err = fmt.Errorf("%w: %w", taskbridge.ErrSubmission, err)
		}
		return nil, err
	}
	o := r.ownerFor(auth.Subject)
	res := &reservation{o: o, key: req.ClientRequestID}
	o.reserved = append(o.reserved, res)
	r.reserved++
	return func() { r.unreserve(res) }, nil
}

// unreserve gives up the room res kept, unless a Submit took it.
func (r *Runner) unreserve(res *reservation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if res.done {
		return
	}
	r.take(res)
	r.forget(res.o)
}

// reservation returns room AdmitTask kept for the create of task, or nil.
// Concurrent creates with the same clientRequestId (only one of which
// creates the task) keep interchangeable room.
func (r *Runner) reservation(o *owner, task taskbridge.Task) *reservation {
	if o == nil {
		return nil
	}
	for _, res := range o.reserved {
		if res.key == task.ClientRequestID {
			return res
		}
	}
	return nil
}

// take uses the room res kept: the task counts in its place.
func (r *Runner) take(res *reservation) {
	res.done = true
	o := res.o
	o.reserved = slices.DeleteFunc(o.reserved, func(x *reservation) bool { return x == res })
	r.reserved--
}

// schedule queues j for its first slot.
func (r *Runner) schedule(j *job, o *owner) {
	j.owner = o
	o.held++
	j.slot = slotQueued
	o.queue = append(o.queue, j)
	r.waiting++
	r.activate(o)
	r.dispatch()
}

// unqueue removes a job that never started from its owner's queue and
// reports whether it was there.
func (r *Runner) unqueue(j *job) bool {
	if j.slot != slotQueued {
		return false
	}
	o := j.owner
	o.queue = slices.DeleteFunc(o.queue, func(x *job) bool { return x == j })
	r.waiting--
	o.held--
	j.slot = slotNone
	r.retire(j)
	r.forget(o)
	return true
}

// activate gives o a turn, at the back, when it has jobs waiting and may
// run more.
func (r *Runner) activate(o *owner) {
	if !o.inTurn && o.waiting() > 0 && o.running < r.cfg.MaxRunningPerOwner {
		o.inTurn = true
		r.turn = append(r.turn, o)
	}
}

// dispatch hands free slots out, one per owner's turn.
func (r *Runner) dispatch() {
	for r.running < r.cfg.Concurrency && len(r.turn) > 0 {
		o := r.turn[0]
		r.turn[0] = nil
		r.turn = r.turn[1:]
		o.inTurn = false
		if o.running >= r.cfg.MaxRunningPerOwner || o.waiting() == 0 {
			continue // activated again when that changes
		}
		var j *job
		if len(o.resumes) > 0 {
			j, o.resumes[0] = o.resumes[0], nil
			o.resumes = o.resumes[1:]
		} else {
			j, o.queue[0] = o.queue[0], nil
			o.queue = o.queue[1:]
		}
		o.running++
		r.running++
		r.waiting--
		if j.slot == slotWanted {
			j.slot = slotHeld
			close(j.granted)
		} else {
			j.slot = slotHeld
			r.live++
			r.wg.Add(1)
			go r.work(j)
		}
		r.activate(o)
	}
}

// freeSlot gives up a slot of o.
func (r *Runner) freeSlot(o *owner) {
	o.running--
	r.running--
	r.activate(o)
	r.dispatch()
}

// done lets go of a job whose goroutine ends.
func (r *Runner) done(j *job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retire(j)
	o := j.owner
	switch j.slot {
	case slotHeld:
		o.running--
		r.running--
	case slotAway:
		o.suspended--
		r.suspended--
	case slotWanted:
		o.resumes = slices.DeleteFunc(o.resumes, func(x *job) bool { return x == j })
		r.waiting--
	}
	j.slot = slotNone
	o.held--
	r.live--
	r.activate(o)
	r.dispatch()
	r.forget(o)
	if r.closed && r.live == 0 {
		close(r.drained)
	}
}

// park gives up the slot of j's handler while it waits in Suspend, unless
// MaxSuspended or MaxSuspendedPerOwner is reached (then the handler waits
// holding its slot).
func (r *Runner) park(j *job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := j.owner
	if j.slot != slotHeld || r.suspended >= r.cfg.MaxSuspended || o.suspended >= r.cfg.MaxSuspendedPerOwner {
		return
	}
	j.slot = slotAway
	o.suspended++
	r.suspended++
	r.freeSlot(o)
}

// unpark gets a slot back for j's handler once Suspend is done waiting; it
// waits for its owner's turn. When ctx is cancelled (a client cancel, a
// lost lease, a forced shutdown) the handler goes on without a slot, since
// it must return soon anyway and should not wait behind other work.
func (r *Runner) unpark(ctx context.Context, j *job) {
	r.mu.Lock()
	o := j.owner
	switch j.slot {
	case slotAway:
		o.suspended--
		r.suspended--
		if ctx.Err() != nil {
			j.slot = slotDropped
			r.mu.Unlock()
			return
		}
		j.slot = slotWanted
		j.granted = make(chan struct{})
		o.resumes = append(o.resumes, j)
		r.waiting++
		r.activate(o)
		r.dispatch()
	case slotWanted: // another Suspend of the handler asked already
	default: // it holds a slot, or goes on without one
		r.mu.Unlock()
		return
	}
	granted := j.granted
	r.mu.Unlock()
	select {
	case <-granted:
	case <-ctx.Done():
		r.mu.Lock()
		if j.slot == slotWanted {
			o.resumes = slices.DeleteFunc(o.resumes, func(x *job) bool { return x == j })
			r.waiting--
			j.slot = slotDropped
		}
		r.mu.Unlock()
	}
}

// OwnerStats returns the load of one owner's tasks: handlers holding a
// slot, tasks waiting for one and handlers waiting in [Suspend] without
// one.
func (r *Runner) OwnerStats(ownerID string) Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.owners[ownerID]
	if o == nil {
		return Stats{}
	}
	return Stats{Running: o.running, Queued: o.waiting(), Suspended: o.suspended}
}
