package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
)

// waitTimeout bounds every wait for a notification; a correct store wakes
// watchers long before.
const waitTimeout = 10 * time.Second

// fixture is one subtest's store with helpers that fail the test on error.
// It is used from the test goroutine only.
type fixture struct {
	t     *testing.T
	s     taskbridge.Store
	ctx   context.Context
	clock time.Time
}

func setup(t *testing.T, h Harness) *fixture {
	t.Helper()
	h.parallel(t)
	s := h.New(t)
	require.NotNil(t, s, "storetest: Harness.New returned nil")
	return &fixture{t: t, s: s, ctx: t.Context(), clock: BaseTime}
}

// tick advances the fixture's clock by a second and returns it.
func (f *fixture) tick() time.Time {
	f.clock = f.clock.Add(time.Second)
	return f.clock
}

// create stores a new task of owner "alice" with client request id
// "req-"+id, created at the next tick.
func (f *fixture) create(id string) taskbridge.Task {
	f.t.Helper()
	return f.createTask(NewTask(id, "alice", "req-"+id, f.tick()))
}

func (f *fixture) createTask(in taskbridge.Task) taskbridge.Task {
	f.t.Helper()
	got, created, err := f.s.CreateTask(f.ctx, in)
	require.NoError(f.t, err)
	require.True(f.t, created, "CreateTask(%s): created", in.ID)
	return got
}

// started creates a task and appends its TASK_STARTED event (Seq 1).
func (f *fixture) started(id string) taskbridge.Task {
	f.t.Helper()
	f.create(id)
	f.append(id, taskbridge.StartedPayload{Message: "go"})
	return f.get(id)
}

// append appends an event with payload p at the next tick.
func (f *fixture) append(taskID string, p taskbridge.Payload) taskbridge.TaskEvent {
	f.t.Helper()
	ev, err := f.s.Append(f.ctx, NewEvent(taskID, p, f.tick()))
	require.NoError(f.t, err, "Append(%s, %s)", taskID, p.EventType())
	return ev
}

// messages appends n TASK_MESSAGE events whose message is their expected
// Seq, given the task's current LastSeq.
func (f *fixture) messages(taskID string, n int) {
	f.t.Helper()
	last := f.get(taskID).LastSeq
	for i := range int64(n) {
		ev := f.append(taskID, taskbridge.MessagePayload{Message: fmt.Sprint(last + i + 1)})
		require.Equal(f.t, last+i+1, ev.Seq)
	}
}

func (f *fixture) get(id string) taskbridge.Task {
	f.t.Helper()
	got, err := f.s.GetTask(f.ctx, id)
	require.NoError(f.t, err, "GetTask(%s)", id)
	return got
}

// open opens suspension suspendID of a started task at the next tick.
func (f *fixture) open(taskID, suspendID string, expiresAt *time.Time) taskbridge.Suspension {
	f.t.Helper()
	in, ev := NewSuspension(taskID, suspendID, expiresAt, f.tick())
	got, _, err := f.s.OpenSuspension(f.ctx, in, ev)
	require.NoError(f.t, err, "OpenSuspension(%s, %s)", taskID, suspendID)
	return got
}

func (f *fixture) suspension(taskID, suspendID string) taskbridge.Suspension {
	f.t.Helper()
	got, err := f.s.GetSuspension(f.ctx, taskID, suspendID)
	require.NoError(f.t, err, "GetSuspension(%s, %s)", taskID, suspendID)
	return got
}

// accept submits action clientActionID with fingerprint "fp-"+clientActionID
// at now and requires the given outcome.
func (f *fixture) accept(taskID, suspendID, clientActionID string, now time.Time, want taskbridge.ActionStatus) taskbridge.AcceptResult {
	f.t.Helper()
	res, err := f.s.AcceptAction(f.ctx, NewAttempt(taskID, suspendID, clientActionID, "fp-"+clientActionID, now))
	require.NoError(f.t, err, "AcceptAction(%s, %s, %s)", taskID, suspendID, clientActionID)
	require.Equal(f.t, want, res.Status, "AcceptAction(%s, %s, %s)", taskID, suspendID, clientActionID)
	return res
}

// readAll reads the whole retained log in pages.
func (f *fixture) readAll(taskID string) []taskbridge.TaskEvent {
	f.t.Helper()
	var all []taskbridge.TaskEvent
	after := int64(0)
	for {
		evs, err := f.s.Read(f.ctx, taskID, after, 100)
		require.NoError(f.t, err, "Read(%s, %d)", taskID, after)
		if len(evs) == 0 {
			return all
		}
		require.Greater(f.t, evs[0].Seq, after, "Read(%s, %d) returned an event not after the cursor", taskID, after)
		all = append(all, evs...)
		after = evs[len(evs)-1].Seq
	}
}

// requireSeqs requires evs to be the events with exactly these Seqs, with
// matching EventIDs.
func requireSeqs(t *testing.T, evs []taskbridge.TaskEvent, seqs ...int64) {
	t.Helper()
	got := make([]int64, len(evs))
	for i, ev := range evs {
		got[i] = ev.Seq
		require.Equal(t, taskbridge.FormatEventID(ev.Seq), ev.EventID, "EventID of Seq %d", ev.Seq)
	}
	if len(seqs) == 0 {
		seqs = []int64{}
	}
	require.Equal(t, seqs, got, "Seqs of the events read")
}

// seqRange returns from, from+1, ..., to.
func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// countType counts the events of type et.
func countType(evs []taskbridge.TaskEvent, et taskbridge.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == et {
			n++
		}
	}
	return n
}

// message decodes the message of a TASK_MESSAGE event.
func message(t *testing.T, ev taskbridge.TaskEvent) string {
	t.Helper()
	p, err := taskbridge.DecodePayload(ev)
	require.NoError(t, err)
	m, ok := p.(taskbridge.MessagePayload)
	require.True(t, ok, "event %s is %s, not TASK_MESSAGE", ev.EventID, ev.Type)
	return m.Message
}

// requireErrorIs requires err to wrap target.
func requireErrorIs(t *testing.T, err, target error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.ErrorIs(t, err, target, msgAndArgs...)
}

// race runs fn(0..n-1) in n goroutines released together, and waits.
func race(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// signal is a watcher that counts calls and signals a channel without
// blocking.
type signal struct {
	calls atomic.Int64
	ch    chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{}, 1)} }

func (s *signal) notify() {
	s.calls.Add(1)
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// wait waits for a call since the last wait.
func (s *signal) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.ch:
	case <-time.After(waitTimeout):
		t.Fatalf("storetest: no watch notification %s within %v", what, waitTimeout)
	}
}

// drain forgets calls made so far.
func (s *signal) drain() {
	select {
	case <-s.ch:
	default:
	}
}

// waitEvents is a waiter built on Watch and Read, as a poll handler would
// build it: it returns the events after cursor after, waiting (without
// polling) until there are some or ctx ends. It closes waiting, if not nil,
// once it found none and starts to wait.
func waitEvents(ctx context.Context, s taskbridge.Store, taskID string, after int64, waiting chan<- struct{}) ([]taskbridge.TaskEvent, error) {
	wake := make(chan struct{}, 1)
	stop := s.Watch(taskID, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer stop()
	for {
		evs, err := s.Read(ctx, taskID, after, 100)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		if waiting != nil {
			close(waiting)
			waiting = nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// waitResult is what a waiter started by startWaiter found.
type waitResult struct {
	evs []taskbridge.TaskEvent
	err error
}

// startWaiter runs waitEvents on s in a goroutine and returns once the
// waiter found no events and waits; its result arrives on the channel.
func startWaiter(ctx context.Context, t *testing.T, s taskbridge.Store, taskID string, after int64) <-chan waitResult {
	t.Helper()
	waiting := make(chan struct{})
	done := make(chan waitResult, 1)
	go func() {
		evs, err := waitEvents(ctx, s, taskID, after, waiting)
		done <- waitResult{evs, err}
	}()
	select {
	case <-waiting:
	case r := <-done:
		t.Fatalf("the waiter returned before any append: %v, %v", r.evs, r.err)
	}
	return done
}

// Comparison: stores may change time zones and re-encode JSON (a database
// round trip does), so values are normalised before they are compared.

func normTime(t time.Time) time.Time { return t.UTC() }

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// normJSON re-encodes JSON canonically (sorted keys, compact).
func normJSON(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return b
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return out
}

// normMap round-trips a free-form object through JSON.
func normMap(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}

func normTask(t taskbridge.Task) taskbridge.Task {
	t.Input = normJSON(t.Input)
	t.Metadata = normJSON(t.Metadata)
	if len(t.Attachments) == 0 {
		t.Attachments = nil
	}
	t.CreatedAt = normTime(t.CreatedAt)
	t.UpdatedAt = normTime(t.UpdatedAt)
	return t
}

func normEvent(e taskbridge.TaskEvent) taskbridge.TaskEvent {
	e.Payload = normJSON(e.Payload)
	e.CreatedAt = normTime(e.CreatedAt)
	return e
}

func normSuspension(s taskbridge.Suspension) taskbridge.Suspension {
	if len(s.AllowedActions) == 0 {
		s.AllowedActions = nil
	}
	s.ExpiresAt = normTimePtr(s.ExpiresAt)
	s.UIHints = normMap(s.UIHints)
	s.Interaction = normMap(s.Interaction)
	s.CreatedAt = normTime(s.CreatedAt)
	s.ClosedAt = normTime(s.ClosedAt)
	return s
}

func normReceipt(r taskbridge.ActionReceipt) taskbridge.ActionReceipt {
	r.Payload = normJSON(r.Payload)
	r.Metadata = normJSON(r.Metadata)
	r.CreatedAt = normTime(r.CreatedAt)
	return r
}

func requireTask(t *testing.T, want, got taskbridge.Task, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, normTask(want), normTask(got), msgAndArgs...)
}

func requireEvents(t *testing.T, want, got []taskbridge.TaskEvent, msgAndArgs ...any) {
	t.Helper()
	w := make([]taskbridge.TaskEvent, len(want))
	for i, e := range want {
		w[i] = normEvent(e)
	}
	g := make([]taskbridge.TaskEvent, len(got))
	for i, e := range got {
		g[i] = normEvent(e)
	}
	require.Equal(t, w, g, msgAndArgs...)
}

func requireSuspension(t *testing.T, want, got taskbridge.Suspension, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, normSuspension(want), normSuspension(got), msgAndArgs...)
}

func requireReceipt(t *testing.T, want, got taskbridge.ActionReceipt, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, normReceipt(want), normReceipt(got), msgAndArgs...)
}

func requireTime(t *testing.T, want, got time.Time, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, normTime(want), normTime(got), msgAndArgs...)
}

// ids returns the ids of tasks.
func ids(tasks []taskbridge.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// isNotFound reports whether err says the task or the receipt is unknown.
func isNotFound(err error) bool {
	return errors.Is(err, taskbridge.ErrTaskNotFound) || errors.Is(err, taskbridge.ErrReceiptNotFound)
}
