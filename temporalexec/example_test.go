package temporalexec_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

// nopExecutor stands for the Executor of the API process: here the
// example starts the workflow itself, in the SDK's test environment.
type nopExecutor struct{}

func (nopExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (nopExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// A workflow function registered with Register reports progress with Emit;
// the adapter adds TASK_STARTED and the terminal event. The SDK's test
// environment stands in for a worker here; with a real worker, pass the
// worker.Worker to Register and let an Executor start the workflows.
func Example() {
	resize := func(ctx workflow.Context, task *taskbridge.Task) (any, error) {
		var in struct {
			Width int `json:"width"`
		}
		if err := json.Unmarshal(task.Input, &in); err != nil || in.Width <= 0 {
			return nil, temporalexec.NewFailure("BAD_INPUT", "width must be a positive number", false)
		}
		for _, stage := range []string{"decoding", "resizing"} {
			if _, err := temporalexec.Emit(ctx, taskbridge.ProgressPayload{Progress: 50, Stage: stage}); err != nil {
				return nil, err
			}
		}
		return map[string]int{"width": in.Width}, nil
	}

	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	store := memstore.New(memstore.Config{})
	defer store.Close()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: nopExecutor{}, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer svc.Shutdown(ctx)

	for i, input := range []string{`{"width":640}`, `{"width":0}`} {
		var suite testsuite.WorkflowTestSuite
		suite.SetLogger(sdklog.NewStructuredLogger(quiet))
		env := suite.NewTestWorkflowEnvironment()
		if err := temporalexec.Register(env, temporalexec.WorkerConfig{
			EmitterFunc: svc.Emitter,
			Tasks:       store,
			Workflows:   map[string]temporalexec.WorkflowFunc{"resize": resize},
		}); err != nil {
			panic(err)
		}
		created, err := svc.CreateTask(ctx, taskbridge.AuthContext{Subject: "alice"}, taskbridge.CreateTaskRequest{
			ClientRequestID: fmt.Sprint("req-", i), TaskType: "resize", Input: json.RawMessage(input),
		})
		if err != nil {
			panic(err)
		}
		task, err := store.GetTask(ctx, created.TaskID)
		if err != nil {
			panic(err)
		}
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "taskbridge-" + task.ID})
		env.ExecuteWorkflow("resize", temporalexec.WorkflowInput{Task: task})

		evs, err := store.Read(ctx, task.ID, 0, 100)
		if err != nil {
			panic(err)
		}
		for _, ev := range evs {
			fmt.Println(ev.EventID, ev.Type, string(ev.Payload))
		}
	}
	// Output:
	// 1 TASK_STARTED {"message":"Task started"}
	// 2 TASK_PROGRESS {"progress":50,"stage":"decoding"}
	// 3 TASK_PROGRESS {"progress":50,"stage":"resizing"}
	// 4 TASK_COMPLETED {"result":{"width":640}}
	// 1 TASK_STARTED {"message":"Task started"}
	// 2 TASK_FAILED {"code":"BAD_INPUT","message":"width must be a positive number","retryable":false}
}
