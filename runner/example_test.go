package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/runner"
)

// follow long-polls a task's events after cursor after until one satisfies
// until (or is terminal) and returns them.
func follow(svc *taskbridge.Service, auth taskbridge.AuthContext, taskID, after string, until func(taskbridge.TaskEvent) bool) []taskbridge.TaskEvent {
	var evs []taskbridge.TaskEvent
	for {
		resp, err := svc.PollEvents(context.Background(), auth, taskID,
			taskbridge.PollRequest{AfterEventID: after, WaitTimeout: 5 * time.Second})
		if err != nil {
			panic(err)
		}
		for _, ev := range resp.Events {
			evs = append(evs, ev)
			after = ev.EventID
			if ev.Terminal() || until(ev) {
				return evs
			}
		}
	}
}

func terminal(ev taskbridge.TaskEvent) bool { return ev.Terminal() }

// A runner with one task type, behind a Service over the in-memory store.
func Example() {
	logger := slog.New(slog.DiscardHandler)
	r, err := runner.New(runner.Config{
		Logger: logger,
		Handlers: map[string]runner.HandlerFunc{
			"greet": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
				var in struct {
					Name string `json:"name"`
				}
				if err := json.Unmarshal(task.Input, &in); err != nil || in.Name == "" {
					return nil, &runner.Failure{Code: "BAD_INPUT", Message: "input needs a name"}
				}
				if _, err := e.Emit(ctx, taskbridge.ProgressPayload{Progress: 50, Stage: "thinking"}); err != nil {
					return nil, err
				}
				return map[string]string{"greeting": "Hello, " + in.Name + "!"}, nil
			},
		},
	})
	if err != nil {
		panic(err)
	}
	store := memstore.New(memstore.Config{})
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: r, Logger: logger})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	defer store.Close()
	defer svc.Shutdown(ctx)
	defer r.Shutdown(ctx) // first: let running handlers finish

	auth := taskbridge.AuthContext{Subject: "alice"}
	for _, input := range []string{`{"name":"Ada"}`, `{}`} {
		created, err := svc.CreateTask(ctx, auth, taskbridge.CreateTaskRequest{
			ClientRequestID: "req-" + input, TaskType: "greet", Input: json.RawMessage(input),
		})
		if err != nil {
			panic(err)
		}
		for _, ev := range follow(svc, auth, created.TaskID, "", terminal) {
			fmt.Println(ev.EventID, ev.Type, string(ev.Payload))
		}
	}

	_, err = svc.CreateTask(ctx, auth, taskbridge.CreateTaskRequest{ClientRequestID: "req-x", TaskType: "resize"})
	status, code, _ := taskbridge.HTTPError(err)
	fmt.Println(status, code)
	// Output:
	// 1 TASK_STARTED {"message":"Task started"}
	// 2 TASK_PROGRESS {"progress":50,"stage":"thinking"}
	// 3 TASK_COMPLETED {"result":{"greeting":"Hello, Ada!"}}
	// 1 TASK_STARTED {"message":"Task started"}
	// 2 TASK_FAILED {"code":"BAD_INPUT","message":"input needs a name","retryable":false}
	// 400 INVALID_REQUEST
}

// A handler that waits for a client's approval.
func ExampleSuspend() {
	logger := slog.New(slog.DiscardHandler)
	r, err := runner.New(runner.Config{
		Logger: logger,
		Handlers: map[string]runner.HandlerFunc{
			"approval": func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
				action, err := runner.Suspend(ctx, e, taskbridge.SuspendOpts{
					SuspendID:      "approve-1",
					ReasonCode:     "approval_required",
					AllowedActions: []string{"approve", "reject"},
					TTL:            time.Minute,
					Interaction:    map[string]any{"question": "Ship it?"},
				})
				if err != nil {
					return nil, err // expiry fails the task with SUSPENSION_EXPIRED
				}
				return map[string]bool{"approved": action.ActionType == "approve"}, nil
			},
		},
	})
	if err != nil {
		panic(err)
	}
	store := memstore.New(memstore.Config{})
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: r, Logger: logger})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	defer store.Close()
	defer svc.Shutdown(ctx)
	defer r.Shutdown(ctx)

	auth := taskbridge.AuthContext{Subject: "alice"}
	created, err := svc.CreateTask(ctx, auth, taskbridge.CreateTaskRequest{ClientRequestID: "req-1", TaskType: "approval"})
	if err != nil {
		panic(err)
	}
	evs := follow(svc, auth, created.TaskID, "", func(ev taskbridge.TaskEvent) bool {
		return ev.Type == taskbridge.EventTaskSuspended
	})
	suspended := evs[len(evs)-1]
	fmt.Println(suspended.Type)
	resp, err := svc.SubmitAction(ctx, auth, created.TaskID, taskbridge.ActionRequest{
		ClientActionID: "click-1", SuspendID: "approve-1", ActionType: "approve",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("action", resp.Status)
	for _, ev := range follow(svc, auth, created.TaskID, suspended.EventID, terminal) {
		if ev.Type == taskbridge.EventTaskActionAccepted {
			fmt.Println(ev.Type) // its payload carries the acceptance time
		} else {
			fmt.Println(ev.Type, string(ev.Payload))
		}
	}
	// Output:
	// TASK_SUSPENDED
	// action ACCEPTED
	// TASK_ACTION_ACCEPTED
	// TASK_COMPLETED {"result":{"approved":true}}
}

// Per-owner limits: once alice has as many tasks running and waiting as the
// runner allows one owner, her next create is refused before the task
// exists (429 TOO_MANY_TASKS), while bob's task still runs.
func Example_ownerLimits() {
	release := make(chan struct{})
	r, err := runner.New(runner.Config{
		Logger:             slog.New(slog.DiscardHandler),
		Concurrency:        4,
		MaxRunningPerOwner: 1, // one of alice's tasks at work at once
		MaxQueuedPerOwner:  1, // and one more waiting for a slot
		Handlers: map[string]runner.HandlerFunc{
			"work": func(ctx context.Context, _ *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
				select {
				case <-release:
					return "done", nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			},
		},
	})
	if err != nil {
		panic(err)
	}
	store := memstore.New(memstore.Config{})
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: r, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	defer store.Close()
	defer svc.Shutdown(ctx)
	defer r.Shutdown(ctx)
	defer close(release)

	create := func(user, crid string) {
		_, err := svc.CreateTask(ctx, taskbridge.AuthContext{Subject: user},
			taskbridge.CreateTaskRequest{ClientRequestID: crid, TaskType: "work"})
		if err != nil {
			status, code, msg := taskbridge.HTTPError(err)
			fmt.Printf("%s %s: %d %s: %s\n", user, crid, status, code, msg)
			return
		}
		fmt.Printf("%s %s: created\n", user, crid)
	}
	create("alice", "a1")
	create("alice", "a2")
	create("alice", "a3")
	create("bob", "b1")
	fmt.Printf("alice %+v\n", r.OwnerStats("alice"))
	// Output:
	// alice a1: created
	// alice a2: created
	// alice a3: 429 TOO_MANY_TASKS: Too many tasks: 2 of your tasks are running or waiting to run (at most 2); retry once one has ended
	// bob b1: created
	// alice {Running:1 Queued:1 Suspended:0}
}
