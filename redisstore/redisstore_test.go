package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// waitTimeout bounds every wait for a notification.
const waitTimeout = 10 * time.Second

// signal is a watcher that signals a channel without blocking.
type signal struct {
	calls atomic.Int64
	ch    chan string
}

func newSignal() *signal { return &signal{ch: make(chan string, 1)} }

func (s *signal) notify() { s.notifyID("") }

func (s *signal) notifyID(id string) {
	s.calls.Add(1)
	select {
	case s.ch <- id:
	default:
	}
}

func (s *signal) wait(t *testing.T, what string) string {
	t.Helper()
	select {
	case id := <-s.ch:
		return id
	case <-time.After(waitTimeout):
		t.Fatalf("no notification %s within %v", what, waitTimeout)
		return ""
	}
}

// fixture is a store with a clock and helpers that fail the test.
type fixture struct {
	t      *testing.T
	s      *redisstore.Store
	prefix string
	ctx    context.Context
	clock  time.Time
}

func setup(t *testing.T, cfg redisstore.Config) *fixture {
	t.Parallel()
	rdb := newClient(t)
	cfg.Prefix = uniquePrefix(t, rdb)
	return &fixture{t: t, s: openStore(t, rdb, cfg), prefix: cfg.Prefix, ctx: t.Context(), clock: storetest.BaseTime}
}

func (f *fixture) tick() time.Time {
	f.clock = f.clock.Add(time.Second)
	return f.clock
}

func (f *fixture) started(id string) {
	f.t.Helper()
	_, created, err := f.s.CreateTask(f.ctx, storetest.NewTask(id, "alice", "req-"+id, f.tick()))
	require.NoError(f.t, err)
	require.True(f.t, created)
	f.append(id, taskbridge.StartedPayload{})
}

func (f *fixture) append(id string, p taskbridge.Payload) taskbridge.TaskEvent {
	f.t.Helper()
	ev, err := f.s.Append(f.ctx, storetest.NewEvent(id, p, f.tick()))
	require.NoError(f.t, err)
	return ev
}

func (f *fixture) readAll(id string) []taskbridge.TaskEvent {
	f.t.Helper()
	evs, err := f.s.Read(f.ctx, id, 0, 10_000)
	require.NoError(f.t, err)
	return evs
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	for _, cfg := range []redisstore.Config{
		{Prefix: "a{b"},
		{MaxLen: -1},
		{FinishedTTL: -time.Second},
		{WatchTimeout: -time.Second},
	} {
		_, err := redisstore.New(rdb, cfg)
		require.Error(t, err, "%+v", cfg)
	}
	_, err := redisstore.New(nil, redisstore.Config{})
	require.Error(t, err)
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	_, err = redisstore.New(cluster, redisstore.Config{})
	require.ErrorContains(t, err, "Cluster")
}

func TestIdempotencyKey(t *testing.T) {
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	first := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "once"}, f.tick())
	first.IdempotencyKey = "step-1"
	got, err := f.s.Append(f.ctx, first)
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Seq)

	w := newSignal()
	defer f.s.Watch("task-1", w.notify)()
	again := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "twice"}, f.tick())
	again.IdempotencyKey = "step-1"
	dup, err := f.s.Append(f.ctx, again)
	require.NoError(t, err)
	require.Equal(t, int64(2), dup.Seq, "the earlier event is returned")
	require.Equal(t, "2", dup.EventID)
	require.JSONEq(t, string(first.Payload), string(dup.Payload), "with its payload")
	require.True(t, first.CreatedAt.Equal(dup.CreatedAt))
	require.Equal(t, "step-1", dup.IdempotencyKey)

	f.append("task-1", taskbridge.CompletedPayload{Result: 1})
	w.wait(t, "for the terminal event")
	dup, err = f.s.Append(f.ctx, again)
	require.NoError(t, err, "a keyed retry succeeds even after the task ended")
	require.Equal(t, int64(2), dup.Seq)

	evs := f.readAll("task-1")
	require.Len(t, evs, 3, "the duplicate appended nothing")
	require.Equal(t, "step-1", evs[1].IdempotencyKey, "Read returns the key")
	require.Empty(t, evs[0].IdempotencyKey)

	// Keys are per task.
	f.started("task-2")
	other := storetest.NewEvent("task-2", taskbridge.MessagePayload{Message: "other task"}, f.tick())
	other.IdempotencyKey = "step-1"
	got, err = f.s.Append(f.ctx, other)
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Seq)
}

func TestLeases(t *testing.T) {
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	f.started("task-2")
	now := f.tick()
	const ttl = 10 * time.Second

	l, ok, err := f.s.AcquireLease(f.ctx, "task-1", "a", now, ttl)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, taskbridge.Lease{TaskID: "task-1", Holder: "a", ExpiresAt: now.Add(ttl)}, l)

	l, ok, err = f.s.AcquireLease(f.ctx, "task-1", "b", now.Add(ttl-time.Nanosecond), ttl)
	require.NoError(t, err)
	require.False(t, ok, "an unexpired lease is not taken")
	require.Equal(t, "a", l.Holder)

	l, ok, err = f.s.AcquireLease(f.ctx, "task-1", "a", now.Add(time.Second), ttl)
	require.NoError(t, err)
	require.True(t, ok, "the holder extends its lease")
	require.True(t, l.ExpiresAt.Equal(now.Add(time.Second+ttl)))

	exp, err := f.s.ExpiredLeases(f.ctx, now.Add(time.Second+ttl-time.Nanosecond), 10)
	require.NoError(t, err)
	require.Empty(t, exp)
	exp, err = f.s.ExpiredLeases(f.ctx, now.Add(time.Second+ttl), 10)
	require.NoError(t, err)
	require.Equal(t, []taskbridge.Lease{{TaskID: "task-1", Holder: "a", ExpiresAt: now.Add(time.Second + ttl)}}, exp,
		"a lease is expired at its ExpiresAt")

	// Expired but not taken: still a's, and renewable.
	later := now.Add(time.Hour)
	l, err = f.s.RenewLease(f.ctx, "task-1", "a", later, ttl)
	require.NoError(t, err)
	require.True(t, l.ExpiresAt.Equal(later.Add(ttl)))
	_, err = f.s.RenewLease(f.ctx, "task-1", "b", later, ttl)
	require.ErrorIs(t, err, taskbridge.ErrLeaseLost)

	// Taken over after expiry.
	takeover := later.Add(ttl)
	l, ok, err = f.s.AcquireLease(f.ctx, "task-1", "b", takeover, ttl)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "b", l.Holder)
	_, err = f.s.RenewLease(f.ctx, "task-1", "a", takeover, ttl)
	require.ErrorIs(t, err, taskbridge.ErrLeaseLost, "the old holder lost it")

	// Earliest first, limited.
	_, _, err = f.s.AcquireLease(f.ctx, "task-2", "c", now, time.Second)
	require.NoError(t, err)
	exp, err = f.s.ExpiredLeases(f.ctx, takeover.Add(time.Hour), 1)
	require.NoError(t, err)
	require.Equal(t, []taskbridge.Lease{{TaskID: "task-2", Holder: "c", ExpiresAt: now.Add(time.Second)}}, exp)

	// Release by a non-holder does nothing; by the holder frees it.
	require.NoError(t, f.s.ReleaseLease(f.ctx, "task-1", "a"))
	_, ok, err = f.s.AcquireLease(f.ctx, "task-1", "a", takeover, ttl)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, f.s.ReleaseLease(f.ctx, "task-1", "b"))
	_, ok, err = f.s.AcquireLease(f.ctx, "task-1", "a", takeover, ttl)
	require.NoError(t, err)
	require.True(t, ok, "a released lease is free")

	// A terminal task has no lease.
	f.append("task-1", taskbridge.CompletedPayload{Result: 1})
	_, err = f.s.RenewLease(f.ctx, "task-1", "a", takeover, ttl)
	require.ErrorIs(t, err, taskbridge.ErrLeaseLost)
	_, _, err = f.s.AcquireLease(f.ctx, "task-1", "a", takeover, ttl)
	require.ErrorIs(t, err, taskbridge.ErrTaskTerminal)
	exp, err = f.s.ExpiredLeases(f.ctx, takeover.Add(24*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"task-2"}, leaseTasks(exp), "terminal tasks leave the index")

	// Errors.
	_, _, err = f.s.AcquireLease(f.ctx, "nope", "a", now, ttl)
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, err = f.s.RenewLease(f.ctx, "nope", "a", now, ttl)
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	require.NoError(t, f.s.ReleaseLease(f.ctx, "nope", "a"))
	_, _, err = f.s.AcquireLease(f.ctx, "task-2", "", now, ttl)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, _, err = f.s.AcquireLease(f.ctx, "task-2", "a", now, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
	_, err = f.s.ExpiredLeases(f.ctx, now, 0)
	require.ErrorIs(t, err, taskbridge.ErrInvalidRequest)
}

func leaseTasks(ls []taskbridge.Lease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.TaskID
	}
	return out
}

func TestLeaseRace(t *testing.T) {
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	now := f.tick()
	const n = 20
	var winners atomic.Int64
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			_, ok, err := f.s.AcquireLease(f.ctx, "task-1", fmt.Sprint("h", i), now, time.Minute)
			if ok {
				winners.Add(1)
			}
			errs <- err
		}()
	}
	close(start)
	for range n {
		require.NoError(t, <-errs)
	}
	require.Equal(t, int64(1), winners.Load(), "exactly one holder")
}

func TestControlFeed(t *testing.T) {
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	w := newSignal()
	defer f.s.WatchControl(w.notifyID)()

	_, first, err := f.s.RequestCancel(f.ctx, "task-1", "stop", f.tick())
	require.NoError(t, err)
	require.True(t, first)
	require.Equal(t, "task-1", w.wait(t, "for a cancel request"))

	before := w.calls.Load()
	_, first, err = f.s.RequestCancel(f.ctx, "task-1", "again", f.tick())
	require.NoError(t, err)
	require.False(t, first)

	f.started("task-2")
	sp, ev := storetest.NewSuspension("task-2", "s-1", nil, f.tick())
	_, _, err = f.s.OpenSuspension(f.ctx, sp, ev)
	require.NoError(t, err)
	res, err := f.s.AcceptAction(f.ctx, storetest.NewAttempt("task-2", "s-1", "a-1", "fp", f.tick()))
	require.NoError(t, err)
	require.Equal(t, taskbridge.ActionAccepted, res.Status)
	require.Equal(t, "task-2", w.wait(t, "for an accepted action"))
	require.Equal(t, before+1, w.calls.Load(), "a repeated cancel request is not a control change")
}

// TestTwoHandles checks that a second store on the same prefix, as another
// process opens it, sees and wakes on what the first one writes.
func TestTwoHandles(t *testing.T) {
	f := setup(t, redisstore.Config{})
	other := openStore(t, newClient(t), redisstore.Config{Prefix: f.prefix})
	f.started("task-1")

	w := newSignal()
	defer other.Watch("task-1", w.notify)()
	c := newSignal()
	defer other.WatchControl(c.notifyID)()

	ev := f.append("task-1", taskbridge.MessagePayload{Message: "hello"})
	w.wait(t, "on the other handle")
	evs, err := other.Read(f.ctx, "task-1", 1, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{ev.Seq}, seqs(evs))

	_, first, err := other.RequestCancel(f.ctx, "task-1", "from the other process", f.tick())
	require.NoError(t, err)
	require.True(t, first)
	require.Equal(t, "task-1", c.wait(t, "for a cancel made by the other handle"))
	got, err := f.s.GetTask(f.ctx, "task-1")
	require.NoError(t, err)
	require.True(t, got.CancelRequested)

	// Creates race across handles: one wins.
	_, created1, err := f.s.CreateTask(f.ctx, storetest.NewTask("x-1", "bob", "same", f.tick()))
	require.NoError(t, err)
	existing, created2, err := other.CreateTask(f.ctx, storetest.NewTask("x-2", "bob", "same", f.tick()))
	require.NoError(t, err)
	require.True(t, created1)
	require.False(t, created2)
	require.Equal(t, "x-1", existing.ID)
}

func seqs(evs []taskbridge.TaskEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

func TestMaxLen(t *testing.T) {
	f := setup(t, redisstore.Config{MaxLen: 10})
	f.started("task-1")
	for i := range 999 {
		f.append("task-1", taskbridge.MessagePayload{Message: fmt.Sprint(i + 2)})
	}
	evs := f.readAll("task-1")
	require.GreaterOrEqual(t, len(evs), 10, "at least MaxLen events are kept")
	require.Less(t, len(evs), 1000, "the stream is trimmed")
	first := evs[0].Seq
	require.Equal(t, int64(1000), evs[len(evs)-1].Seq)
	for i, ev := range evs {
		require.Equal(t, first+int64(i), ev.Seq, "the retained events are dense")
	}
	_, err := f.s.Read(f.ctx, "task-1", first-2, 10)
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired)
	got, err := f.s.Read(f.ctx, "task-1", first-1, 1)
	require.NoError(t, err)
	require.Equal(t, []int64{first}, seqs(got))
	_, err = f.s.Read(f.ctx, "task-1", 1001, 1)
	require.ErrorIs(t, err, taskbridge.ErrInvalidCursor)
}

func TestTrimEverything(t *testing.T) {
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	f.append("task-1", taskbridge.MessagePayload{Message: "2"})
	require.NoError(t, f.s.TrimEvents(f.ctx, "task-1", 0))
	_, err := f.s.Read(f.ctx, "task-1", 1, 10)
	require.ErrorIs(t, err, taskbridge.ErrEventsExpired, "every event after the cursor was trimmed")
	evs, err := f.s.Read(f.ctx, "task-1", 2, 10)
	require.NoError(t, err)
	require.Empty(t, evs)
	ev := f.append("task-1", taskbridge.MessagePayload{Message: "3"})
	require.Equal(t, int64(3), ev.Seq)
	require.ErrorIs(t, f.s.TrimEvents(f.ctx, "nope", 1), taskbridge.ErrTaskNotFound)
	require.ErrorIs(t, f.s.TrimEvents(f.ctx, "task-1", -1), taskbridge.ErrInvalidRequest)
}

func TestFinishedTTL(t *testing.T) {
	t.Parallel()
	var now atomic.Pointer[time.Time]
	start := storetest.BaseTime
	now.Store(&start)
	rdb := newClient(t)
	prefix := uniquePrefix(t, rdb)
	s := openStore(t, rdb, redisstore.Config{
		Prefix: prefix, FinishedTTL: time.Hour, SweepInterval: 10 * time.Millisecond,
		Now: func() time.Time { return *now.Load() },
	})
	ctx := t.Context()
	for _, id := range []string{"done", "running"} {
		_, _, err := s.CreateTask(ctx, storetest.NewTask(id, "alice", id, start))
		require.NoError(t, err)
		_, err = s.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{}, start))
		require.NoError(t, err)
	}
	_, err := s.Append(ctx, storetest.NewEvent("done", taskbridge.CompletedPayload{Result: 1}, start))
	require.NoError(t, err)

	later := start.Add(time.Hour + time.Second)
	swept := make(chan struct{}, 1)
	redisstore.SetSweepHookForTest(s, func() {
		select {
		case swept <- struct{}{}:
		default:
		}
	})
	now.Store(&later)
	// A pass that started before the clock moved may have found nothing:
	// wait for two.
	for range 2 {
		select {
		case <-swept:
		case <-time.After(waitTimeout):
			t.Fatal("no sweep pass")
		}
	}
	_, err = s.GetTask(ctx, "done")
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, err = s.Read(ctx, "done", 0, 10)
	require.ErrorIs(t, err, taskbridge.ErrTaskNotFound)
	_, err = s.GetTask(ctx, "running")
	require.NoError(t, err, "running tasks stay")
	list, err := s.ListTasks(ctx, taskbridge.TaskQuery{OwnerID: "alice", Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	keys, err := rdb.Keys(ctx, prefix+":tasks:{done}*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "every key of the task is gone")
}

// TestRetriedScriptAppliesOnce runs an append script twice with the same
// operation token, as go-redis does when a connection breaks after the
// command was sent: the second run returns the first one's result.
func TestRetriedWritesApplyOnce(t *testing.T) {
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	ev := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "once"}, f.tick())
	first, second, err := redisstore.AppendTwiceForTest(f.ctx, f.s, ev)
	require.NoError(t, err)
	require.Equal(t, first, second)
	require.Len(t, f.readAll("task-1"), 2)
}

func TestClose(t *testing.T) {
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	w := newSignal()
	stop := f.s.Watch("task-1", w.notify)
	require.NoError(t, f.s.CheckReady(f.ctx))
	require.NoError(t, f.s.Close())
	w.wait(t, "at Close")
	stop()
	require.NoError(t, f.s.Close(), "Close is idempotent")
	_, err := f.s.GetTask(f.ctx, "task-1")
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	_, err = f.s.Append(f.ctx, storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "m"}, f.tick()))
	require.ErrorIs(t, err, taskbridge.ErrClosed)
	require.ErrorIs(t, f.s.CheckReady(f.ctx), taskbridge.ErrClosed)
	f.s.Watch("task-1", func() { t.Error("called after Close") })()
}

func TestStoredJSON(t *testing.T) {
	// Payloads are kept byte for byte.
	f := setup(t, redisstore.Config{})
	f.started("task-1")
	raw := json.RawMessage(`{"message":"a \"quoted\" \u00e9 | 1 2","level":"INFO"}`)
	ev, err := f.s.Append(f.ctx, taskbridge.TaskEvent{Type: taskbridge.EventTaskMessage, TaskID: "task-1", CreatedAt: f.tick(), Payload: raw})
	require.NoError(t, err)
	evs, err := f.s.Read(f.ctx, "task-1", ev.Seq-1, 1)
	require.NoError(t, err)
	require.Equal(t, string(raw), string(evs[0].Payload))
}
