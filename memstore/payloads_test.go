package memstore_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// TestPayloadBuffers appends payloads of random sizes (some larger than a
// payload block, some keyed) and checks that every event keeps its own
// bytes: the caller overwriting its slice after Append, or a reader
// appending to a lent payload, changes no stored payload.
func TestPayloadBuffers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{})
	rng := rand.New(rand.NewPCG(14, 5))
	want := []string{string(storetest.NewEvent("task-1", taskbridge.StartedPayload{}, storetest.BaseTime).Payload)}
	for i := range 500 {
		size := rng.IntN(200)
		if i%50 == 7 {
			size = 2500 + rng.IntN(3000) // more than half a block
		}
		ev := storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: strings.Repeat(string(rune('a'+i%26)), size)}, storetest.BaseTime)
		if i%9 == 4 {
			ev.IdempotencyKey = fmt.Sprint("key-", i)
		}
		want = append(want, string(ev.Payload))
		_, err := s.Append(ctx, ev)
		require.NoError(t, err)
		for j := range ev.Payload {
			ev.Payload[j] = 'X' // the caller's bytes stay the caller's
		}
	}
	require.NoError(t, s.LendEvents(ctx, "task-1", 0, 1000, func(evs []taskbridge.TaskEvent) {
		require.Len(t, evs, len(want))
		for i := range evs {
			_ = append(evs[i].Payload, `"trailing"`...) // must not reach the next payload
		}
	}))
	got, err := s.Read(ctx, "task-1", 0, 1000)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i, ev := range got {
		require.Equal(t, want[i], string(ev.Payload), "event %d", ev.Seq)
		require.True(t, json.Valid(ev.Payload))
	}
}

// TestAppendAllocations checks that an append to a task allocates, in the
// long run, only for its payload blocks (a block of 4 KiB holds about 40
// of these payloads) and its id blocks (64 ids each).
func TestAppendAllocations(t *testing.T) {
	ctx := t.Context()
	s := setup(t, memstore.Config{MaxEventsPerTask: 20})
	ev := storetest.NewEvent("task-1", taskbridge.ProgressPayload{Progress: 42, Stage: "render", Message: "rendering page 3 of 7"}, storetest.BaseTime)
	appendN(t, s, "task-1", taskbridge.MessagePayload{Message: "warm-up"}, 150)
	allocs := testing.AllocsPerRun(400, func() {
		if _, err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, allocs, 0.1, "allocations per append")
}

// TestEventIDs checks the ids of a long log, formatted in blocks, against
// FormatEventID, across digit-length changes, and that an id handed out
// keeps its value after later blocks.
func TestEventIDs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, memstore.Config{MaxEventsPerTask: 50})
	var kept []taskbridge.TaskEvent
	for range 10_100 {
		ev, err := s.Append(ctx, storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "m"}, storetest.BaseTime))
		require.NoError(t, err)
		require.Equal(t, taskbridge.FormatEventID(ev.Seq), ev.EventID)
		if ev.Seq%997 == 0 {
			kept = append(kept, ev)
		}
	}
	for _, ev := range kept {
		require.Equal(t, taskbridge.FormatEventID(ev.Seq), ev.EventID)
	}
	evs, err := s.Read(ctx, "task-1", 0, 100)
	require.NoError(t, err)
	for _, ev := range evs {
		require.Equal(t, taskbridge.FormatEventID(ev.Seq), ev.EventID)
	}
}
