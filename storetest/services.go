package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

// The service-level part of the multi-replica section: two
// [taskbridge.Service]s ("A" and "B"), each with its own leased
// [runner.Runner], over the two handles of one backend, as two processes
// behind a load balancer would run.

// pushBound is how soon a control change made on one replica must reach
// the task on the other. Nothing polls in these tests (no maintenance, no
// recovery loop, leases renewed every 20s), so only a pushed notification
// can deliver it in time.
const pushBound = 5 * time.Second

// errCutOff is what a replica cut off from the store gets.
var errCutOff = errors.New("storetest: replica cut off from the store")

// partition is one replica's view of the store, which the test can cut:
// from then on every write and lease call fails, as if the process had died
// (its goroutines run on, but nothing they do reaches the store).
type partition struct {
	taskbridge.Store
	leases taskbridge.LeaseStore
	feed   taskbridge.ControlFeed
	cut    atomic.Bool
}

var (
	_ taskbridge.Store       = (*partition)(nil)
	_ taskbridge.LeaseStore  = (*partition)(nil)
	_ taskbridge.ControlFeed = (*partition)(nil)
)

func newPartition(s taskbridge.Store) *partition {
	return &partition{Store: s, leases: s.(taskbridge.LeaseStore), feed: s.(taskbridge.ControlFeed)}
}

func (p *partition) check() error {
	if p.cut.Load() {
		return errCutOff
	}
	return nil
}

func (p *partition) CreateTask(ctx context.Context, t taskbridge.Task) (taskbridge.Task, bool, error) {
	if err := p.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	return p.Store.CreateTask(ctx, t)
}

func (p *partition) RequestCancel(ctx context.Context, taskID, reason string, now time.Time) (taskbridge.Task, bool, error) {
	if err := p.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	return p.Store.RequestCancel(ctx, taskID, reason, now)
}

func (p *partition) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	if err := p.check(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return p.Store.Append(ctx, ev)
}

func (p *partition) OpenSuspension(ctx context.Context, s taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	if err := p.check(); err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	return p.Store.OpenSuspension(ctx, s, ev)
}

func (p *partition) AcceptAction(ctx context.Context, a taskbridge.ActionAttempt) (taskbridge.AcceptResult, error) {
	if err := p.check(); err != nil {
		return taskbridge.AcceptResult{}, err
	}
	return p.Store.AcceptAction(ctx, a)
}

func (p *partition) CloseSuspension(ctx context.Context, taskID, suspendID string, status taskbridge.SuspensionStatus, now time.Time) (taskbridge.Suspension, bool, error) {
	if err := p.check(); err != nil {
		return taskbridge.Suspension{}, false, err
	}
	return p.Store.CloseSuspension(ctx, taskID, suspendID, status, now)
}

func (p *partition) MarkResumeDispatched(ctx context.Context, taskID, suspendID string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.Store.MarkResumeDispatched(ctx, taskID, suspendID)
}

func (p *partition) AcquireLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, bool, error) {
	if err := p.check(); err != nil {
		return taskbridge.Lease{}, false, err
	}
	return p.leases.AcquireLease(ctx, taskID, holder, now, ttl)
}

func (p *partition) RenewLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, error) {
	if err := p.check(); err != nil {
		return taskbridge.Lease{}, err
	}
	return p.leases.RenewLease(ctx, taskID, holder, now, ttl)
}

func (p *partition) ReleaseLease(ctx context.Context, taskID, holder string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.leases.ReleaseLease(ctx, taskID, holder)
}

func (p *partition) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]taskbridge.Lease, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return p.leases.ExpiredLeases(ctx, now, limit)
}

func (p *partition) WatchControl(notify func(taskID string)) func() {
	return p.feed.WatchControl(notify)
}

// probe records the runs of the test handlers of both replicas and lets
// the test release them.
type probe struct {
	mu      sync.Mutex
	gates   map[string]chan struct{} // task id → closed to release its handler
	active  map[string]int           // task id → handlers running
	overlap []string                 // tasks that had two handlers running at once
	runs    map[string][]handlerRun  // task id → finished runs
	started map[string]chan string   // task id → replicas where a handler started
}

// handlerRun is one run of a handler.
type handlerRun struct {
	taskID, replica string
	cause           error // context.Cause when it ended, nil if not cancelled
}

func newProbe() *probe {
	return &probe{
		gates:   map[string]chan struct{}{},
		active:  map[string]int{},
		runs:    map[string][]handlerRun{},
		started: map[string]chan string{},
	}
}

func (p *probe) starts(taskID string) chan string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.started[taskID]
	if !ok {
		ch = make(chan string, 8)
		p.started[taskID] = ch
	}
	return ch
}

func (p *probe) gate(taskID string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.gates[taskID]
	if !ok {
		g = make(chan struct{})
		p.gates[taskID] = g
	}
	return g
}

// release lets the task's handler finish.
func (p *probe) release(taskID string) { close(p.gate(taskID)) }

// enter records a handler's start and returns the function that records
// its end.
func (p *probe) enter(ctx context.Context, taskID, replica string) func() {
	p.mu.Lock()
	p.active[taskID]++
	if p.active[taskID] > 1 {
		p.overlap = append(p.overlap, taskID)
	}
	p.mu.Unlock()
	p.starts(taskID) <- replica
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.active[taskID]--
		var cause error
		if ctx.Err() != nil {
			cause = context.Cause(ctx)
		}
		p.runs[taskID] = append(p.runs[taskID], handlerRun{taskID: taskID, replica: replica, cause: cause})
	}
}

// waitStart waits for a handler of taskID to start and returns its
// replica.
func (p *probe) waitStart(t *testing.T, taskID string) string {
	t.Helper()
	select {
	case replica := <-p.starts(taskID):
		return replica
	case <-time.After(waitTimeout):
		t.Fatalf("storetest: no handler of task %s started within %v", taskID, waitTimeout)
		return ""
	}
}

func (p *probe) finished(taskID string) []handlerRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]handlerRun(nil), p.runs[taskID]...)
}

// handlers returns the test handlers of replica:
//   - "steps" waits until released, then reports three steps;
//   - "wait" waits until released or cancelled;
//   - "approval" waits for an action on suspension "approve";
//   - "rerun" (re-run when taken over) reports one step once, then waits
//     until released or cancelled.
//
// Each returns {"replica": replica, ...}.
func (p *probe) handlers(replica string) map[string]runner.HandlerFunc {
	wait := func(ctx context.Context, taskID string) error {
		select {
		case <-p.gate(taskID):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return map[string]runner.HandlerFunc{
		"steps": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			defer p.enter(ctx, task.ID, replica)()
			if err := wait(ctx, task.ID); err != nil {
				return nil, err
			}
			for i := 1; i <= 3; i++ {
				if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: float64(30 * i), Stage: replica}); err != nil {
					return nil, err
				}
			}
			return map[string]string{"replica": replica}, nil
		},
		"wait": func(ctx context.Context, task *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
			defer p.enter(ctx, task.ID, replica)()
			return map[string]string{"replica": replica}, wait(ctx, task.ID)
		},
		"approval": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			defer p.enter(ctx, task.ID, replica)()
			a, err := runner.Suspend(ctx, e, taskbridge.SuspendOpts{
				SuspendID: "approve", ReasonCode: "APPROVAL_REQUIRED", AllowedActions: []string{"approve", "reject"},
			})
			if err != nil {
				return nil, err
			}
			return map[string]string{"replica": replica, "action": a.ActionType}, nil
		},
		"rerun": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			defer p.enter(ctx, task.ID, replica)()
			if _, err := e.EmitOnce(ctx, "step-1", taskbridge.ProgressPayload{Progress: 50, Stage: replica}); err != nil {
				return nil, err
			}
			return map[string]string{"replica": replica}, wait(ctx, task.ID)
		},
	}
}

// replica is one process of the pair.
type replica struct {
	name  string
	store *partition
	r     *runner.Runner
	svc   *taskbridge.Service
}

// pair is two replicas over the two handles of one backend.
type pair struct {
	t     *testing.T
	a, b  *replica
	probe *probe
}

var alice = taskbridge.AuthContext{Subject: "alice"}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newPair starts replicas "A" (over the first handle) and "B" (over the
// other) with leases of the given TTL; both are shut down when the test
// ends.
func newPair(t *testing.T, h Harness, ttl time.Duration) *pair {
	t.Helper()
	f := replicaSetup(t, h)
	p := &pair{t: t, probe: newProbe()}
	for i, s := range f.handles() {
		name := []string{"A", "B"}[i]
		store := newPartition(s)
		r, err := runner.New(runner.Config{
			Handlers:   p.probe.handlers(name),
			Logger:     discard(),
			Leases:     store,
			Replica:    name,
			LeaseTTL:   ttl,
			RerunTypes: []string{"rerun"},
		})
		require.NoError(t, err)
		svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: r, Logger: discard()})
		require.NoError(t, err)
		rep := &replica{name: name, store: store, r: r, svc: svc}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			require.NoError(t, svc.Shutdown(ctx))
			_ = r.Shutdown(ctx) // a cut-off replica cannot end its tasks
		})
		if i == 0 {
			p.a = rep
		} else {
			p.b = rep
		}
	}
	return p
}

// create creates a task of taskType through r's service.
func (p *pair) create(r *replica, taskType string) string {
	p.t.Helper()
	resp, err := r.svc.CreateTask(p.t.Context(), alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "req-" + taskType, TaskType: taskType,
	})
	require.NoError(p.t, err)
	return resp.TaskID
}

// runRecovery runs r's takeover loop until the test ends.
func (p *pair) runRecovery(r *replica, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.r.RunRecovery(ctx, r.store, r.svc.Emitter, interval)
	}()
	p.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// follow subscribes to the task through svc after cursor after and returns
// the events up to the first one for which until reports true, or the
// terminal one.
func follow(t *testing.T, svc *taskbridge.Service, taskID, after string, until func(taskbridge.TaskEvent) bool) []taskbridge.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	sub, err := svc.Subscribe(ctx, alice, taskID, after)
	require.NoError(t, err)
	defer sub.Close()
	var evs []taskbridge.TaskEvent
	for {
		ev, err := sub.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			return evs
		case ctx.Err() != nil:
			t.Fatalf("storetest: task %s: no event within %v (events so far: %v)", taskID, waitTimeout, eventTypes(evs))
		case err != nil:
			t.Fatalf("storetest: following task %s: %v (events so far: %v)", taskID, err, eventTypes(evs))
		}
		evs = append(evs, ev)
		if until(ev) || ev.Terminal() {
			return evs
		}
	}
}

func ofType(et taskbridge.EventType) func(taskbridge.TaskEvent) bool {
	return func(ev taskbridge.TaskEvent) bool { return ev.Type == et }
}

// toEnd follows a task to its terminal event.
func toEnd(taskbridge.TaskEvent) bool { return false }

func eventTypes(evs []taskbridge.TaskEvent) []taskbridge.EventType {
	out := make([]taskbridge.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// requireOneTerminal requires the task's whole log, read through s, to
// hold exactly one terminal event, last, and at most one TASK_STARTED, and
// returns the log.
func requireOneTerminal(t *testing.T, s taskbridge.Store, taskID string) []taskbridge.TaskEvent {
	t.Helper()
	evs, err := s.Read(t.Context(), taskID, 0, 1000)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	require.Equal(t, 1, countType(evs, taskbridge.EventTaskCompleted)+countType(evs, taskbridge.EventTaskFailed)+
		countType(evs, taskbridge.EventTaskCancelled), "terminal events of %v", eventTypes(evs))
	require.True(t, evs[len(evs)-1].Terminal())
	require.LessOrEqual(t, countType(evs, taskbridge.EventTaskStarted), 1, "TASK_STARTED events of %v", eventTypes(evs))
	return evs
}

func testServices(t *testing.T, h Harness) {
	t.Run("StreamOnOtherReplica", func(t *testing.T) {
		p := newPair(t, h, time.Minute)
		id := p.create(p.a, "steps")
		require.Equal(t, "A", p.probe.waitStart(t, id))
		started := follow(t, p.b.svc, id, "", ofType(taskbridge.EventTaskStarted))
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted}, eventTypes(started))
		p.probe.release(id)
		evs := follow(t, p.b.svc, id, started[0].EventID, toEnd)
		require.Equal(t, []taskbridge.EventType{
			taskbridge.EventTaskProgress, taskbridge.EventTaskProgress, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
		}, eventTypes(evs), "B streams the events of the task running on A")
		require.JSONEq(t, `{"result":{"replica":"A"}}`, string(evs[3].Payload))
		require.False(t, p.b.r.Holds(id))
	})

	t.Run("CancelOnOtherReplica", func(t *testing.T) {
		p := newPair(t, h, time.Minute)
		id := p.create(p.a, "wait")
		require.Equal(t, "A", p.probe.waitStart(t, id))
		follow(t, p.b.svc, id, "", ofType(taskbridge.EventTaskStarted))

		start := time.Now()
		resp, err := p.b.svc.CancelTask(t.Context(), alice, id, taskbridge.CancelRequest{Reason: "from B"})
		require.NoError(t, err)
		require.Equal(t, taskbridge.CancelRequested, resp.Status)
		evs := follow(t, p.b.svc, id, "1", toEnd)
		require.Less(t, time.Since(start), pushBound, "the cancel reached A through the store's control feed")
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskCancelled}, eventTypes(evs))
		cp, err := taskbridge.DecodePayload(evs[0])
		require.NoError(t, err)
		require.Equal(t, "from B", cp.(taskbridge.CancelledPayload).Reason)
	})

	t.Run("ActionOnOtherReplica", func(t *testing.T) {
		p := newPair(t, h, time.Minute)
		id := p.create(p.a, "approval")
		require.Equal(t, "A", p.probe.waitStart(t, id))
		follow(t, p.b.svc, id, "", ofType(taskbridge.EventTaskSuspended))

		start := time.Now()
		resp, err := p.b.svc.SubmitAction(t.Context(), alice, id, taskbridge.ActionRequest{
			ClientActionID: "act-1", SuspendID: "approve", ActionType: "approve",
		})
		require.NoError(t, err)
		require.Equal(t, taskbridge.ActionAccepted, resp.Status)
		evs := follow(t, p.b.svc, id, "2", toEnd)
		require.Less(t, time.Since(start), pushBound, "the action reached A through the store's control feed")
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskActionAccepted, taskbridge.EventTaskCompleted}, eventTypes(evs))
		require.JSONEq(t, `{"result":{"replica":"A","action":"approve"}}`, string(evs[1].Payload), "the handler on A resumed")
		require.Eventually(t, func() bool {
			sus, err := p.b.store.GetSuspension(t.Context(), id, "approve")
			return err == nil && sus.ResumeStatus == taskbridge.ResumeDispatched
		}, waitTimeout, 10*time.Millisecond, "A records the hand-off")
	})

	t.Run("CreateRace", func(t *testing.T) {
		p := newPair(t, h, time.Minute)
		var resps [2]taskbridge.CreateTaskResponse
		var errs [2]error
		race(2, func(i int) {
			svc := []*taskbridge.Service{p.a.svc, p.b.svc}[i]
			resps[i], errs[i] = svc.CreateTask(t.Context(), alice, taskbridge.CreateTaskRequest{ClientRequestID: "same", TaskType: "wait"})
		})
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.Equal(t, resps[0].TaskID, resps[1].TaskID)
		require.NotEqual(t, resps[0].Deduplicated, resps[1].Deduplicated, "exactly one replica created the task")
		id := resps[0].TaskID
		p.probe.waitStart(t, id)
		p.probe.release(id)
		follow(t, p.a.svc, id, "", toEnd)
		require.Len(t, p.probe.finished(id), 1, "the task ran once")
	})

	// The takeover tests cut A off the store (as if it died) and let B's
	// recovery loop take A's task over once A's lease expired.
	const takeoverTTL = 2 * time.Second

	t.Run("TakeoverFailsTask", func(t *testing.T) {
		p := newPair(t, h, takeoverTTL)
		p.runRecovery(p.b, takeoverTTL/8)
		id := p.create(p.a, "wait")
		require.Equal(t, "A", p.probe.waitStart(t, id))
		p.a.store.cut.Store(true)
		evs := follow(t, p.b.svc, id, "", toEnd)
		fp, err := taskbridge.DecodePayload(evs[len(evs)-1])
		require.NoError(t, err)
		require.Equal(t, taskbridge.FailedPayload{Code: runner.CodeExecutorLost,
			Message: "The task was interrupted by a server restart; retry it", Retryable: true}, fp)
		requireOneTerminal(t, p.b.store, id)
		runs := p.probe.finished(id)
		require.Len(t, runs, 1)
		require.Equal(t, "A", runs[0].replica)
		require.ErrorIs(t, runs[0].cause, taskbridge.ErrLeaseLost, "A stopped its handler when it could not renew the lease")
	})

	t.Run("TakeoverRerunsTask", func(t *testing.T) {
		p := newPair(t, h, takeoverTTL)
		p.runRecovery(p.b, takeoverTTL/8)
		id := p.create(p.a, "rerun")
		require.Equal(t, "A", p.probe.waitStart(t, id))
		follow(t, p.b.svc, id, "", ofType(taskbridge.EventTaskProgress))
		p.a.store.cut.Store(true)
		require.Equal(t, "B", p.probe.waitStart(t, id), "B runs the task again")
		p.probe.release(id)
		evs := follow(t, p.b.svc, id, "", toEnd)
		require.Equal(t, []taskbridge.EventType{
			taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted,
		}, eventTypes(evs), "one TASK_STARTED, the step once")
		require.JSONEq(t, `{"progress":50,"stage":"A"}`, string(evs[1].Payload))
		require.JSONEq(t, `{"result":{"replica":"B"}}`, string(evs[2].Payload))
		requireOneTerminal(t, p.b.store, id)
		p.probe.mu.Lock()
		overlap := p.probe.overlap
		p.probe.mu.Unlock()
		require.Empty(t, overlap, "A's handler stopped before B's started")
	})

	t.Run("RestartResumesByCursor", func(t *testing.T) {
		f := replicaSetup(t, h)
		before := make(map[string]int)
		var ids []string
		var cursors []string
		{
			pr := newProbe()
			r, err := runner.New(runner.Config{Handlers: pr.handlers("A"), Logger: discard(),
				Leases: f.s.(taskbridge.LeaseStore), Replica: "A", LeaseTTL: time.Minute})
			require.NoError(t, err)
			svc, err := taskbridge.New(taskbridge.Config{Store: f.s, Executor: r, Logger: discard()})
			require.NoError(t, err)
			for i := range 3 {
				resp, err := svc.CreateTask(t.Context(), alice, taskbridge.CreateTaskRequest{ClientRequestID: fmt.Sprint("r-", i), TaskType: "steps"})
				require.NoError(t, err)
				ids = append(ids, resp.TaskID)
				pr.release(resp.TaskID)
				evs := follow(t, svc, resp.TaskID, "", toEnd)
				before[resp.TaskID] = len(evs)
				cursors = append(cursors, evs[1].EventID) // a client saw TASK_STARTED and one step
			}
			require.NoError(t, r.Shutdown(t.Context()))
			require.NoError(t, svc.Shutdown(t.Context()))
		}
		// Every replica stopped; a new one opens the store afresh.
		again := h.Replica(t, f.s)
		r, err := runner.New(runner.Config{Handlers: newProbe().handlers("C"), Logger: discard(),
			Leases: again.(taskbridge.LeaseStore), Replica: "C"})
		require.NoError(t, err)
		svc, err := taskbridge.New(taskbridge.Config{Store: again, Executor: r, Logger: discard()})
		require.NoError(t, err)
		defer func() {
			require.NoError(t, r.Shutdown(context.Background()))
			require.NoError(t, svc.Shutdown(context.Background()))
		}()
		list, err := svc.ListTasks(t.Context(), alice, taskbridge.ListTasksRequest{})
		require.NoError(t, err)
		require.Len(t, list.Tasks, len(ids), "no task is lost")
		for i, id := range ids {
			evs := follow(t, svc, id, cursors[i], toEnd)
			require.Len(t, evs, before[id]-2, "the client resumes after its cursor with the rest")
			require.Equal(t, taskbridge.FormatEventID(3), evs[0].EventID)
			require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
		}
	})
}
