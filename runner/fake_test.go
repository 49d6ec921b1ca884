package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/runner"
)

// fakeEmitter is an in-memory Emitter that applies the task state machine
// like a store does, for unit tests without a Service.
type fakeEmitter struct {
	taskID string

	mu          sync.Mutex
	status      taskbridge.TaskStatus
	log         []taskbridge.TaskEvent
	suspensions map[string]*taskbridge.Suspension
	changed     chan struct{}                   // closed and replaced on every change
	keys        map[string]taskbridge.TaskEvent // EmitOnce keys
	// Hooks, set before the task is submitted.
	emitErr   func(p taskbridge.Payload) error
	onSuspend func(s taskbridge.Suspension)
	onClose   func(suspendID string)
}

var _ taskbridge.Emitter = (*fakeEmitter)(nil)

func newFakeEmitter(taskID string) *fakeEmitter {
	return &fakeEmitter{
		taskID:      taskID,
		status:      taskbridge.StatusAccepted,
		suspensions: map[string]*taskbridge.Suspension{},
		changed:     make(chan struct{}),
	}
}

func (f *fakeEmitter) TaskID() string { return f.taskID }

// appendLocked applies the state machine and records an event.
func (f *fakeEmitter) appendLocked(p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	raw, err := taskbridge.EncodePayload(p)
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	next, err := taskbridge.NextStatus(f.status, p.EventType())
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	f.status = next
	seq := int64(len(f.log) + 1)
	ev := taskbridge.TaskEvent{
		Type: p.EventType(), TaskID: f.taskID, EventID: taskbridge.FormatEventID(seq),
		CreatedAt: time.Now().UTC(), Payload: raw, Seq: seq,
	}
	f.log = append(f.log, ev)
	if ev.Terminal() {
		for _, s := range f.suspensions {
			if s.Status == taskbridge.SuspensionOpen {
				s.Status = taskbridge.SuspensionCancelled
			}
		}
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return ev, nil
}

func (f *fakeEmitter) Emit(_ context.Context, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p == nil {
		return taskbridge.TaskEvent{}, fmt.Errorf("%w: nil payload", taskbridge.ErrInvalidEvent)
	}
	if t := p.EventType(); t == taskbridge.EventTaskSuspended || t == taskbridge.EventTaskActionAccepted {
		return taskbridge.TaskEvent{}, fmt.Errorf("%w: %s", taskbridge.ErrInvalidEvent, t)
	}
	if f.emitErr != nil {
		if err := f.emitErr(p); err != nil {
			return taskbridge.TaskEvent{}, err
		}
	}
	return f.appendLocked(p)
}

func (f *fakeEmitter) EmitOnce(ctx context.Context, key string, p taskbridge.Payload) (taskbridge.TaskEvent, error) {
	f.mu.Lock()
	ev, ok := f.keys[key]
	f.mu.Unlock()
	if ok {
		return ev, nil
	}
	ev, err := f.Emit(ctx, p)
	if err == nil {
		f.mu.Lock()
		if f.keys == nil {
			f.keys = map[string]taskbridge.TaskEvent{}
		}
		f.keys[key] = ev
		f.mu.Unlock()
	}
	return ev, err
}

func (f *fakeEmitter) Suspend(_ context.Context, opts taskbridge.SuspendOpts) (taskbridge.Suspension, error) {
	f.mu.Lock()
	p := taskbridge.SuspendedPayload{
		SuspendID: opts.SuspendID, Kind: opts.Kind, ReasonCode: opts.ReasonCode,
		AllowedActions: opts.AllowedActions, SchemaVersion: opts.SchemaVersion,
		ExpiresAt: opts.ExpiresAt, Interaction: opts.Interaction,
	}
	if p.Kind == "" {
		p.Kind = taskbridge.KindUserActionRequired
	}
	if p.SchemaVersion == 0 {
		p.SchemaVersion = 1
	}
	if p.ExpiresAt == nil && opts.TTL > 0 {
		at := time.Now().Add(opts.TTL)
		p.ExpiresAt = &at
	}
	if _, dup := f.suspensions[p.SuspendID]; dup {
		f.mu.Unlock()
		return taskbridge.Suspension{}, taskbridge.ErrDuplicateSuspension
	}
	ev, err := f.appendLocked(p)
	if err != nil {
		f.mu.Unlock()
		return taskbridge.Suspension{}, err
	}
	s := &taskbridge.Suspension{
		TaskID: f.taskID, SuspendedPayload: p, Status: taskbridge.SuspensionOpen,
		EventSeq: ev.Seq, ResumeStatus: taskbridge.ResumeNone, CreatedAt: ev.CreatedAt,
	}
	f.suspensions[p.SuspendID] = s
	cp := *s
	hook := f.onSuspend
	f.mu.Unlock()
	if hook != nil {
		hook(cp)
	}
	return cp, nil
}

func (f *fakeEmitter) CloseSuspension(_ context.Context, id string, status taskbridge.SuspensionStatus) (taskbridge.Suspension, bool, error) {
	if f.onClose != nil {
		f.onClose(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.suspensions[id]
	if !ok {
		return taskbridge.Suspension{}, false, taskbridge.ErrSuspensionNotFound
	}
	if s.Status != taskbridge.SuspensionOpen {
		return *s, false, nil
	}
	s.Status = status
	close(f.changed)
	f.changed = make(chan struct{})
	return *s, true, nil
}

// accept resolves an OPEN suspension like SuspensionStore.AcceptAction and
// returns what the service would pass to Resume.
func (f *fakeEmitter) accept(t *testing.T, suspendID, actionType, clientActionID string) (taskbridge.Task, taskbridge.Suspension, taskbridge.ActionReceipt) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.suspensions[suspendID]
	require.NotNil(t, s, "suspension %s", suspendID)
	require.Equal(t, taskbridge.SuspensionOpen, s.Status)
	now := time.Now().UTC()
	ev, err := f.appendLocked(taskbridge.ActionAcceptedPayload{
		SuspendID: suspendID, ClientActionID: clientActionID, ActionType: actionType, AcceptedAt: now,
	})
	require.NoError(t, err)
	s.Status, s.ResolvedActionID, s.ResumeStatus = taskbridge.SuspensionResolved, clientActionID, taskbridge.ResumePending
	rec := taskbridge.ActionReceipt{
		TaskID: f.taskID, SuspendID: suspendID, ClientActionID: clientActionID, ActionType: actionType,
		Payload: json.RawMessage(`{"note":"ok"}`), Metadata: json.RawMessage(`{}`), ActorID: "alice",
		EventSeq: ev.Seq, CreatedAt: now,
	}
	return taskbridge.Task{ID: f.taskID, Status: f.status}, *s, rec
}

// snapshot returns the events so far and a channel closed on the next
// change.
func (f *fakeEmitter) snapshot() ([]taskbridge.TaskEvent, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log), f.changed
}

// events returns the events so far, each checked against the protocol's
// event schema.
func (f *fakeEmitter) events(t *testing.T) []taskbridge.TaskEvent {
	t.Helper()
	evs, _ := f.snapshot()
	validateEvents(t, evs)
	return evs
}

// validateEvents checks events against schemas/task_event.schema.json.
func validateEvents(t *testing.T, evs []taskbridge.TaskEvent) {
	t.Helper()
	for _, ev := range evs {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		protocoltest.ValidateEvent(t, raw)
	}
}

// waitFor waits until cond holds for the event log and returns the log,
// checked against the event schema.
func (f *fakeEmitter) waitFor(t *testing.T, what string, cond func([]taskbridge.TaskEvent) bool) []taskbridge.TaskEvent {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		evs, changed := f.snapshot()
		if cond(evs) {
			validateEvents(t, evs)
			return evs
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("task %s: timed out waiting for %s; events: %v", f.taskID, what, typesOf(evs))
		}
	}
}

// waitTerminal waits for the terminal event and returns the whole log.
func (f *fakeEmitter) waitTerminal(t *testing.T) []taskbridge.TaskEvent {
	t.Helper()
	return f.waitFor(t, "a terminal event", func(evs []taskbridge.TaskEvent) bool {
		return len(evs) > 0 && evs[len(evs)-1].Terminal()
	})
}

// waitType waits for an event of type et.
func (f *fakeEmitter) waitType(t *testing.T, et taskbridge.EventType) taskbridge.TaskEvent {
	t.Helper()
	evs := f.waitFor(t, string(et), func(evs []taskbridge.TaskEvent) bool {
		return slices.ContainsFunc(evs, func(e taskbridge.TaskEvent) bool { return e.Type == et })
	})
	return evs[slices.IndexFunc(evs, func(e taskbridge.TaskEvent) bool { return e.Type == et })]
}

func (f *fakeEmitter) types(t *testing.T) []taskbridge.EventType {
	t.Helper()
	return typesOf(f.events(t))
}

func typesOf(evs []taskbridge.TaskEvent) []taskbridge.EventType {
	out := make([]taskbridge.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// payloadOf decodes an event's payload strictly (as the schema would).
func payloadOf(t *testing.T, ev taskbridge.TaskEvent) taskbridge.Payload {
	t.Helper()
	p, err := taskbridge.DecodePayload(ev)
	require.NoError(t, err)
	return p
}

var taskSeq atomic.Int64

// submit creates a task of taskType and submits it with a fresh fake
// emitter; hooks may configure the emitter first.
func submit(t *testing.T, r *runner.Runner, taskType string, hooks ...func(*fakeEmitter)) (taskbridge.Task, *fakeEmitter) {
	t.Helper()
	task, f := newTask(taskType, hooks...)
	require.NoError(t, r.Submit(context.Background(), task, f))
	return task, f
}

func newTask(taskType string, hooks ...func(*fakeEmitter)) (taskbridge.Task, *fakeEmitter) {
	id := fmt.Sprintf("task-%d", taskSeq.Add(1))
	f := newFakeEmitter(id)
	for _, h := range hooks {
		h(f)
	}
	return taskbridge.Task{
		ID: id, OwnerID: "alice", TaskType: taskType, Status: taskbridge.StatusAccepted,
		Input: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`),
	}, f
}

// setup returns a runner over handlers that is shut down (and must drain)
// when the test ends.
func setup(t *testing.T, cfg runner.Config) *runner.Runner {
	t.Helper()
	r, err := runner.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, r.Shutdown(ctx))
	})
	return r
}
