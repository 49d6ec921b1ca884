package main

import (
	"encoding/json"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

// The example's task types; each runs as the workflow of the same name.
const (
	taskGreet    = "greet"
	taskApproval = "approval"
)

// Input limits and defaults.
const (
	maxSteps           = 100
	maxStepDelayMs     = 60_000
	defaultSteps       = 3
	defaultStepDelayMs = 1000
	defaultApprovalTTL = 10 * time.Minute
)

// workflows are the task workflows the worker registers.
var workflows = map[string]temporalexec.WorkflowFunc{
	taskGreet:    greet,
	taskApproval: approval,
}

// taskTypes maps the task types to their workflows, for the Executor.
var taskTypes = map[string]string{taskGreet: "", taskApproval: ""}

// greetInput is the input of a greet task.
type greetInput struct {
	Name        string `json:"name"`
	Steps       int    `json:"steps"`
	StepDelayMs int    `json:"stepDelayMs"`
}

// greet reports steps progress events, stepDelayMs apart (durable workflow
// timers), and completes with {greeting}.
func greet(ctx workflow.Context, task *taskbridge.Task) (any, error) {
	in := greetInput{Name: "World", Steps: defaultSteps, StepDelayMs: defaultStepDelayMs}
	if err := json.Unmarshal(task.Input, &in); err != nil || in.Steps < 1 || in.Steps > maxSteps ||
		in.StepDelayMs < 0 || in.StepDelayMs > maxStepDelayMs {
		return nil, temporalexec.NewFailure("BAD_INPUT",
			"greet takes {name, steps (1..100), stepDelayMs (0..60000)}", false)
	}
	for i := 1; i <= in.Steps; i++ {
		if err := workflow.Sleep(ctx, time.Duration(in.StepDelayMs)*time.Millisecond); err != nil {
			return nil, err
		}
		p := taskbridge.ProgressPayload{Progress: float64(100 * i / in.Steps), Stage: "greeting"}
		if _, err := temporalexec.Emit(ctx, p); err != nil {
			return nil, err
		}
	}
	return map[string]string{"greeting": "Hello, " + in.Name + "!"}, nil
}

// approval waits for approve or reject (10 minutes by default, ttlMs to
// change it) and completes with {approved}; nobody answering fails it with
// SUSPENSION_EXPIRED.
func approval(ctx workflow.Context, task *taskbridge.Task) (any, error) {
	var in struct {
		TTLMs int64 `json:"ttlMs"`
	}
	if err := json.Unmarshal(task.Input, &in); err != nil || in.TTLMs < 0 {
		return nil, temporalexec.NewFailure("BAD_INPUT", "approval takes {ttlMs (>= 0)}", false)
	}
	ttl := defaultApprovalTTL
	if in.TTLMs > 0 {
		ttl = time.Duration(in.TTLMs) * time.Millisecond
	}
	a, err := temporalexec.Suspend(ctx, taskbridge.SuspendOpts{
		ReasonCode:     "approval_required",
		AllowedActions: []string{"approve", "reject"},
		TTL:            ttl,
		Interaction:    map[string]any{"question": "Do you approve this request?"},
	})
	if err != nil {
		return nil, err
	}
	return map[string]bool{"approved": a.ActionType == "approve"}, nil
}
