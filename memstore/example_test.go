package memstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

func Example() {
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	defer store.Close()

	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	task, created, _ := store.CreateTask(ctx, taskbridge.Task{
		ID: "task-1", OwnerID: "alice", ClientRequestID: "req-1", TaskType: "report",
		Status: taskbridge.StatusAccepted, CreatedAt: now, UpdatedAt: now,
	})
	fmt.Println(task.ID, task.Status, created)

	wake := make(chan struct{}, 1)
	stop := store.Watch("task-1", func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer stop()

	for _, p := range []taskbridge.Payload{
		taskbridge.StartedPayload{},
		taskbridge.ProgressPayload{Progress: 50},
		taskbridge.CompletedPayload{Result: "done"},
	} {
		raw, _ := taskbridge.EncodePayload(p)
		if _, err := store.Append(ctx, taskbridge.TaskEvent{Type: p.EventType(), TaskID: "task-1", CreatedAt: now, Payload: raw}); err != nil {
			fmt.Println(err)
		}
	}
	<-wake

	events, _ := store.Read(ctx, "task-1", 1, 10) // strictly after event "1"
	for _, ev := range events {
		fmt.Println(ev.EventID, ev.Type, string(ev.Payload))
	}
	task, _ = store.GetTask(ctx, "task-1")
	fmt.Println(task.Status, task.LastSeq)
	// Output:
	// task-1 ACCEPTED true
	// 2 TASK_PROGRESS {"progress":50}
	// 3 TASK_COMPLETED {"result":"done"}
	// COMPLETED 3
}

func ExampleConfig_maxEventsPerTask() {
	ctx := context.Background()
	store := memstore.New(memstore.Config{MaxEventsPerTask: 2})
	defer store.Close()

	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	_, _, _ = store.CreateTask(ctx, taskbridge.Task{ID: "task-1", OwnerID: "alice", ClientRequestID: "req-1", CreatedAt: now})
	for _, p := range []taskbridge.Payload{
		taskbridge.StartedPayload{},
		taskbridge.MessagePayload{Message: "one"},
		taskbridge.MessagePayload{Message: "two"},
		taskbridge.MessagePayload{Message: "three"},
	} {
		raw, _ := taskbridge.EncodePayload(p)
		_, _ = store.Append(ctx, taskbridge.TaskEvent{Type: p.EventType(), TaskID: "task-1", CreatedAt: now, Payload: raw})
	}

	// Events 3 and 4 are kept.
	events, _ := store.Read(ctx, "task-1", 0, 10) // from the oldest retained event
	fmt.Println(len(events), events[0].EventID)
	events, _ = store.Read(ctx, "task-1", 2, 10) // nothing lost after event 2
	fmt.Println(len(events), events[0].EventID)
	_, err := store.Read(ctx, "task-1", 1, 10) // event 2 was dropped
	fmt.Println(err)
	// Output:
	// 2 3
	// 2 3
	// taskbridge: events after cursor have expired: task "task-1" keeps events from 3 on
}
