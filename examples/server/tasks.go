package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/runner"
)

// The demo task types. Other tools depend on these names and on the events
// documented in the package comment: keep them as they are.
const (
	taskGreet    = "greet"
	taskApproval = "approval"
	taskFail     = "fail"
	taskStream   = "stream"
)

// Demo codes and texts.
const (
	codeDemoFailure     = "DEMO_FAILURE"
	reasonApproval      = "approval_required"
	actionApprove       = "approve"
	actionReject        = "reject"
	approvalQuestion    = "Do you approve this request?"
	demoFailureMessage  = "The fail task always fails (demo)"
	maxNameLen          = 200
	maxDelayMs          = 60_000  // one wait: stepDelayMs, intervalMs, delayMs
	maxSteps            = 100     // greet steps
	maxCount            = 1000    // stream messages
	maxRunMs            = 600_000 // every demo task ends within 10 minutes
	maxTTLMs            = maxRunMs
	defaultGreetName    = "World"
	defaultGreetSteps   = 3
	defaultStepDelayMs  = 500
	defaultApprovalTTL  = 60_000
	defaultStreamCount  = 10
	defaultStreamPeriod = 0
)

type greetInput struct {
	Name      string
	Steps     int
	StepDelay time.Duration
}

type approvalInput struct {
	TTL time.Duration
}

type failInput struct {
	Delay time.Duration
}

type streamInput struct {
	Count    int
	Interval time.Duration
}

// inputFields reads the members of a task's input object, collecting every
// problem in verr under "input.<member>". Absent and null members take their
// defaults; unknown members are ignored.
type inputFields struct {
	members map[string]json.RawMessage
	verr    *taskbridge.ValidationError
}

func newInputFields(raw json.RawMessage, verr *taskbridge.ValidationError) inputFields {
	f := inputFields{members: map[string]json.RawMessage{}, verr: verr}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return f
	}
	if err := json.Unmarshal(raw, &f.members); err != nil {
		verr.Add("input", "must be a JSON object")
	}
	return f
}

func (f inputFields) get(name string) (json.RawMessage, bool) {
	raw, ok := f.members[name]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil, false
	}
	return raw, true
}

// int reads an integer member within lo..hi.
func (f inputFields) int(name string, def, lo, hi int) int {
	raw, ok := f.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		f.verr.Add("input."+name, "must be an integer between %d and %d", lo, hi)
		return def
	}
	if n < int64(lo) || n > int64(hi) {
		f.verr.Add("input."+name, "must be between %d and %d", lo, hi)
		return def
	}
	return int(n)
}

// millis reads a duration in milliseconds within lo..hi.
func (f inputFields) millis(name string, def, lo, hi int) time.Duration {
	return time.Duration(f.int(name, def, lo, hi)) * time.Millisecond
}

// runTime checks that n waits of d (the member named field) take at most
// maxRunMs, so that one task cannot hold the runner for hours.
func (f inputFields) runTime(field, countField string, n int, d time.Duration) {
	if time.Duration(n)*d > maxRunMs*time.Millisecond {
		f.verr.Add("input."+field, "%s * %s must be at most %d (10 minutes)", countField, field, maxRunMs)
	}
}

// string reads a non-empty string member of at most maxLen bytes.
func (f inputFields) string(name, def string, maxLen int) string {
	raw, ok := f.get(name)
	if !ok {
		return def
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		f.verr.Add("input."+name, "must be a string")
		return def
	}
	if s == "" || len(s) > maxLen {
		f.verr.Add("input."+name, "must be 1 to %d bytes long", maxLen)
		return def
	}
	return s
}

func parseGreet(raw json.RawMessage) (greetInput, error) {
	var verr taskbridge.ValidationError
	f := newInputFields(raw, &verr)
	in := greetInput{
		Name:      f.string("name", defaultGreetName, maxNameLen),
		Steps:     f.int("steps", defaultGreetSteps, 0, maxSteps),
		StepDelay: f.millis("stepDelayMs", defaultStepDelayMs, 0, maxDelayMs),
	}
	f.runTime("stepDelayMs", "steps", in.Steps, in.StepDelay)
	return in, verr.Err()
}

func parseApproval(raw json.RawMessage) (approvalInput, error) {
	var verr taskbridge.ValidationError
	f := newInputFields(raw, &verr)
	in := approvalInput{TTL: f.millis("ttlMs", defaultApprovalTTL, 1, maxTTLMs)}
	return in, verr.Err()
}

func parseFail(raw json.RawMessage) (failInput, error) {
	var verr taskbridge.ValidationError
	f := newInputFields(raw, &verr)
	in := failInput{Delay: f.millis("delayMs", 0, 0, maxDelayMs)}
	return in, verr.Err()
}

func parseStream(raw json.RawMessage) (streamInput, error) {
	var verr taskbridge.ValidationError
	f := newInputFields(raw, &verr)
	in := streamInput{
		Count:    f.int("count", defaultStreamCount, 0, maxCount),
		Interval: f.millis("intervalMs", defaultStreamPeriod, 0, maxDelayMs),
	}
	f.runTime("intervalMs", "count", in.Count, in.Interval)
	return in, verr.Err()
}

// validateInput checks a create request's input for its task type; a
// *taskbridge.ValidationError becomes 422. Unknown types are left to the
// runner.
func validateInput(taskType string, input json.RawMessage) error {
	var err error
	switch taskType {
	case taskGreet:
		_, err = parseGreet(input)
	case taskApproval:
		_, err = parseApproval(input)
	case taskFail:
		_, err = parseFail(input)
	case taskStream:
		_, err = parseStream(input)
	}
	return err
}

// handlers returns the demo task handlers.
func handlers() map[string]runner.HandlerFunc {
	return map[string]runner.HandlerFunc{
		taskGreet:    greet,
		taskApproval: approval,
		taskFail:     fail,
		taskStream:   stream,
	}
}

// badInput fails a task whose input slipped past validation (it cannot when
// the task was created through the service).
func badInput(err error) error {
	return &runner.Failure{Code: "INVALID_INPUT", Message: "The task input is invalid", Err: err}
}

func greet(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	in, err := parseGreet(task.Input)
	if err != nil {
		return nil, badInput(err)
	}
	for i := 1; i <= in.Steps; i++ {
		if err := sleep(ctx, in.StepDelay); err != nil {
			return nil, err
		}
		if _, err := e.Emit(ctx, taskbridge.ProgressPayload{
			Progress: 100 * float64(i) / float64(in.Steps),
			Stage:    fmt.Sprintf("step %d of %d", i, in.Steps),
			Message:  fmt.Sprintf("Preparing the greeting (%d/%d)", i, in.Steps),
		}); err != nil {
			return nil, err
		}
	}
	return map[string]string{"greeting": "Hello, " + in.Name + "!"}, nil
}

func approval(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	in, err := parseApproval(task.Input)
	if err != nil {
		return nil, badInput(err)
	}
	// An expired suspension returns runner.ErrSuspensionExpired, which
	// fails the task with SUSPENSION_EXPIRED.
	action, err := runner.Suspend(ctx, e, taskbridge.SuspendOpts{
		Kind:           taskbridge.KindUserActionRequired,
		ReasonCode:     reasonApproval,
		AllowedActions: []string{actionApprove, actionReject},
		SchemaVersion:  1,
		TTL:            in.TTL,
		Interaction:    map[string]any{"question": approvalQuestion},
	})
	if err != nil {
		return nil, err
	}
	return map[string]bool{"approved": action.ActionType == actionApprove}, nil
}

func fail(ctx context.Context, task *taskbridge.Task, _ taskbridge.Emitter) (any, error) {
	in, err := parseFail(task.Input)
	if err != nil {
		return nil, badInput(err)
	}
	if err := sleep(ctx, in.Delay); err != nil {
		return nil, err
	}
	return nil, &runner.Failure{Code: codeDemoFailure, Message: demoFailureMessage, Retryable: false}
}

func stream(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
	in, err := parseStream(task.Input)
	if err != nil {
		return nil, badInput(err)
	}
	for i := 1; i <= in.Count; i++ {
		if err := sleep(ctx, in.Interval); err != nil {
			return nil, err
		}
		if _, err := e.Emit(ctx, taskbridge.MessagePayload{
			Message: fmt.Sprintf("message %d of %d", i, in.Count),
			Level:   taskbridge.LevelInfo,
		}); err != nil {
			return nil, err
		}
	}
	return map[string]int{"count": in.Count}, nil
}

// sleep waits d, or until ctx ends. With d <= 0 it only checks ctx, so a
// cancelled task stops between steps even without delays.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
