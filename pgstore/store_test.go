package pgstore_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
	"github.com/taskbridge-go/taskbridge/storetest"
)

const waitTimeout = 10 * time.Second

var base = storetest.BaseTime

func create(t *testing.T, s *pgstore.Store, id string) taskbridge.Task {
	t.Helper()
	got, created, err := s.CreateTask(t.Context(), storetest.NewTask(id, "alice", "req-"+id, base))
	require.NoError(t, err)
	require.True(t, created)
	return got
}

func appendP(t *testing.T, s *pgstore.Store, id string, p taskbridge.Payload) taskbridge.TaskEvent {
	t.Helper()
	ev, err := s.Append(t.Context(), storetest.NewEvent(id, p, base))
	require.NoError(t, err)
	return ev
}

// signal counts calls and signals a buffered channel without blocking.
type signal struct{ ch chan string }

func newSignal() *signal { return &signal{ch: make(chan string, 64)} }

func (s *signal) notify() { s.notifyID("") }

func (s *signal) notifyID(id string) {
	select {
	case s.ch <- id:
	default:
	}
}

// wait waits for a call with id want (any call when want is "*").
func (s *signal) wait(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case got := <-s.ch:
			if want == "*" || got == want {
				return
			}
		case <-timeout:
			t.Fatalf("no notification %q within %v", want, waitTimeout)
		}
	}
}

func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	d := newDB(t)
	const n = 6
	stores := make([]*pgstore.Store, n)
	for i := range stores {
		s, err := pgstore.New(pgtest.Pool(t, d.URL, 2), pgstore.Config{Schema: d.Schema})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		stores[i] = s
	}
	var wg sync.WaitGroup
	versions := make([]int, n)
	errs := make([]error, n)
	for i, s := range stores {
		wg.Go(func() { versions[i], errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "Migrate %d", i)
		require.Equal(t, pgstore.LatestVersion(), versions[i])
	}
	v, err := stores[0].Migrate(t.Context())
	require.NoError(t, err, "Migrate again")
	require.Equal(t, pgstore.LatestVersion(), v)
	var rows int
	require.NoError(t, d.Pool.QueryRow(t.Context(),
		"SELECT count(*) FROM "+pgx.Identifier{d.Schema, "taskbridge_migrations"}.Sanitize()).Scan(&rows))
	require.Equal(t, pgstore.LatestVersion(), rows, "each migration is recorded once")
	create(t, stores[n-1], "task-1")
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := pgstore.New(nil, pgstore.Config{})
	require.Error(t, err)
}

func TestSchemaNeedsQuoting(t *testing.T) {
	d := newDB(t)
	d.Schema = `tb "odd"; schema ` + pgtest.SchemaName("x")
	pgtest.DropSchema(t, d.Pool, d.Schema)
	s := d.store(t, d.Pool, pgstore.Config{})
	create(t, s, "task-1")
	sig := newSignal()
	defer s.Watch("task-1", sig.notify)()
	appendP(t, s, "task-1", taskbridge.StartedPayload{})
	sig.wait(t, "*")
}

// TestNextStatusMatches checks the SQL state machine against
// taskbridge.NextStatus for every status and event type.
func TestNextStatusMatches(t *testing.T) {
	d := newDB(t)
	s := d.store(t, d.Pool, pgstore.Config{})
	statuses := []taskbridge.TaskStatus{taskbridge.StatusAccepted, taskbridge.StatusRunning,
		taskbridge.StatusCompleted, taskbridge.StatusFailed, taskbridge.StatusCancelled}
	types := []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskMessage,
		taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted, taskbridge.EventTaskCompleted,
		taskbridge.EventTaskFailed, taskbridge.EventTaskCancelled}
	fn := pgx.Identifier{s.Schema(), "next_status"}.Sanitize()
	for _, st := range statuses {
		for _, et := range types {
			var got *string
			require.NoError(t, d.Pool.QueryRow(t.Context(), "SELECT "+fn+"($1, $2)", string(st), string(et)).Scan(&got))
			want, err := taskbridge.NextStatus(st, et)
			if err != nil {
				require.Nil(t, got, "%s + %s is refused", st, et)
				continue
			}
			require.NotNil(t, got, "%s + %s is allowed", st, et)
			require.Equal(t, string(want), *got, "%s + %s", st, et)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := newStore(t, pgstore.Config{})
	ctx := t.Context()
	create(t, s, "task-1")
	appendP(t, s, "task-1", taskbridge.StartedPayload{})
	first := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "one"}, base.Add(time.Second))
	first.IdempotencyKey = "step-1"
	got, err := s.Append(ctx, first)
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Seq)

	again := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "other"}, base.Add(time.Hour))
	again.IdempotencyKey = "step-1"
	dup, err := s.Append(ctx, again)
	require.NoError(t, err)
	require.Equal(t, int64(2), dup.Seq, "the earlier event comes back")
	require.Equal(t, "2", dup.EventID)
	require.JSONEq(t, string(first.Payload), string(dup.Payload))
	require.True(t, dup.CreatedAt.Equal(first.CreatedAt))
	require.Equal(t, "step-1", dup.IdempotencyKey)

	appendP(t, s, "task-1", taskbridge.CompletedPayload{Result: 1})
	dup, err = s.Append(ctx, again)
	require.NoError(t, err, "a repeated key is answered after the task ended")
	require.Equal(t, int64(2), dup.Seq)

	evs, err := s.Read(ctx, "task-1", 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	require.Equal(t, "step-1", evs[1].IdempotencyKey, "Read returns the key")
	require.Empty(t, evs[0].IdempotencyKey)
}

func TestIdempotencyKeyConcurrent(t *testing.T) {
	s := newStore(t, pgstore.Config{})
	create(t, s, "task-1")
	appendP(t, s, "task-1", taskbridge.StartedPayload{})
	const n = 12
	seqs := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ev := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: fmt.Sprint(i)}, base)
			ev.IdempotencyKey = "once"
			got, err := s.Append(t.Context(), ev)
			seqs[i], errs[i] = got.Seq, err
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, int64(2), seqs[i])
	}
	task, err := s.GetTask(t.Context(), "task-1")
	require.NoError(t, err)
	require.Equal(t, int64(2), task.LastSeq, "one event for one key")
}

func TestMaxEventsPerTask(t *testing.T) {
	s := newStore(t, pgstore.Config{MaxEventsPerTask: 3})
	ctx := t.Context()
	create(t, s, "task-1")
	appendP(t, s, "task-1", taskbridge.StartedPayload{})
	keyed := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "keyed"}, base)
	keyed.IdempotencyKey = "k"
	_, err := s.Append(ctx, keyed)
	require.NoError(t, err)
	for i := range 5 {
		appendP(t, s, "task-1", taskbridge.MessagePayload{Message: fmt.Sprint(i)})
	}
	evs, err := s.Read(ctx, "task-1", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6, 7}, seqsOf(evs), "the newest three are kept")
	_, err = s.Read(ctx, "task-1", 2, 10)
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
	evs, err = s.Read(ctx, "task-1", 4, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6, 7}, seqsOf(evs))

	dup, err := s.Append(ctx, keyed)
	require.NoError(t, err, "a trimmed keyed event still deduplicates")
	require.Equal(t, int64(2), dup.Seq)
	task, err := s.GetTask(ctx, "task-1")
	require.NoError(t, err)
	require.Equal(t, int64(7), task.LastSeq)
}

func seqsOf(evs []taskbridge.TaskEvent) []int64 {
	out := []int64{}
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

func TestAppendTx(t *testing.T) {
	d := newDB(t)
	s := d.store(t, d.Pool, pgstore.Config{})
	ctx := t.Context()
	create(t, s, "task-1")
	sig := newSignal()
	defer s.Watch("task-1", sig.notify)()

	// Rolled back: nothing is appended.
	tx, err := d.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, tx, storetest.NewEvent("task-1", taskbridge.StartedPayload{}, base))
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	task, err := s.GetTask(ctx, "task-1")
	require.NoError(t, err)
	require.Zero(t, task.LastSeq)

	// Committed with the application's own row: both or neither.
	_, err = d.Pool.Exec(ctx, "CREATE TABLE "+pgx.Identifier{d.Schema, "orders"}.Sanitize()+" (id int)")
	require.NoError(t, err)
	tx, err = d.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{d.Schema, "orders"}.Sanitize()+" VALUES (1)")
	require.NoError(t, err)
	var evs []taskbridge.TaskEvent
	for _, p := range []taskbridge.Payload{taskbridge.StartedPayload{}, taskbridge.MessagePayload{Message: "ordered"}} {
		ev, err := s.AppendTx(ctx, tx, storetest.NewEvent("task-1", p, base))
		require.NoError(t, err)
		evs = append(evs, ev)
	}
	require.Equal(t, []int64{1, 2}, seqsOf(evs))
	got, err := s.Read(ctx, "task-1", 0, 10)
	require.NoError(t, err)
	require.Empty(t, got, "nothing is visible before commit")
	require.NoError(t, tx.Commit(ctx))
	sig.wait(t, "*")
	got, err = s.Read(ctx, "task-1", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, seqsOf(got))
}

func TestCreateTaskTx(t *testing.T) {
	d := newDB(t)
	ctx := t.Context()
	s := d.store(t, d.Pool, pgstore.Config{})
	tx, err := d.Pool.Begin(ctx)
	require.NoError(t, err)
	_, created, err := s.CreateTaskTx(ctx, tx, storetest.NewTask("task-1", "alice", "r1", base))
	require.NoError(t, err)
	require.True(t, created)
	require.NoError(t, tx.Rollback(ctx))
	_, err = s.GetTask(ctx, "task-1")
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound, "a rolled back create leaves nothing")

	tx, err = d.Pool.Begin(ctx)
	require.NoError(t, err)
	_, created, err = s.CreateTaskTx(ctx, tx, storetest.NewTask("task-2", "alice", "r2", base))
	require.NoError(t, err)
	require.True(t, created)
	require.NoError(t, tx.Commit(ctx))
	got, created, err := s.CreateTask(ctx, storetest.NewTask("task-3", "alice", "r2", base))
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, "task-2", got.ID)
}

func TestLeases(t *testing.T) {
	s := newStore(t, pgstore.Config{})
	ctx := t.Context()
	create(t, s, "task-1")
	create(t, s, "task-2")
	ttl := 10 * time.Second

	l, ok, err := s.AcquireLease(ctx, "task-1", "a", base, ttl)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, taskbridge.Lease{TaskID: "task-1", Holder: "a", ExpiresAt: base.Add(ttl)}, l)

	l, ok, err = s.AcquireLease(ctx, "task-1", "b", base.Add(time.Second), ttl)
	require.NoError(t, err)
	require.False(t, ok, "b cannot take a's live lease")
	require.Equal(t, "a", l.Holder)

	_, err = s.RenewLease(ctx, "task-1", "b", base, ttl)
	require.ErrorIs(t, err, taskbridge.ErrLeaseLost)
	l, err = s.RenewLease(ctx, "task-1", "a", base.Add(time.Minute), ttl)
	require.NoError(t, err, "an expired lease nobody took is renewed")
	require.Equal(t, base.Add(time.Minute+ttl), l.ExpiresAt)

	_, _, err = s.AcquireLease(ctx, "task-2", "b", base, ttl)
	require.NoError(t, err)
	expired, err := s.ExpiredLeases(ctx, base.Add(ttl), 10)
	require.NoError(t, err)
	require.Equal(t, []taskbridge.Lease{{TaskID: "task-2", Holder: "b", ExpiresAt: base.Add(ttl)}}, expired)

	l, ok, err = s.AcquireLease(ctx, "task-2", "c", base.Add(ttl), ttl)
	require.NoError(t, err)
	require.True(t, ok, "an expired lease is taken over")
	require.Equal(t, "c", l.Holder)
	_, err = s.RenewLease(ctx, "task-2", "b", base.Add(ttl), ttl)
	require.ErrorIs(t, err, taskbridge.ErrLeaseLost)

	require.NoError(t, s.ReleaseLease(ctx, "task-2", "b"), "releasing a lease one does not hold is harmless")
	require.NoError(t, s.ReleaseLease(ctx, "task-2", "c"))
	_, ok, err = s.AcquireLease(ctx, "task-2", "d", base.Add(ttl), ttl)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.ReleaseLease(ctx, "nope", "d"))

	appendP(t, s, "task-1", taskbridge.CompletedPayload{Result: 1})
	_, err = s.RenewLease(ctx, "task-1", "a", base, ttl)
	require.ErrorIs(t, err, taskbridge.ErrLeaseLost, "a terminal task's lease is lost")
	_, _, err = s.AcquireLease(ctx, "task-1", "a", base, ttl)
	require.ErrorIs(t, err, taskbridge.ErrTaskTerminal)
	expired, err = s.ExpiredLeases(ctx, base.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, expired, 1, "terminal tasks' leases are not listed")
	require.Equal(t, "task-2", expired[0].TaskID)

	_, _, err = s.AcquireLease(ctx, "nope", "a", base, ttl)
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, err = s.RenewLease(ctx, "nope", "a", base, ttl)
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, _, err = s.AcquireLease(ctx, "task-2", "", base, ttl)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, _, err = s.AcquireLease(ctx, "task-2", "a", base, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, err = s.ExpiredLeases(ctx, base, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
}

// TestReplicas runs two stores on one schema, each with its own pool and
// listener, as two processes would.
func TestReplicas(t *testing.T) {
	d := newDB(t)
	a := d.store(t, d.Pool, pgstore.Config{ListenerName: "listener-a-" + d.Schema})
	b := d.store(t, pgtest.Pool(t, d.URL, 2), pgstore.Config{ListenerName: "listener-b-" + d.Schema})
	ctx := t.Context()
	create(t, a, "task-1")

	events := newSignal()
	defer b.Watch("task-1", events.notify)()
	appendP(t, a, "task-1", taskbridge.StartedPayload{})
	events.wait(t, "*")

	control := newSignal()
	defer b.WatchControl(control.notifyID)()
	_, first, err := a.RequestCancel(ctx, "task-1", "stop", base)
	require.NoError(t, err)
	require.True(t, first)
	control.wait(t, "task-1")

	create(t, a, "task-2")
	appendP(t, a, "task-2", taskbridge.StartedPayload{})
	sp, ev := storetest.NewSuspension("task-2", "s-1", nil, base)
	_, _, err = b.OpenSuspension(ctx, sp, ev)
	require.NoError(t, err)
	res, err := a.AcceptAction(ctx, storetest.NewAttempt("task-2", "s-1", "a-1", "fp", base))
	require.NoError(t, err)
	require.Equal(t, taskbridge.ActionAccepted, res.Status)
	control.wait(t, "task-2")
}

func TestReadinessAndClose(t *testing.T) {
	s := newStore(t, pgstore.Config{})
	ctx := t.Context()
	require.NoError(t, s.CheckReady(ctx))
	create(t, s, "task-1")
	sig := newSignal()
	stop := s.Watch("task-1", sig.notify)
	defer stop()
	require.NoError(t, s.CheckReady(ctx), "ready with the listener up")
	require.NoError(t, s.Close())
	sig.wait(t, "*")
	require.NoError(t, s.Close(), "Close is idempotent")
	require.ErrorIs(t, s.CheckReady(ctx), taskbridge.ErrClosed)
	_, err := s.GetTask(ctx, "task-1")
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	_, err = s.Append(ctx, storetest.NewEvent("task-1", taskbridge.StartedPayload{}, base))
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	s.Watch("task-1", func() {})()
}

func TestInvalidPayloadIsInvalidEvent(t *testing.T) {
	s := newStore(t, pgstore.Config{})
	create(t, s, "task-1")
	ev := storetest.NewEvent("task-1", taskbridge.StartedPayload{}, base)
	ev.Payload = json.RawMessage(`{"broken":`)
	_, err := s.Append(t.Context(), ev)
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
}
