package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// Harness connects a store implementation to [Run].
type Harness struct {
	// New returns a new, empty store. It is called once per subtest and
	// is required. It registers whatever cleanup the store needs (Close, a
	// dropped schema) with t.Cleanup.
	New func(t *testing.T) taskbridge.Store

	// Trim simulates retention: it removes from the log of taskID all
	// events but the newest keepLast (keepLast >= 1), leaving the task's
	// LastSeq as it is, and fails t if it cannot. Optional: when nil, the
	// subtests of expired cursors are skipped.
	Trim func(t *testing.T, s taskbridge.Store, taskID string, keepLast int)

	// Serial runs the subtests one at a time instead of in parallel, for
	// stores whose instances share state (for example one database that
	// New empties).
	Serial bool

	// Replica returns a second handle on the same backend as s, as
	// another process would open it (its own connections and notification
	// connection), and registers its cleanup with t.Cleanup. Stores shared
	// by several processes set it; the multi-replica section runs only
	// then, and such a store must implement [taskbridge.ControlFeed] and
	// [taskbridge.LeaseStore]. A single-process store may return s itself
	// to check the section in one process. It may be called more than
	// once for one s (a restart opens the store again).
	Replica func(t *testing.T, s taskbridge.Store) taskbridge.Store
}

// Run runs the conformance suite against the stores h.New returns. Each
// subtest gets a fresh store.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("storetest: Harness.New is required")
	}
	groups := []struct {
		name string
		run  func(*testing.T, Harness)
	}{
		{"Registry", testRegistry},
		{"Append", testAppend},
		{"Read", testRead},
		{"Watch", testWatch},
		{"Poll", testPoll},
		{"Suspensions", testSuspensions},
		{"AcceptAction", testAcceptAction},
		{"Maintenance", testMaintenance},
		{"Isolation", testIsolation},
		{"IdempotentAppend", testIdempotentAppend},
		{"Leases", testLeases},
		{"ControlFeed", testControlFeed},
		{"MultiReplica", testMultiReplica},
		{"Extensions", testExtensions},
		{"Stress", testStress},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			h.parallel(t)
			g.run(t, h)
		})
	}
}

func (h Harness) parallel(t *testing.T) {
	if !h.Serial {
		t.Parallel()
	}
}

// BaseTime is the instant the suite's timestamps start from. It is fixed
// (not time.Now), so orderings are deterministic.
var BaseTime = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// NewTask returns a valid new task record as the service would create it:
// status ACCEPTED, LastSeq 0, UpdatedAt = CreatedAt, JSON-object Input and
// Metadata, a task type and a fingerprint.
func NewTask(id, ownerID, clientRequestID string, createdAt time.Time) taskbridge.Task {
	return taskbridge.Task{
		ID:              id,
		OwnerID:         ownerID,
		ClientRequestID: clientRequestID,
		TaskType:        "report",
		Input:           json.RawMessage(`{"pages":3,"title":"` + id + `"}`),
		Metadata:        json.RawMessage(`{"source":"storetest"}`),
		Fingerprint:     "fp-" + ownerID + "-" + clientRequestID,
		Status:          taskbridge.StatusAccepted,
		CreatedAt:       createdAt,
		UpdatedAt:       createdAt,
	}
}

// NewEvent returns an event of p's type for taskID, created at createdAt,
// with p encoded as its payload and no EventID or Seq (the store assigns
// them). It panics if p is invalid.
func NewEvent(taskID string, p taskbridge.Payload, createdAt time.Time) taskbridge.TaskEvent {
	raw, err := taskbridge.EncodePayload(p)
	if err != nil {
		panic(fmt.Sprintf("storetest: NewEvent: %v", err))
	}
	return taskbridge.TaskEvent{Type: p.EventType(), TaskID: taskID, CreatedAt: createdAt, Payload: raw}
}

// NewSuspension returns a suspension of taskID (OPEN, ResumeStatus NONE,
// CreatedAt at) with allowed actions "approve" and "reject", UI hints and
// an interaction, and the TASK_SUSPENDED event that opens it. expiresAt
// may be nil.
func NewSuspension(taskID, suspendID string, expiresAt *time.Time, at time.Time) (taskbridge.Suspension, taskbridge.TaskEvent) {
	p := taskbridge.SuspendedPayload{
		SuspendID:      suspendID,
		Kind:           taskbridge.KindUserActionRequired,
		ReasonCode:     "APPROVAL_REQUIRED",
		AllowedActions: []string{"approve", "reject"},
		SchemaVersion:  1,
		ExpiresAt:      expiresAt,
		UIHints:        map[string]any{"title": "Approve?", "buttons": []any{"yes", "no"}},
		Interaction:    map[string]any{"form": map[string]any{"amount": 12.5, "required": true}},
	}
	s := taskbridge.Suspension{
		TaskID:           taskID,
		SuspendedPayload: p,
		Status:           taskbridge.SuspensionOpen,
		ResumeStatus:     taskbridge.ResumeNone,
		CreatedAt:        at,
	}
	return s, NewEvent(taskID, p, at)
}

// NewAttempt returns the attempt of action clientActionID ("approve")
// answering suspension suspendID of taskID at now: a receipt with the given
// fingerprint created at now, and its TASK_ACTION_ACCEPTED event.
func NewAttempt(taskID, suspendID, clientActionID, fingerprint string, now time.Time) taskbridge.ActionAttempt {
	return taskbridge.ActionAttempt{
		Receipt: taskbridge.ActionReceipt{
			TaskID:         taskID,
			SuspendID:      suspendID,
			ClientActionID: clientActionID,
			ActionType:     "approve",
			Payload:        json.RawMessage(`{"comment":"ok","amount":12.5}`),
			Metadata:       json.RawMessage(`{"device":"storetest"}`),
			ActorID:        "alice",
			Fingerprint:    fingerprint,
			CreatedAt:      now,
		},
		Event: NewEvent(taskID, taskbridge.ActionAcceptedPayload{
			SuspendID: suspendID, ClientActionID: clientActionID, ActionType: "approve", AcceptedAt: now,
		}, now),
		Now: now,
	}
}
