package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/taskbridge-go/taskbridge"
)

// Action is a client action accepted for a suspension, as handed to the
// handler waiting in [Suspend].
type Action struct {
	SuspendID      string
	ClientActionID string
	// ActionType is one of the suspension's allowed actions.
	ActionType string
	// Payload and Metadata are the client's JSON objects.
	Payload  json.RawMessage
	Metadata json.RawMessage
	// ActorID is the subject that submitted the action.
	ActorID string
	// AcceptedAt is when the service accepted the action.
	AcceptedAt time.Time
}

// Decode unmarshals the action's payload into v; an absent payload decodes
// as {}.
func (a Action) Decode(v any) error {
	raw := bytes.TrimSpace(a.Payload)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	return json.Unmarshal(raw, v)
}

// ActionFromReceipt returns the action an accepted action's receipt
// records, as [Suspend] hands it to a handler. Other executors with the
// runner's handler API (package riverexec) use it too.
func ActionFromReceipt(r taskbridge.ActionReceipt) Action {
	return Action{
		SuspendID:      r.SuspendID,
		ClientActionID: r.ClientActionID,
		ActionType:     r.ActionType,
		Payload:        r.Payload,
		Metadata:       r.Metadata,
		ActorID:        r.ActorID,
		AcceptedAt:     r.CreatedAt,
	}
}

// waiter is a handler's mailbox for one suspension. It exists before the
// suspension is opened, so an action accepted right after the
// TASK_SUSPENDED append always finds it.
type waiter struct {
	ready  chan struct{} // closed when action is set
	action Action
}

// Suspend opens a suspension for the task of the running handler and blocks
// until a client action is accepted for it, then returns the action. ctx
// must be the handler's context (or derived from it) and e its emitter.
// The TASK_SUSPENDED event is appended by e.Suspend; the service appends
// TASK_ACTION_ACCEPTED before the action is handed over, so every event the
// handler emits afterwards follows it in the log. An empty opts.SuspendID is
// replaced by a new UUID.
//
// When the runner runs a taken-over task again (see [Config].RerunTypes),
// a suspension the earlier run opened with the same opts.SuspendID is not
// opened again but taken up where it is: Suspend returns the action
// already accepted for it, waits on it if it is still OPEN, and fails with
// [ErrSuspensionExpired] if it expired (or with
// [taskbridge.ErrDuplicateSuspension] if the earlier run closed it). Give
// the suspensions of such handlers fixed ids.
//
// Suspend fails with an error wrapping:
//   - [ErrSuspensionExpired] when opts' deadline passes first: the runner
//     then moves the suspension to EXPIRED, so a later action is
//     REJECTED_EXPIRED. Returning the error fails the task with
//     SUSPENSION_EXPIRED. If an action won the race for the suspension,
//     Suspend returns that action instead.
//   - ctx's error when the task is cancelled or the runner shuts down.
//   - [ErrNotInHandler] when ctx does not come from a runner handler.
//   - the errors of e.Suspend, such as [taskbridge.ErrInvalidEvent] for
//     invalid opts.
//
// While it waits the handler gives its concurrency slot up, so that other
// tasks run meanwhile (unless Config.MaxSuspended or MaxSuspendedPerOwner
// is reached: then it keeps it). Once the action arrives or the suspension
// expires, Suspend waits for a slot again, in its owner's turn, before it
// returns. When ctx is cancelled, Suspend returns at once without a slot,
// and the handler must return soon, as always after ctx is cancelled.
func Suspend(ctx context.Context, e taskbridge.Emitter, opts taskbridge.SuspendOpts) (Action, error) {
	j := jobFromContext(ctx)
	if j == nil {
		return Action{}, ErrNotInHandler
	}
	if e == nil || e.TaskID() != j.task.ID {
		return Action{}, fmt.Errorf("runner: Suspend needs the emitter of task %s", j.task.ID)
	}
	if opts.SuspendID == "" {
		opts.SuspendID = uuid.NewString()
	}
	id := opts.SuspendID
	w, err := j.addWaiter(id)
	if err != nil {
		return Action{}, err
	}
	defer j.removeWaiter(id, w)
	if j.susps != nil {
		s, err := j.susps.GetSuspension(ctx, j.task.ID, id)
		switch {
		case err == nil:
			return j.takeUp(ctx, e, s, w)
		case !errors.Is(err, taskbridge.ErrSuspensionNotFound):
			return Action{}, fmt.Errorf("runner: looking up suspension %s: %w", id, err)
		}
	}
	s, err := e.Suspend(ctx, opts)
	if err != nil {
		return Action{}, err
	}
	return j.await(ctx, e, s, w)
}

// takeUp continues waiting on a suspension an earlier run of the task
// opened. The waiter is registered before s was read, so an action
// accepted after that read is handed over through Resume.
func (j *job) takeUp(ctx context.Context, e taskbridge.Emitter, s taskbridge.Suspension, w *waiter) (Action, error) {
	switch s.Status {
	case taskbridge.SuspensionOpen:
		return j.await(ctx, e, s, w)
	case taskbridge.SuspensionResolved:
		rec, err := j.susps.GetReceipt(ctx, j.task.ID, s.ResolvedActionID)
		if err != nil {
			return Action{}, fmt.Errorf("runner: reading the action taken on suspension %s: %w", s.SuspendID, err)
		}
		// Deliver it as Resume would, so that a later hand-off of the same
		// action (by the relay or Reconcile) succeeds.
		if err := j.deliver(s.SuspendID, ActionFromReceipt(rec)); err != nil {
			return Action{}, err
		}
		<-w.ready
		return w.action, nil
	case taskbridge.SuspensionExpired:
		return Action{}, fmt.Errorf("%w: suspension %s", ErrSuspensionExpired, s.SuspendID)
	default:
		return Action{}, fmt.Errorf("%w: suspension %s was %s by an earlier run",
			taskbridge.ErrDuplicateSuspension, s.SuspendID, s.Status)
	}
}

func (j *job) addWaiter(id string) (*waiter, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.returned {
		return nil, fmt.Errorf("runner: task %s: handler already returned", j.task.ID)
	}
	if _, dup := j.waiters[id]; dup {
		return nil, fmt.Errorf("%w: %s", taskbridge.ErrDuplicateSuspension, id)
	}
	if j.waiters == nil {
		j.waiters = map[string]*waiter{}
	}
	w := &waiter{ready: make(chan struct{})}
	j.waiters[id] = w
	return w, nil
}

func (j *job) removeWaiter(id string, w *waiter) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.waiters[id] == w {
		delete(j.waiters, id)
	}
}

// deliver hands a to the waiter of suspension id. A repeated hand-off of
// the same action succeeds; a different action for the same suspension, or
// a suspension nobody waits on, fails.
func (j *job) deliver(id string, a Action) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if got, ok := j.delivered[id]; ok {
		if got == a.ClientActionID {
			return nil
		}
		return fmt.Errorf("runner: suspension %s of task %s already took action %s", id, j.task.ID, got)
	}
	w := j.waiters[id]
	if w == nil {
		return fmt.Errorf("%w: task %s, suspension %s", ErrNotWaiting, j.task.ID, id)
	}
	if j.delivered == nil {
		j.delivered = map[string]string{}
	}
	j.delivered[id] = a.ClientActionID
	w.action = a
	close(w.ready)
	return nil
}

// await waits for w's action, s's deadline or ctx. The handler gives its
// slot up while it waits and gets one again before await returns, unless
// ctx was cancelled.
func (j *job) await(ctx context.Context, e taskbridge.Emitter, s taskbridge.Suspension, w *waiter) (Action, error) {
	select {
	case <-w.ready: // already there: no need to give the slot up
		return w.action, nil
	default:
	}
	j.r.park(j)
	defer j.r.unpark(ctx, j)
	var deadline <-chan time.Time
	if s.ExpiresAt != nil {
		t := time.NewTimer(s.ExpiresAt.Sub(j.r.cfg.Now()))
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-w.ready:
			return w.action, nil
		case <-ctx.Done():
			return Action{}, fmt.Errorf("runner: waiting on suspension %s: %w", s.SuspendID, ctx.Err())
		case <-deadline:
			deadline = nil
			cur, changed, err := e.CloseSuspension(ctx, s.SuspendID, taskbridge.SuspensionExpired)
			switch {
			case err != nil && ctx.Err() != nil:
				continue // report the cancellation
			case err != nil:
				return Action{}, fmt.Errorf("runner: expiring suspension %s: %w", s.SuspendID, err)
			case changed || cur.Status == taskbridge.SuspensionExpired:
				return Action{}, fmt.Errorf("%w: suspension %s", ErrSuspensionExpired, s.SuspendID)
			case cur.Status == taskbridge.SuspensionResolved:
				continue // an action won the race; its Resume is on the way
			default: // CANCELLED: the task ended
				return Action{}, fmt.Errorf("runner: suspension %s was %s: %w",
					s.SuspendID, cur.Status, taskbridge.ErrTaskTerminal)
			}
		}
	}
}
