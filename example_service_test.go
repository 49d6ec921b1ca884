package taskbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// greeter is a toy executor: it completes each task while submitting it.
// Real executors (see the runner package) enqueue and work elsewhere.
type greeter struct{}

func (greeter) Submit(ctx context.Context, task taskbridge.Task, e taskbridge.Emitter) error {
	var in struct{ Name string }
	_ = json.Unmarshal(task.Input, &in)
	if _, err := e.Emit(ctx, taskbridge.StartedPayload{Message: "started"}); err != nil {
		return err
	}
	if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: 50, Stage: "thinking"}); err != nil {
		return err
	}
	_, err := e.Emit(ctx, taskbridge.CompletedPayload{Result: map[string]string{"greeting": "Hello, " + in.Name + "!"}})
	return err
}

func (greeter) Cancel(context.Context, taskbridge.Task) error { return nil }

func newExampleService() (*taskbridge.Service, func()) {
	store := memstore.New(memstore.Config{})
	svc, err := taskbridge.New(taskbridge.Config{
		Store:    store,
		Executor: greeter{},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	return svc, func() {
		_ = svc.Shutdown(context.Background())
		_ = store.Close()
	}
}

// The basic flow: create a task idempotently, then poll its events from the
// start and resume from a cursor.
func Example() {
	svc, done := newExampleService()
	defer done()
	ctx := context.Background()
	caller := taskbridge.AuthContext{Subject: "alice"}

	req := taskbridge.CreateTaskRequest{ClientRequestID: "req-1", TaskType: "greet", Input: json.RawMessage(`{"name":"Ada"}`)}
	created, _ := svc.CreateTask(ctx, caller, req)
	again, _ := svc.CreateTask(ctx, caller, req) // a retry of the same request
	fmt.Println("deduplicated retry:", again.Deduplicated, again.TaskID == created.TaskID)

	page, _ := svc.PollEvents(ctx, caller, created.TaskID, taskbridge.PollRequest{MaxEvents: 2})
	for _, ev := range page.Events {
		fmt.Println(ev.EventID, ev.Type)
	}
	fmt.Println("hasMore:", page.HasMore)

	rest, _ := svc.PollEvents(ctx, caller, created.TaskID, taskbridge.PollRequest{AfterEventID: *page.NextAfterEventID})
	for _, ev := range rest.Events {
		fmt.Println(ev.EventID, ev.Type, string(ev.Payload))
	}

	_, err := svc.PollEvents(ctx, taskbridge.AuthContext{Subject: "mallory"}, created.TaskID, taskbridge.PollRequest{})
	status, code, _ := taskbridge.HTTPError(err)
	fmt.Println("another user:", status, code)
	// Output:
	// deduplicated retry: true true
	// 1 TASK_STARTED
	// 2 TASK_PROGRESS
	// hasMore: true
	// 3 TASK_COMPLETED {"result":{"greeting":"Hello, Ada!"}}
	// another user: 404 TASK_NOT_FOUND
}

// Subscribe follows a task from a Go program: Next replays the events
// after the cursor, then waits for live ones, and returns io.EOF after the
// terminal event. SSE and WebSocket streams come from the same fan-out.
func ExampleService_Subscribe() {
	svc, done := newExampleService()
	defer done()
	ctx := context.Background()
	caller := taskbridge.AuthContext{Subject: "alice"}
	created, _ := svc.CreateTask(ctx, caller, taskbridge.CreateTaskRequest{ClientRequestID: "req-1", TaskType: "greet"})

	// Resume after event 1, as a reconnecting client would.
	sub, err := svc.Subscribe(ctx, caller, created.TaskID, "1")
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err) // io.EOF: the task has ended
			return
		}
		fmt.Println(ev.EventID, ev.Type, string(ev.Payload))
	}
	// Output:
	// 2 TASK_PROGRESS {"progress":50,"stage":"thinking"}
	// 3 TASK_COMPLETED {"result":{"greeting":"Hello, !"}}
	// EOF
}

// approver is an executor whose tasks wait for a client's decision.
type approver struct{ greeter }

func (approver) Submit(ctx context.Context, task taskbridge.Task, e taskbridge.Emitter) error {
	if _, err := e.Emit(ctx, taskbridge.StartedPayload{}); err != nil {
		return err
	}
	_, err := e.Suspend(ctx, taskbridge.SuspendOpts{
		SuspendID:      "approval-1",
		ReasonCode:     "approval_required",
		AllowedActions: []string{"approve", "reject"},
		Interaction:    map[string]any{"question": "Ship it?"},
	})
	return err
}

// Resume is called once the service has accepted an action.
func (approver) Resume(ctx context.Context, task taskbridge.Task, s taskbridge.Suspension, r taskbridge.ActionReceipt) error {
	fmt.Println("resumed with", r.ActionType)
	return nil
}

// Actions answer suspensions, idempotently by clientActionId.
func ExampleService_SubmitAction() {
	store := memstore.New(memstore.Config{})
	defer store.Close()
	svc, _ := taskbridge.New(taskbridge.Config{Store: store, Executor: approver{}, Logger: slog.New(slog.DiscardHandler)})
	defer svc.Shutdown(context.Background())
	ctx := context.Background()
	caller := taskbridge.AuthContext{Subject: "alice"}
	created, _ := svc.CreateTask(ctx, caller, taskbridge.CreateTaskRequest{ClientRequestID: "req-1", TaskType: "deploy"})

	snap, _ := svc.GetTask(ctx, caller, created.TaskID)
	fmt.Println("waiting on:", snap.Suspension.SuspendID, snap.Suspension.AllowedActions)

	action := taskbridge.ActionRequest{ClientActionID: "tap-1", SuspendID: "approval-1", ActionType: "approve"}
	for range 2 { // the second submission is a network retry
		resp, _ := svc.SubmitAction(ctx, caller, created.TaskID, action)
		fmt.Println(resp.Status)
	}
	late, _ := svc.SubmitAction(ctx, caller, created.TaskID,
		taskbridge.ActionRequest{ClientActionID: "tap-2", SuspendID: "approval-1", ActionType: "reject"})
	fmt.Println(late.Status)
	// Output:
	// waiting on: approval-1 [approve reject]
	// resumed with approve
	// ACCEPTED
	// DEDUPLICATED
	// REJECTED_ALREADY_RESOLVED
}
