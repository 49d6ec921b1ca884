package runner_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/runner"
)

// A cluster is several processes ("nodes") sharing one memstore, each with
// its own Service and leased Runner, and each behind a faultyStore through
// which the test cuts it off, fails or delays its lease renewals. Tests run
// in a synctest bubble, so lease timing is exact.

const testTTL = 30 * time.Second

var errCut = errors.New("test: node cut off from the store")

// faultyStore is one node's view of the shared store.
type faultyStore struct {
	*memstore.Store

	mu         sync.Mutex
	cut        bool          // every write and lease call fails
	renewErr   error         // RenewLease fails with it
	renewDelay time.Duration // RenewLease waits this long first
	renewBlock chan struct{} // RenewLease waits for it to close, ignoring its context
	renews     int
}

var (
	_ taskbridge.Store       = (*faultyStore)(nil)
	_ taskbridge.LeaseStore  = (*faultyStore)(nil)
	_ taskbridge.ControlFeed = (*faultyStore)(nil)
)

func (f *faultyStore) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return errCut
	}
	return nil
}

func (f *faultyStore) setCut() {
	f.mu.Lock()
	f.cut = true
	f.mu.Unlock()
}

func (f *faultyStore) setRenew(err error, delay time.Duration) {
	f.mu.Lock()
	f.renewErr, f.renewDelay = err, delay
	f.mu.Unlock()
}

func (f *faultyStore) renewCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renews
}

func (f *faultyStore) AcquireLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, bool, error) {
	if err := f.check(); err != nil {
		return taskbridge.Lease{}, false, err
	}
	return f.Store.AcquireLease(ctx, taskID, holder, now, ttl)
}

func (f *faultyStore) RenewLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, error) {
	f.mu.Lock()
	f.renews++
	cut, renewErr, delay, block := f.cut, f.renewErr, f.renewDelay, f.renewBlock
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return taskbridge.Lease{}, ctx.Err()
		}
	}
	switch {
	case cut:
		return taskbridge.Lease{}, errCut
	case renewErr != nil:
		return taskbridge.Lease{}, renewErr
	}
	return f.Store.RenewLease(ctx, taskID, holder, now, ttl)
}

func (f *faultyStore) ReleaseLease(ctx context.Context, taskID, holder string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.Store.ReleaseLease(ctx, taskID, holder)
}

func (f *faultyStore) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]taskbridge.Lease, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return f.Store.ExpiredLeases(ctx, now, limit)
}

func (f *faultyStore) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	if err := f.check(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return f.Store.Append(ctx, ev)
}

func (f *faultyStore) OpenSuspension(ctx context.Context, s taskbridge.Suspension, ev taskbridge.TaskEvent) (taskbridge.Suspension, taskbridge.TaskEvent, error) {
	if err := f.check(); err != nil {
		return taskbridge.Suspension{}, taskbridge.TaskEvent{}, err
	}
	return f.Store.OpenSuspension(ctx, s, ev)
}

func (f *faultyStore) CloseSuspension(ctx context.Context, taskID, suspendID string, status taskbridge.SuspensionStatus, now time.Time) (taskbridge.Suspension, bool, error) {
	if err := f.check(); err != nil {
		return taskbridge.Suspension{}, false, err
	}
	return f.Store.CloseSuspension(ctx, taskID, suspendID, status, now)
}

// node is one process of a cluster.
type node struct {
	name  string
	store *faultyStore
	r     *runner.Runner
	svc   *taskbridge.Service
}

type cluster struct {
	t     *testing.T
	mem   *memstore.Store
	nodes map[string]*node
}

// newCluster starts one node per name; handlers(name) gives the handlers
// of the node, and tune, if not nil, adjusts each node's runner config.
func newCluster(t *testing.T, handlers func(node string) map[string]runner.HandlerFunc, tune func(*runner.Config), names ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, mem: memstore.New(memstore.Config{}), nodes: map[string]*node{}}
	for _, name := range names {
		fs := &faultyStore{Store: c.mem}
		cfg := runner.Config{
			Handlers:   handlers(name),
			Logger:     quietLogger(),
			Leases:     fs,
			Replica:    name,
			LeaseTTL:   testTTL,
			RerunTypes: []string{"rerun"},
		}
		if tune != nil {
			tune(&cfg)
		}
		r, err := runner.New(cfg)
		require.NoError(t, err)
		svc, err := taskbridge.New(taskbridge.Config{Store: fs, Executor: r, Logger: quietLogger()})
		require.NoError(t, err)
		c.nodes[name] = &node{name: name, store: fs, r: r, svc: svc}
	}
	return c
}

// close stops every node (cancelling what still runs) and the store.
func (c *cluster) close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, n := range c.nodes {
		_ = n.r.Shutdown(ctx)
		require.NoError(c.t, n.svc.Shutdown(context.Background()))
	}
	require.NoError(c.t, c.mem.Close())
}

func (c *cluster) create(name, taskType string) string {
	c.t.Helper()
	resp, err := c.nodes[name].svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{
		ClientRequestID: fmt.Sprintf("req-%d", taskSeq.Add(1)), TaskType: taskType,
	})
	require.NoError(c.t, err)
	return resp.TaskID
}

func (c *cluster) events(taskID string) []taskbridge.TaskEvent {
	c.t.Helper()
	evs, err := c.mem.Read(context.Background(), taskID, 0, 1000)
	require.NoError(c.t, err)
	return evs
}

func (c *cluster) takeOver(name string) int {
	c.t.Helper()
	n := c.nodes[name]
	taken, err := n.r.TakeOver(context.Background(), n.store, n.svc.Emitter)
	require.NoError(c.t, err)
	return taken
}

// expired returns the expired leases at the bubble's now.
func (c *cluster) expired() []taskbridge.Lease {
	c.t.Helper()
	ls, err := c.mem.ExpiredLeases(context.Background(), time.Now(), 100)
	require.NoError(c.t, err)
	return ls
}

// requireOneTerminal requires exactly one terminal event, the last one, and
// at most one TASK_STARTED, and returns the terminal event.
func requireOneTerminal(t *testing.T, evs []taskbridge.TaskEvent) taskbridge.TaskEvent {
	t.Helper()
	terminals, starts := 0, 0
	for _, ev := range evs {
		if ev.Terminal() {
			terminals++
		}
		if ev.Type == taskbridge.EventTaskStarted {
			starts++
		}
	}
	require.Equal(t, 1, terminals, "terminal events in %v", typesOf(evs))
	require.LessOrEqual(t, starts, 1, "TASK_STARTED events in %v", typesOf(evs))
	require.True(t, evs[len(evs)-1].Terminal())
	return evs[len(evs)-1]
}

// probe is a handler that records where and when it ran and waits until
// released or cancelled.
type probe struct {
	mu      sync.Mutex
	runs    []probeRun
	release chan struct{}
}

type probeRun struct {
	node        string
	start, stop time.Time
	cause       error // context.Cause when it was cancelled
}

func newProbe() *probe { return &probe{release: make(chan struct{})} }

func (p *probe) handler(node string) runner.HandlerFunc {
	return func(ctx context.Context, _ *taskbridge.Task, e taskbridge.Emitter) (any, error) {
		run := probeRun{node: node, start: time.Now()}
		defer func() {
			run.stop = time.Now()
			p.mu.Lock()
			p.runs = append(p.runs, run)
			p.mu.Unlock()
		}()
		if _, err := e.EmitOnce(ctx, "halfway", taskbridge.ProgressPayload{Progress: 50}); err != nil {
			return nil, err
		}
		select {
		case <-p.release:
			return map[string]string{"node": node}, nil
		case <-ctx.Done():
			run.cause = context.Cause(ctx)
			return nil, ctx.Err()
		}
	}
}

func (p *probe) finished() []probeRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]probeRun(nil), p.runs...)
}
