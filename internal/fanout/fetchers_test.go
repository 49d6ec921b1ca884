package fanout

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/goroutinetest"
)

// fetchLog is a memLog that records the goroutines its topics' reads run
// on, and can hold those reads until released.
type fetchLog struct {
	*memLog
	mu   sync.Mutex
	gids map[uint64]int // reads per goroutine
	hold chan struct{}  // while non-nil, topic reads wait for it to close
}

func (l *fetchLog) Read(ctx context.Context, taskID string, after int64, limit int) ([]*Frame, error) {
	if _, named := ctx.Value(readerKey{}).(string); !named { // a topic's fetch
		l.mu.Lock()
		if l.gids == nil {
			l.gids = map[uint64]int{}
		}
		l.gids[goroutinetest.ID()]++
		hold := l.hold
		l.mu.Unlock()
		if hold != nil {
			<-hold
		}
	}
	return l.memLog.Read(ctx, taskID, after, limit)
}

// fetchGoroutines returns the goroutines the topics' reads ran on.
func (l *fetchLog) fetchGoroutines() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []uint64
	for id := range l.gids {
		ids = append(ids, id)
	}
	return ids
}

func (h *Hub) idleFetchers() int { return h.fetchers.Waiting() }

// A shared topic's fetches, one per append at light load, run on one
// goroutine that waits between them instead of starting a goroutine each;
// once the hub's subscriptions have closed, that goroutine exits.
func TestFetcherWaitsForTheNextFetch(t *testing.T) {
	l := &fetchLog{memLog: newMemLog(0, "a")}
	h := setup(t, l, 16)
	sub, err := h.Subscribe(named("a"), "a", l.start("a", 0), SubscribeOpts{})
	require.NoError(t, err)
	_, err = sub.Next(named("a"), nil) // joins the topic
	require.NoError(t, err)
	other, err := h.Subscribe(named("shared"), "a", l.start("a", 0), SubscribeOpts{})
	require.NoError(t, err)
	_, err = other.Next(named("shared"), nil)
	require.NoError(t, err)
	require.Nil(t, sub.t.solo.Load(), "the topic is served by its fetcher")
	for range 20 {
		require.Eventually(t, func() bool { return h.idleFetchers() == 1 }, 10*time.Second, time.Millisecond,
			"the fetcher of the last append waits for the next")
		l.appendTaken(t, sub, false)
	}
	ids := l.fetchGoroutines()
	require.Len(t, ids, 1, "every fetch ran on the same goroutine")

	sub.Close()
	other.Close()
	require.Eventually(t, func() bool { return goroutinetest.Alive(ids...) == 0 && h.idleFetchers() == 0 }, 10*time.Second, time.Millisecond,
		"the fetcher exits when the hub has no subscriptions")
}

// As many fetchers as there are concurrent fetches run, but when they are
// done at most maxIdleFetchers of them wait; the others exit. At Shutdown
// the waiting ones exit too (TestMain's leak check sees any left).
func TestIdleFetchersAreCapped(t *testing.T) {
	const tasks = maxIdleFetchers + 6
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%d", i)
	}
	l := &fetchLog{memLog: newMemLog(0, ids...)}
	h := setup(t, l, 16)
	subs := make([]*Subscription, tasks)
	for i, id := range ids {
		subs[i] = subscribe(t, h, l.memLog, named("a"), id, 0, SubscribeOpts{})
		_, err := subs[i].Next(named("a"), nil)
		require.NoError(t, err)
		shareTopic(t, h, l.memLog, id, 0)
	}
	hold := make(chan struct{})
	l.mu.Lock()
	l.hold = hold
	l.mu.Unlock()
	for _, id := range ids {
		l.append(id, false)
	}
	require.Eventually(t, func() bool { return goroutinetest.Alive(l.fetchGoroutines()...) == tasks }, 10*time.Second, time.Millisecond,
		"every topic fetches at once, each on a goroutine")
	close(hold)
	for _, sub := range subs {
		frames, err := next(t, sub)
		require.NoError(t, err)
		require.Equal(t, []int64{1}, seqs(frames))
	}
	require.Eventually(t, func() bool {
		return goroutinetest.Alive(l.fetchGoroutines()...) == maxIdleFetchers && h.idleFetchers() == maxIdleFetchers
	}, 10*time.Second, time.Millisecond, "all but maxIdleFetchers exit when done")
}
