package runner_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/runner"
	"github.com/taskbridge-go/taskbridge/storetest"
)

func probeHandlers(p *probe) func(string) map[string]runner.HandlerFunc {
	return func(node string) map[string]runner.HandlerFunc {
		return map[string]runner.HandlerFunc{"plain": p.handler(node), "rerun": p.handler(node)}
	}
}

func TestLeaseConfig(t *testing.T) {
	t.Parallel()
	store := memstore.New(memstore.Config{})
	defer store.Close()
	ok := func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return nil, nil }
	h := map[string]runner.HandlerFunc{"x": ok}
	for name, cfg := range map[string]runner.Config{
		"negative ttl":        {Handlers: h, Leases: store, LeaseTTL: -time.Second},
		"rerun without lease": {Handlers: h, RerunTypes: []string{"x"}},
		"rerun unknown type":  {Handlers: h, Leases: store, RerunTypes: []string{"y"}},
	} {
		_, err := runner.New(cfg)
		require.Error(t, err, name)
	}
	r, err := runner.New(runner.Config{Handlers: h, Leases: store})
	require.NoError(t, err)
	require.NotEmpty(t, r.Replica(), "a random replica id by default")
	other, err := runner.New(runner.Config{Handlers: h, Leases: store})
	require.NoError(t, err)
	require.NotEqual(t, r.Replica(), other.Replica())

	_, err = r.TakeOver(context.Background(), store, nil)
	require.NoError(t, err)
	plain, err := runner.New(runner.Config{Handlers: h})
	require.NoError(t, err)
	_, err = plain.TakeOver(context.Background(), store, nil)
	require.Error(t, err, "TakeOver needs leases")
	require.Error(t, plain.RunRecovery(context.Background(), store, nil, time.Second), "RunRecovery needs leases")
	require.Error(t, r.RunRecovery(context.Background(), store, nil, -time.Second))
}

// A running task's lease is renewed for as long as it runs, so nobody else
// can take it, and it ends with the task.
func TestLeaseHeldWhileRunning(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProbe()
		c := newCluster(t, probeHandlers(p), nil, "A")
		defer c.close()
		a := c.nodes["A"]
		id := c.create("A", "plain")
		synctest.Wait()
		require.True(t, a.r.Holds(id))
		require.Equal(t, []string{id}, a.r.HeldTasks())
		for range 10 {
			_, ok, err := c.mem.AcquireLease(context.Background(), id, "B", time.Now(), testTTL)
			require.NoError(t, err)
			require.False(t, ok, "A's lease is live")
			require.Empty(t, c.expired())
			time.Sleep(testTTL / 2)
			synctest.Wait()
		}
		// 150s at one renewal every 10s.
		require.Equal(t, 15, a.store.renewCount())

		close(p.release)
		synctest.Wait()
		require.Equal(t, []taskbridge.EventType{
			taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
		}, typesOf(c.events(id)))
		_, _, err := c.mem.AcquireLease(context.Background(), id, "B", time.Now(), testTTL)
		require.ErrorIs(t, err, taskbridge.ErrTaskTerminal)
		require.False(t, a.r.Holds(id))
		require.Empty(t, a.r.HeldTasks())
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, 15, a.store.renewCount(), "an idle runner renews nothing")
	})
}

func TestSubmitRefusesTaskHeldElsewhere(t *testing.T) {
	t.Parallel()
	p := newProbe()
	c := newCluster(t, probeHandlers(p), nil, "A")
	defer c.close()
	task := storetest.NewTask("task-1", "alice", "req-1", time.Now())
	task.TaskType = "plain"
	_, _, err := c.mem.CreateTask(context.Background(), task)
	require.NoError(t, err)
	_, ok, err := c.mem.AcquireLease(context.Background(), "task-1", "B", time.Now(), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)

	a := c.nodes["A"]
	err = a.r.Submit(context.Background(), task, a.svc.Emitter("task-1"))
	require.ErrorIs(t, err, taskbridge.ErrLeaseLost)
	require.False(t, a.r.Holds("task-1"))
	require.Empty(t, c.events("task-1"))
}

// A runner that cannot renew a lease stops the task at its deadline,
// TTL-TTL/5 after the last renewal, before any other process may take it
// over, and emits nothing more: the lease is left to expire. A renewal that
// hangs (a store call that ignores its context) makes no job late.
func TestRenewalFailuresStopTask(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		fault   func(s *faultyStore) (undo func())
		stopsAt time.Duration
	}{
		{"store unavailable", func(s *faultyStore) func() {
			s.setRenew(errors.New("connection refused"), 0)
			return func() {}
		}, testTTL - testTTL/5},
		{"lease lost", func(s *faultyStore) func() {
			s.setRenew(taskbridge.ErrLeaseLost, 0)
			return func() {}
		}, testTTL / 3},
		{"renewal hangs", func(s *faultyStore) func() {
			block := make(chan struct{})
			s.mu.Lock()
			s.renewBlock = block
			s.mu.Unlock()
			return func() { close(block) }
		}, testTTL - testTTL/5},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newProbe()
				cl := newCluster(t, probeHandlers(p), nil, "A")
				defer cl.close()
				a := cl.nodes["A"]
				defer c.fault(a.store)()
				start := time.Now()
				id := cl.create("A", "plain")
				time.Sleep(testTTL)
				synctest.Wait()

				runs := p.finished()
				require.Len(t, runs, 1)
				require.ErrorIs(t, runs[0].cause, taskbridge.ErrLeaseLost)
				require.Equal(t, c.stopsAt, runs[0].stop.Sub(start), "when the handler was stopped")
				require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskProgress},
					typesOf(cl.events(id)), "no terminal event: the process taking over emits it")
				require.False(t, a.r.Holds(id))
				require.Equal(t, []taskbridge.Lease{{TaskID: id, Holder: "A", ExpiresAt: start.Add(testTTL)}},
					cl.expired(), "the lease is not released")
			})
		})
	}
}

// A renewal that hangs past the lease's expiry must not shorten the lease
// the same process acquires again when it takes the task over: it takes
// the task over only once the renewal returned.
func TestLateRenewalDoesNotShortenNewLease(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProbe()
		c := newCluster(t, probeHandlers(p), nil, "A")
		defer c.close()
		a := c.nodes["A"]
		block := make(chan struct{})
		a.store.mu.Lock()
		a.store.renewBlock = block
		a.store.mu.Unlock()
		id := c.create("A", "rerun")
		time.Sleep(testTTL) // the handler stopped, the lease expired
		synctest.Wait()
		require.Len(t, p.finished(), 1)
		require.Len(t, c.expired(), 1)

		require.Zero(t, c.takeOver("A"), "not while A's renewal of the lease may still land")
		a.store.mu.Lock()
		a.store.renewBlock = nil
		a.store.mu.Unlock()
		close(block) // the late renewal reaches the store
		time.Sleep(testTTL)
		synctest.Wait()
		require.Equal(t, 1, c.takeOver("A"), "once it expired again")
		synctest.Wait()
		require.Empty(t, c.expired(), "the new lease runs its full TTL")
		time.Sleep(testTTL)
		synctest.Wait()
		require.Empty(t, c.expired(), "and is renewed")
		require.True(t, a.r.Holds(id))
		close(p.release)
		synctest.Wait()
		require.Equal(t, taskbridge.EventTaskCompleted, requireOneTerminal(t, c.events(id)).Type)
	})
}

// A process that was paused (its clock moved on while none of its
// goroutines ran) refuses every event past its deadline at once, before
// its timers catch up.
func TestPausedProcessRefusesEvents(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var pausedFor atomic.Int64
		resume := make(chan struct{})
		ctxErr := make(chan error, 1)
		emitErr := make(chan error, 1)
		paused := func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			<-resume
			ctxErr <- ctx.Err()
			_, err := e.Emit(ctx, taskbridge.MessagePayload{Message: "late"})
			emitErr <- err
			return "late result", nil
		}
		c := newCluster(t, func(string) map[string]runner.HandlerFunc {
			return map[string]runner.HandlerFunc{"plain": paused, "rerun": paused}
		}, func(cfg *runner.Config) {
			cfg.Now = func() time.Time { return time.Now().Add(time.Duration(pausedFor.Load())) }
		}, "A")
		defer c.close()
		id := c.create("A", "plain")
		synctest.Wait()
		pausedFor.Store(int64(testTTL))
		close(resume)
		synctest.Wait()
		require.NoError(t, <-ctxErr, "no timer ran yet")
		require.ErrorIs(t, <-emitErr, taskbridge.ErrLeaseLost, "the emitter refuses after the deadline")
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted}, typesOf(c.events(id)),
			"neither the late message nor the late result")
		require.False(t, c.nodes["A"].r.Holds(id))
	})
}

// When a process dies, another one takes its tasks over once their leases
// expired: a task that is not re-runnable fails with EXECUTOR_LOST, a
// cancelled one ends cancelled; exactly one terminal event each.
func TestTakeOverEndsTasks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProbe()
		c := newCluster(t, probeHandlers(p), nil, "A", "B")
		defer c.close()
		start := time.Now()
		lost := c.create("A", "plain")
		cancelled := c.create("A", "plain")
		synctest.Wait()
		require.Zero(t, c.takeOver("B"), "A's leases are live")

		c.nodes["A"].store.setCut() // A dies
		_, err := c.nodes["B"].svc.CancelTask(context.Background(), alice, cancelled, taskbridge.CancelRequest{Reason: "bye"})
		require.NoError(t, err)
		time.Sleep(testTTL - time.Millisecond)
		synctest.Wait()
		require.Zero(t, c.takeOver("B"), "not before the leases expired")
		time.Sleep(time.Millisecond)
		require.Equal(t, 2, c.takeOver("B"))
		require.Zero(t, c.takeOver("B"))
		require.Empty(t, c.expired())

		ev := requireOneTerminal(t, c.events(lost))
		require.Equal(t, taskbridge.FailedPayload{Code: runner.CodeExecutorLost,
			Message: "The task was interrupted by a server restart; retry it", Retryable: true}, payloadOf(t, ev))
		ev = requireOneTerminal(t, c.events(cancelled))
		require.Equal(t, "bye", payloadOf(t, ev).(taskbridge.CancelledPayload).Reason)
		for _, run := range p.finished() {
			require.Equal(t, "A", run.node)
			require.LessOrEqual(t, run.stop.Sub(start), testTTL-testTTL/5, "A stopped before its lease expired")
		}
	})
}

// rerunHandler reports one step once, waits for an approval on a fixed
// suspension and returns where it ran.
func rerunHandler(node string) runner.HandlerFunc {
	return func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		if _, err := e.EmitOnce(ctx, "step-1", taskbridge.ProgressPayload{Progress: 50, Stage: node}); err != nil {
			return nil, err
		}
		a, err := runner.Suspend(ctx, e, approvalOpts)
		if err != nil {
			return nil, err
		}
		return map[string]string{"node": node, "action": a.ActionType, "id": a.ClientActionID}, nil
	}
}

func rerunHandlers(node string) map[string]runner.HandlerFunc {
	return map[string]runner.HandlerFunc{"rerun": rerunHandler(node), "plain": rerunHandler(node)}
}

func approve(t *testing.T, svc *taskbridge.Service, taskID, clientActionID string) {
	t.Helper()
	resp, err := svc.SubmitAction(context.Background(), alice, taskID, taskbridge.ActionRequest{
		ClientActionID: clientActionID, SuspendID: "s1", ActionType: "approve",
	})
	require.NoError(t, err)
	require.Equal(t, taskbridge.ActionAccepted, resp.Status)
}

// A re-runnable task is run again from the start by the process that takes
// it over: the log goes on (no second TASK_STARTED), EmitOnce steps are not
// repeated and the suspension is taken up where it was.
func TestTakeOverRerunsTask(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, rerunHandlers, nil, "A", "B")
		defer c.close()
		waiting := c.create("A", "rerun")  // still waiting for its action when B takes over
		answered := c.create("A", "rerun") // answered while nobody ran it
		synctest.Wait()
		suspended := []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskSuspended}
		require.Equal(t, suspended, typesOf(c.events(waiting)))

		c.nodes["A"].store.setCut()
		time.Sleep(testTTL - testTTL/5) // A stopped its handlers
		synctest.Wait()
		require.Empty(t, c.nodes["A"].r.HeldTasks())
		b := c.nodes["B"]
		approve(t, b.svc, answered, "early")
		time.Sleep(testTTL / 5)
		require.Equal(t, 2, c.takeOver("B"))
		synctest.Wait()

		require.Equal(t, suspended, typesOf(c.events(waiting)), "nothing is repeated")
		require.True(t, b.r.Holds(waiting))
		approve(t, b.svc, waiting, "late")
		synctest.Wait()
		for id, action := range map[string]string{waiting: "late", answered: "early"} {
			evs := c.events(id)
			require.Equal(t, append(slices.Clone(suspended), taskbridge.EventTaskActionAccepted, taskbridge.EventTaskCompleted),
				typesOf(evs), "task answered %s", action)
			require.JSONEq(t, `{"result":{"node":"B","action":"approve","id":"`+action+`"}}`, string(evs[4].Payload))
			require.JSONEq(t, `{"progress":50,"stage":"A"}`, string(evs[1].Payload), "the step from A's run")
		}
		// The early action's hand-off is closed by reconciliation.
		rep, err := b.svc.Reconcile(context.Background())
		require.NoError(t, err)
		require.Equal(t, taskbridge.ReconcileReport{Dispatched: 1}, rep)
	})
}

// At startup with leases, Recover leaves alone what live processes hold and
// what may be about to be submitted, and takes over the rest.
func TestRecoverWithLeases(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProbe()
		c := newCluster(t, probeHandlers(p), nil, "A", "B", "C")
		defer c.close()
		ctx := context.Background()
		live := c.create("A", "plain")
		dead := c.create("C", "plain")
		deadCancelled := c.create("C", "plain")
		synctest.Wait()
		c.nodes["C"].store.setCut()
		_, _, err := c.mem.RequestCancel(ctx, deadCancelled, "gone", time.Now())
		require.NoError(t, err)
		orphan := storetest.NewTask("orphan", "alice", "req-orphan", time.Now()) // created, never submitted
		orphan.TaskType = "plain"
		_, _, err = c.mem.CreateTask(ctx, orphan)
		require.NoError(t, err)

		time.Sleep(2 * testTTL)
		synctest.Wait()
		fresh := storetest.NewTask("fresh", "alice", "req-fresh", time.Now()) // its process may submit it any moment
		fresh.TaskType = "plain"
		_, _, err = c.mem.CreateTask(ctx, fresh)
		require.NoError(t, err)

		b := c.nodes["B"]
		n, err := b.r.Recover(ctx, b.store, b.svc.Emitter)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		for _, id := range []string{dead, "orphan"} {
			require.Equal(t, runner.CodeExecutorLost, payloadOf(t, requireOneTerminal(t, c.events(id))).(taskbridge.FailedPayload).Code, id)
		}
		require.Equal(t, taskbridge.EventTaskCancelled, requireOneTerminal(t, c.events(deadCancelled)).Type)
		for _, id := range []string{live, "fresh"} {
			task, err := c.mem.GetTask(ctx, id)
			require.NoError(t, err)
			require.False(t, task.Status.Terminal(), "%s is left alone", id)
		}
		require.True(t, c.nodes["A"].r.Holds(live))

		// The periodic pass finds the fresh task once it is stale.
		time.Sleep(testTTL)
		require.Equal(t, 1, c.takeOver("B"))
		require.Equal(t, runner.CodeExecutorLost, payloadOf(t, requireOneTerminal(t, c.events("fresh"))).(taskbridge.FailedPayload).Code)
	})
}

func TestRunRecovery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProbe()
		c := newCluster(t, probeHandlers(p), nil, "A", "B")
		defer c.close()
		b := c.nodes["B"]
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.r.RunRecovery(ctx, b.store, b.svc.Emitter, 0) }()
		defer func() {
			cancel()
			require.NoError(t, <-done)
		}()

		time.Sleep(time.Second)
		start := time.Now()
		id := c.create("A", "plain")
		synctest.Wait()
		c.nodes["A"].store.setCut()
		time.Sleep(testTTL + testTTL/2)
		synctest.Wait()
		ev := requireOneTerminal(t, c.events(id))
		// Passes run every TTL/2 from the start: at 15s, 30s, 45s. The lease
		// expired at 31s, so the pass at 45s took the task over.
		require.Equal(t, start.Add(testTTL-time.Second+testTTL/2).UTC(), ev.CreatedAt.UTC(), "taken over at the first pass after expiry")
	})
}

// A runner that cannot run a re-runnable task it took over (it is shutting
// down) leaves it: the lease expires and another process takes it.
func TestTakeOverWhenShutDown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, rerunHandlers, nil, "A", "B", "C")
		defer c.close()
		id := c.create("A", "rerun")
		synctest.Wait()
		c.nodes["A"].store.setCut()
		require.NoError(t, c.nodes["B"].r.Shutdown(context.Background()))
		time.Sleep(testTTL)
		require.Zero(t, c.takeOver("B"))
		require.Zero(t, c.takeOver("C"), "B holds the lease it took")
		time.Sleep(testTTL)
		require.Equal(t, 1, c.takeOver("C"))
		synctest.Wait()
		require.True(t, c.nodes["C"].r.Holds(id))
		approve(t, c.nodes["C"].svc, id, "act")
		synctest.Wait()
		require.JSONEq(t, `{"result":{"node":"C","action":"approve","id":"act"}}`, string(requireOneTerminal(t, c.events(id)).Payload))
	})
}
