package runner_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

var (
	stressSeeds = flag.Int("stress.seeds", 4, "how many randomized scenarios TestLeaseStress runs (seeds 1..n)")
	stressSeed  = flag.Uint64("stress.seed", 0, "run only this seed of TestLeaseStress")
)

// TestLeaseStress runs randomized scenarios of several processes sharing a
// store while some are killed, paused or slow to renew their leases, with
// tasks of two owners of which some wait on a suspension (answered or left
// to expire) without holding a slot, and checks that no task ever has two
// handlers at work at once, that every task ends with exactly one terminal
// event (and starts at most once), that the events of a task's successive
// handler runs never interleave, that no process has more handlers at work
// outside Suspend than it has slots, and that every process lets go of
// every task in the end.
// Longer runs: go test ./runner -run TestLeaseStress -args -stress.seeds=500
func TestLeaseStress(t *testing.T) {
	t.Parallel()
	seeds := make([]uint64, 0, *stressSeeds)
	if *stressSeed != 0 {
		seeds = append(seeds, *stressSeed)
	} else {
		for s := range uint64(*stressSeeds) {
			seeds = append(seeds, s+1)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { runStress(t, seed) })
		})
	}
}

// stressNode adds pausing to a cluster node: while paused, its handlers
// stop at their next step and its lease renewals hang.
type stressNode struct {
	*node
	mu     sync.Mutex
	gate   chan struct{} // closed while the node runs
	killed bool
}

func (n *stressNode) wait() {
	n.mu.Lock()
	gate := n.gate
	n.mu.Unlock()
	<-gate
}

func (n *stressNode) pause() {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.gate:
	default:
		return // paused already
	}
	n.gate = make(chan struct{})
	n.store.mu.Lock()
	n.store.renewBlock = n.gate
	n.store.mu.Unlock()
}

func (n *stressNode) resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.gate:
		return
	default:
	}
	close(n.gate)
	n.store.mu.Lock()
	n.store.renewBlock = nil
	n.store.mu.Unlock()
}

// stressSlots is each node's Config.Concurrency in TestLeaseStress.
const stressSlots = 2

// stressWorld tracks handler runs across nodes.
type stressWorld struct {
	mu      sync.Mutex
	runs    int
	active  map[string]int      // task id → handlers at work
	overlap []string            // tasks that had two at once
	busy    map[string]int      // node → handlers at work outside Suspend
	crowded []string            // nodes that had more than stressSlots
	trace   map[string][]string // task id → what its handlers did, for failures
}

// busyEnter and busyLeave count a node's handlers that hold a slot: every
// handler at work, except while it waits in Suspend or after Suspend
// returned for a cancelled context (then it may go on without a slot).
func (w *stressWorld) busyEnter(node string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy[node]++
	if w.busy[node] > stressSlots {
		w.crowded = append(w.crowded, fmt.Sprintf("%s at %s: %d", node, time.Now().Format("15:04:05"), w.busy[node]))
	}
}

func (w *stressWorld) busyLeave(node string) {
	w.mu.Lock()
	w.busy[node]--
	w.mu.Unlock()
}

// log records what a handler of taskID did, at the bubble's time.
func (w *stressWorld) log(taskID, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.trace[taskID] = append(w.trace[taskID], time.Now().Format("15:04:05 ")+fmt.Sprintf(format, args...))
}

func (w *stressWorld) enter(taskID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.active[taskID]++
	if w.active[taskID] > 1 {
		w.overlap = append(w.overlap, taskID)
	}
}

func (w *stressWorld) leave(taskID string) {
	w.mu.Lock()
	w.active[taskID]--
	w.mu.Unlock()
}

func (w *stressWorld) newRun() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runs++
	return w.runs
}

// handler takes a few steps, each after a random pause, reporting each
// with a message naming its run. A step that finds its node paused
// counts as not at work until the node resumes and the handler's next
// event went through (then its lease was valid: no other process may have
// taken the task). Tasks of the "-wait" types wait on suspension "s" after
// their first step, for an action or its expiry.
func (w *stressWorld) handler(n func() *stressNode, seed uint64) runner.HandlerFunc {
	return func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		run := w.newRun()
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		node := n().name
		w.log(task.ID, "run %d on %s enters", run, node)
		defer func() { w.log(task.ID, "run %d on %s exits (ctx %v)", run, node, context.Cause(ctx)) }()
		w.enter(task.ID)
		working := true
		defer func() {
			if working {
				w.leave(task.ID)
			}
		}()
		w.busyEnter(node)
		busy := true
		defer func() {
			if busy {
				w.busyLeave(node)
			}
		}()
		steps := 2 + rng.IntN(4)
		for i := range steps {
			if i == 1 && strings.HasSuffix(task.TaskType, "-wait") {
				w.busyLeave(node)
				busy = false
				a, err := runner.Suspend(ctx, e, taskbridge.SuspendOpts{
					SuspendID: "s", ReasonCode: "stress", AllowedActions: []string{"go"},
					TTL: time.Duration(5+rng.IntN(55)) * time.Second,
				})
				if ctx.Err() == nil {
					w.busyEnter(node)
					busy = true
				}
				if err != nil {
					w.log(task.ID, "run %d suspend err %v", run, err)
					return nil, err
				}
				w.log(task.ID, "run %d got action %s", run, a.ClientActionID)
			}
			select {
			case <-time.After(time.Duration(1+rng.IntN(20)) * time.Second):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			node := n()
			node.mu.Lock()
			gate := node.gate
			node.mu.Unlock()
			select {
			case <-gate:
			default: // paused: not at work until the next event goes through
				w.leave(task.ID)
				working = false
				w.log(task.ID, "run %d paused", run)
				node.wait()
				w.log(task.ID, "run %d resumed", run)
			}
			if _, err := e.Emit(ctx, taskbridge.MessagePayload{Message: fmt.Sprintf("run-%d step-%d", run, i)}); err != nil {
				w.log(task.ID, "run %d emit err %v", run, err)
				return nil, err
			}
			w.log(task.ID, "run %d emit ok", run)
			if !working {
				w.enter(task.ID)
				working = true
			}
		}
		return map[string]int{"run": run}, nil
	}
}

func runStress(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0))
	world := &stressWorld{active: map[string]int{}, busy: map[string]int{}, trace: map[string][]string{}}
	names := []string{"n0", "n1", "n2", "n3"}
	nodes := map[string]*stressNode{}
	handlers := func(name string) map[string]runner.HandlerFunc {
		h := world.handler(func() *stressNode { return nodes[name] }, seed)
		return map[string]runner.HandlerFunc{"rerun": h, "plain": h, "rerun-wait": h, "plain-wait": h}
	}
	c := newCluster(t, handlers, func(cfg *runner.Config) {
		cfg.Concurrency = stressSlots
		cfg.RerunTypes = []string{"rerun", "rerun-wait"}
	}, names...)
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	var recovery sync.WaitGroup
	for _, name := range names {
		n := &stressNode{node: c.nodes[name], gate: make(chan struct{})}
		close(n.gate)
		nodes[name] = n
		recovery.Go(func() { _ = n.r.RunRecovery(ctx, n.store, n.svc.Emitter, 0) })
	}
	defer func() {
		cancel()
		recovery.Wait()
	}()
	live := func() []*stressNode {
		var out []*stressNode
		for _, name := range names {
			if n := nodes[name]; !n.killed {
				out = append(out, n)
			}
		}
		return out
	}

	// Five minutes of tasks, cancels, actions and faults. n0 is never
	// killed.
	var tasks []string
	owners := map[string]taskbridge.AuthContext{}
	var resumes []func()
	for elapsed := time.Duration(0); elapsed < 5*time.Minute; {
		step := time.Duration(1+rng.IntN(10)) * time.Second
		time.Sleep(step)
		elapsed += step
		for _, f := range resumes {
			f()
		}
		resumes = nil
		ls := live()
		switch k := rng.IntN(12); {
		case k < 4 && len(tasks) < 16:
			n := ls[rng.IntN(len(ls))]
			taskType := []string{"rerun", "plain", "rerun-wait", "plain-wait"}[rng.IntN(4)]
			who := stressOwners[rng.IntN(2)]
			resp, err := n.svc.CreateTask(context.Background(), who, taskbridge.CreateTaskRequest{
				ClientRequestID: fmt.Sprint("req-", len(tasks)), TaskType: taskType,
			})
			require.NoError(t, err)
			tasks = append(tasks, resp.TaskID)
			owners[resp.TaskID] = who
		case k == 4 && len(tasks) > 0:
			n := ls[rng.IntN(len(ls))]
			id := tasks[rng.IntN(len(tasks))]
			_, err := n.svc.CancelTask(context.Background(), owners[id], id, taskbridge.CancelRequest{Reason: "stress"})
			require.NoError(t, err)
		case k >= 10 && len(tasks) > 0:
			// Answer a task waiting on its suspension, if any.
			var open []string
			for _, id := range tasks {
				if s, err := c.mem.GetSuspension(context.Background(), id, "s"); err == nil && s.Status == taskbridge.SuspensionOpen {
					open = append(open, id)
				}
			}
			if len(open) == 0 {
				break
			}
			n := ls[rng.IntN(len(ls))]
			id := open[rng.IntN(len(open))]
			_, err := n.svc.SubmitAction(context.Background(), owners[id], id, taskbridge.ActionRequest{
				ClientActionID: fmt.Sprint("act-", elapsed), SuspendID: "s", ActionType: "go",
			})
			require.NoError(t, err)
		case k == 5 && len(ls) > 2:
			n := ls[1+rng.IntN(len(ls)-1)]
			n.resume()
			n.killed = true
			n.store.setCut()
		case k == 6 || k == 7:
			n := ls[rng.IntN(len(ls))]
			n.pause()
			if rng.IntN(2) == 0 { // a short pause, or one longer than a lease
				resumes = append(resumes, n.resume)
			} else {
				time.AfterFunc(time.Duration(30+rng.IntN(60))*time.Second, n.resume)
			}
		case k == 8:
			n := ls[rng.IntN(len(ls))]
			n.store.setRenew(nil, time.Duration(1+rng.IntN(15))*time.Second)
		default:
			for _, n := range ls {
				n.store.setRenew(nil, 0)
			}
		}
	}

	// Calm: everything ends.
	for _, n := range live() {
		n.resume()
		n.store.setRenew(nil, 0)
	}
	for range 100 {
		if allTerminal(t, c, tasks) {
			break
		}
		time.Sleep(testTTL)
	}
	require.True(t, allTerminal(t, c, tasks), "seed %d: every task ends", seed)
	synctest.Wait()

	world.mu.Lock()
	overlap, crowded := world.overlap, world.crowded
	for _, id := range overlap {
		t.Logf("task %s:\n%s", id, strings.Join(world.trace[id], "\n"))
	}
	world.mu.Unlock()
	require.Empty(t, overlap, "seed %d: tasks with two handlers at work at once", seed)
	require.Empty(t, crowded, "seed %d: nodes with more handlers at work than slots", seed)
	for _, name := range names {
		require.Equal(t, runner.Stats{}, nodes[name].r.Stats(), "seed %d: node %s holds nothing", seed, name)
	}
	for _, id := range tasks {
		evs := c.events(id)
		requireOneTerminal(t, evs)
		requireRunsInSequence(t, seed, evs)
	}
}

// stressOwners own the tasks of TestLeaseStress.
var stressOwners = []taskbridge.AuthContext{alice, {Subject: "bob"}}

func allTerminal(t *testing.T, c *cluster, tasks []string) bool {
	for _, id := range tasks {
		task, err := c.mem.GetTask(context.Background(), id)
		require.NoError(t, err)
		if !task.Status.Terminal() {
			return false
		}
	}
	return true
}

// requireRunsInSequence requires the messages of successive handler runs
// not to interleave: once a later run reported, an earlier one never does.
func requireRunsInSequence(t *testing.T, seed uint64, evs []taskbridge.TaskEvent) {
	t.Helper()
	done := map[string]bool{}
	current := ""
	for _, ev := range evs {
		if ev.Type != taskbridge.EventTaskMessage {
			continue
		}
		msg := payloadOf(t, ev).(taskbridge.MessagePayload).Message
		run, _, _ := strings.Cut(msg, " ")
		if run != current {
			require.False(t, done[run], "seed %d: task %s: %s reported after a later run", seed, ev.TaskID, run)
			if current != "" {
				done[current] = true
			}
			current = run
		}
	}
}
