package taskbridge_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// gateStore wraps a Store so that a test can pause one chosen Read: the
// fan-out's timing bugs are interleavings of a read with appends. (The
// engine's own reproductions live in internal/fanout; this one is about
// PollEvents.)
type gateStore struct {
	taskbridge.Store

	mu   sync.Mutex
	gate *readGate
}

var _ taskbridge.Store = (*gateStore)(nil)

// readGate pauses the next Read of a context without a reader name (the
// fan-out's topic reads) after a cursor. reached is closed when the read
// stops at the gate; it goes on once release is closed.
type readGate struct {
	after   int64
	reached chan struct{}
	release chan struct{}
}

func (s *gateStore) pauseTopicRead(after int64) *readGate {
	g := &readGate{after: after, reached: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	return g
}

func (s *gateStore) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	s.mu.Lock()
	g := s.gate
	if g != nil && ctx.Value(readerKey{}) == nil && after == g.after {
		s.gate = nil
	} else {
		g = nil
	}
	s.mu.Unlock()
	if g != nil {
		close(g.reached)
		<-g.release
	}
	return s.Store.Read(ctx, taskID, after, limit)
}

// readerKey names the reads of a test's own calls, in their context.
type readerKey struct{}

// A long poll that times out reads the store once more before answering
// empty: the topic it waited on may be late (a slow or failing read), but
// the store is the truth. (It used to answer from the topic alone.)
func TestLongPollRechecksStore(t *testing.T) {
	t.Parallel()
	ctx := context.WithValue(context.Background(), readerKey{}, "poll")
	e := setup(t)
	id := e.started(t, alice, "c")
	gs := &gateStore{Store: e.store}
	e.svc = mustService(t, e, func(c *taskbridge.Config) { c.Store = gs })
	// A subscriber on the task makes the poll the topic's second member,
	// so the topic's fetcher reads for it (a lone member reads itself).
	sub, err := hooks.Subscribe(ctx, e.svc, alice, id, "1", fanout.SubscribeOpts{})
	require.NoError(t, err)
	defer sub.Close()
	frames, err := sub.Next(ctx, nil) // joins the topic
	require.NoError(t, err)
	require.Empty(t, frames)
	g := gs.pauseTopicRead(1) // the topic's first read
	done := make(chan taskbridge.PollResponse, 1)
	go func() {
		resp, err := e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-g.reached
	e.emit(t, id, taskbridge.MessagePayload{Message: "2"})
	resp := <-done
	close(g.release)
	require.Len(t, resp.Events, 1)
	require.Equal(t, "2", resp.Events[0].EventID)
}

// flakyStore fails the reads of a test's own calls (those whose context
// names a reader) whose ordinal is in fail, counting from 1.
type flakyStore struct {
	taskbridge.Store

	mu    sync.Mutex
	reads int
	fail  map[int]bool
}

func (s *flakyStore) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	if ctx.Value(readerKey{}) != nil {
		s.mu.Lock()
		s.reads++
		fail := s.fail[s.reads]
		s.mu.Unlock()
		if fail {
			return nil, errors.New("store briefly unavailable")
		}
	}
	return s.Store.Read(ctx, taskID, after, limit)
}

func (s *flakyStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// A long poll rides out a read that fails while it waits: the wait reads
// again after a backoff and answers with the event once the store is back.
func TestLongPollRidesOutReadFailure(t *testing.T) {
	t.Parallel()
	ctx := context.WithValue(context.Background(), readerKey{}, "poll")
	e := setup(t)
	id := e.started(t, alice, "c")
	// Read 1 is the poll's first (empty); reads 2 and 3, made while it
	// waits, fail.
	fs := &flakyStore{Store: e.store, fail: map[int]bool{2: true, 3: true}}
	e.svc = mustService(t, e, func(c *taskbridge.Config) { c.Store = fs })
	done := make(chan error, 1)
	var resp taskbridge.PollResponse
	go func() {
		var err error
		resp, err = e.svc.PollEvents(ctx, alice, id, taskbridge.PollRequest{AfterEventID: "1", WaitTimeout: time.Minute})
		done <- err
	}()
	require.Eventually(t, func() bool { return fs.count() >= 4 }, 10*time.Second, time.Millisecond,
		"the wait reads again after each failure")
	e.emit(t, id, taskbridge.MessagePayload{Message: "2"})
	require.NoError(t, <-done)
	require.Len(t, resp.Events, 1)
	require.Equal(t, "2", resp.Events[0].EventID)
}
