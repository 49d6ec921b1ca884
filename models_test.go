package taskbridge_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

// wireAny decodes JSON into generic values for shape comparisons. Times
// are written as one canonical string, so that the same instant compares
// equal in the fixtures' format ("12:00:10Z") and the library's
// ("12:00:10.000Z").
func wireAny(t *testing.T, b []byte) any {
	t.Helper()
	return canonicalTimes(wireRaw(t, b))
}

// wireRaw decodes JSON into generic values as they are.
func wireRaw(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(b, &v), "%s", b)
	return v
}

func canonicalTimes(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = canonicalTimes(e)
		}
	case []any:
		for i, e := range v {
			v[i] = canonicalTimes(e)
		}
	case string:
		if at, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return "time " + at.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

// requireWireEqual asserts that two JSON documents are equivalent: same
// members with exactly the same names, same values (times as instants).
func requireWireEqual(t *testing.T, want, got []byte) {
	t.Helper()
	require.Equal(t, wireAny(t, want), wireAny(t, got), "want %s\ngot  %s", want, got)
}

// wireStrictDecode decodes into v, rejecting members v does not define.
func wireStrictDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "%s", b)
}

// wirePayloadTypes is the typed payload each event type decodes to.
var wirePayloadTypes = map[taskbridge.EventType]reflect.Type{
	taskbridge.EventTaskStarted:        reflect.TypeFor[taskbridge.StartedPayload](),
	taskbridge.EventTaskProgress:       reflect.TypeFor[taskbridge.ProgressPayload](),
	taskbridge.EventTaskMessage:        reflect.TypeFor[taskbridge.MessagePayload](),
	taskbridge.EventTaskSuspended:      reflect.TypeFor[taskbridge.SuspendedPayload](),
	taskbridge.EventTaskActionAccepted: reflect.TypeFor[taskbridge.ActionAcceptedPayload](),
	taskbridge.EventTaskCompleted:      reflect.TypeFor[taskbridge.CompletedPayload](),
	taskbridge.EventTaskFailed:         reflect.TypeFor[taskbridge.FailedPayload](),
	taskbridge.EventTaskCancelled:      reflect.TypeFor[taskbridge.CancelledPayload](),
}

// wireCheckFixtureEvent checks that ev's payload decodes to the typed payload of
// its type and encodes back to the same JSON.
func wireCheckFixtureEvent(t *testing.T, ev taskbridge.TaskEvent) {
	t.Helper()
	p, err := taskbridge.DecodePayload(ev)
	require.NoError(t, err)
	require.Equal(t, wirePayloadTypes[ev.Type], reflect.TypeOf(p))
	require.Equal(t, ev.Type, p.EventType())
	again, err := taskbridge.EncodePayload(p)
	require.NoError(t, err)
	requireWireEqual(t, ev.Payload, again)
}

func TestFixturesRoundTrip(t *testing.T) {
	t.Parallel()
	fixtures := protocoltest.Fixtures(t)
	seenTypes := map[taskbridge.EventType]bool{}
	for _, name := range wireSortedKeys(fixtures) {
		raw := fixtures[name]
		var (
			v     any
			check func(t *testing.T)
		)
		switch {
		case strings.HasPrefix(name, "task_"):
			var ev taskbridge.TaskEvent
			v = &ev
			check = func(t *testing.T) {
				require.True(t, ev.Type.Valid())
				require.Equal(t, "task_"+strings.ToLower(strings.TrimPrefix(string(ev.Type), "TASK_")), name)
				require.False(t, ev.CreatedAt.IsZero())
				require.Zero(t, ev.Seq)
				wireCheckFixtureEvent(t, ev)
				seenTypes[ev.Type] = true
			}
		case name == "poll_events_response":
			var poll taskbridge.PollResponse
			v = &poll
			check = func(t *testing.T) {
				require.Len(t, poll.Events, 2)
				require.NotNil(t, poll.NextAfterEventID)
				require.Equal(t, "4", *poll.NextAfterEventID)
				for _, ev := range poll.Events {
					wireCheckFixtureEvent(t, ev)
				}
			}
		case name == "websocket_subscribe_request":
			var f taskbridge.SubscribeFrame
			v = &f
			check = func(t *testing.T) {
				require.Equal(t, taskbridge.FrameSubscribe, f.Action)
				require.NotNil(t, f.LastEventID)
			}
		case name == "websocket_subscribe_ack":
			var f taskbridge.SubscriptionConfirmedFrame
			v = &f
			check = func(t *testing.T) {
				require.Equal(t, taskbridge.FrameSubscriptionConfirmed, f.Type)
				require.True(t, f.Live)
			}
		case name == "websocket_heartbeat":
			var f taskbridge.HeartbeatFrame
			v = &f
			check = func(t *testing.T) { require.Equal(t, taskbridge.FrameHeartbeat, f.Type) }
		default:
			t.Fatalf("fixture %s has no Go type in this test; add it", name)
		}
		t.Run(name, func(t *testing.T) {
			wireStrictDecode(t, raw, v)
			out, err := json.Marshal(v)
			require.NoError(t, err)
			requireWireEqual(t, raw, out)
			check(t)
		})
	}
	require.Len(t, seenTypes, 8, "every event type has a fixture")
}

func wireSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// wireMarshal returns the JSON of v decoded as a generic object.
func wireMarshal(t *testing.T, v any) (map[string]any, []byte) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	m, ok := wireRaw(t, b).(map[string]any)
	require.True(t, ok, "%s is not an object", b)
	return m, b
}

func wireKeys(m map[string]any) []string { return wireSortedKeys(m) }

func TestResponseJSONShapes(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	payload := json.RawMessage(`{"message":"Task started"}`)
	ev := taskbridge.TaskEvent{
		Type: taskbridge.EventTaskStarted, TaskID: "t1", EventID: "1",
		CreatedAt: created, Payload: payload, Seq: 1,
	}
	cursor := "7"

	t.Run("TaskEvent", func(t *testing.T) {
		t.Parallel()
		m, b := wireMarshal(t, ev)
		require.Equal(t, []string{"createdAt", "eventId", "payload", "taskId", "type"}, wireKeys(m))
		require.Equal(t, "2026-05-04T12:00:00.000Z", m["createdAt"])
		protocoltest.ValidateEvent(t, b)
	})
	t.Run("CreateTaskResponse always has deduplicated", func(t *testing.T) {
		t.Parallel()
		for _, dedup := range []bool{false, true} {
			m, b := wireMarshal(t, taskbridge.CreateTaskResponse{
				TaskID: "t1", Status: taskbridge.StatusAccepted, ClientRequestID: "r1", Deduplicated: dedup,
			})
			require.Equal(t, []string{"clientRequestId", "deduplicated", "status", "taskId"}, wireKeys(m))
			require.Equal(t, dedup, m["deduplicated"])
			protocoltest.ValidateComponent(t, protocoltest.ComponentTaskCreatedResponse, b)
		}
	})
	t.Run("PollResponse", func(t *testing.T) {
		t.Parallel()
		m, b := wireMarshal(t, taskbridge.PollResponse{TaskID: "t1", Events: []taskbridge.TaskEvent{}})
		require.Equal(t, []string{"events", "hasMore", "nextAfterEventId", "taskId"}, wireKeys(m))
		require.Nil(t, m["nextAfterEventId"])
		require.Equal(t, []any{}, m["events"])
		protocoltest.ValidateComponent(t, protocoltest.ComponentPollEventsResponse, b)

		m, b = wireMarshal(t, taskbridge.PollResponse{
			TaskID: "t1", Events: []taskbridge.TaskEvent{ev}, NextAfterEventID: &ev.EventID, HasMore: true,
		})
		require.Equal(t, "1", m["nextAfterEventId"])
		require.Equal(t, true, m["hasMore"])
		protocoltest.ValidateComponent(t, protocoltest.ComponentPollEventsResponse, b)
	})
	t.Run("CancelResponse", func(t *testing.T) {
		t.Parallel()
		for _, st := range []taskbridge.CancelStatus{taskbridge.CancelRequested, taskbridge.CancelAlreadyTerminal} {
			m, b := wireMarshal(t, taskbridge.CancelResponse{TaskID: "t1", Status: st})
			require.Equal(t, []string{"status", "taskId"}, wireKeys(m))
			protocoltest.ValidateComponent(t, protocoltest.ComponentCancelTaskResponse, b)
		}
	})
	t.Run("ActionResponse", func(t *testing.T) {
		t.Parallel()
		for _, st := range []taskbridge.ActionStatus{
			taskbridge.ActionAccepted, taskbridge.ActionDeduplicated,
			taskbridge.ActionRejectedAlreadyResolved, taskbridge.ActionRejectedExpired,
		} {
			_, b := wireMarshal(t, taskbridge.ActionResponse{TaskID: "t1", SuspendID: "s1", ClientActionID: "c1", Status: st})
			protocoltest.ValidateActionResponse(t, b)
		}
	})
	t.Run("ActionRequest", func(t *testing.T) {
		t.Parallel()
		m, b := wireMarshal(t, taskbridge.ActionRequest{ClientActionID: "c1", SuspendID: "s1", ActionType: "approve"})
		require.Equal(t, []string{"actionType", "clientActionId", "suspendId"}, wireKeys(m))
		protocoltest.ValidateActionRequest(t, b)
		_, b = wireMarshal(t, taskbridge.ActionRequest{
			ClientActionID: "c1", SuspendID: "s1", ActionType: "approve",
			Payload: json.RawMessage(`{"a":1}`), Metadata: json.RawMessage(`{}`),
		})
		protocoltest.ValidateActionRequest(t, b)
	})
	t.Run("TaskSnapshot", func(t *testing.T) {
		t.Parallel()
		summary := taskbridge.TaskSummary{
			TaskID: "t1", Status: taskbridge.StatusRunning, TaskType: "classify", ClientRequestID: "r1",
			CreatedAt: created, UpdatedAt: created,
		}
		m, _ := wireMarshal(t, taskbridge.TaskSnapshot{TaskSummary: summary})
		require.Equal(t, []string{
			"cancelRequested", "clientRequestId", "createdAt", "lastEventId", "status",
			"suspension", "taskId", "taskType", "updatedAt",
		}, wireKeys(m))
		require.Nil(t, m["suspension"])
		require.Nil(t, m["lastEventId"])

		summary.LastEventID = &cursor
		m, _ = wireMarshal(t, taskbridge.TaskSnapshot{TaskSummary: summary, Suspension: &taskbridge.SuspendedPayload{
			SuspendID: "s1", Kind: taskbridge.KindUserActionRequired, ReasonCode: "confirm",
			AllowedActions: []string{"approve"}, SchemaVersion: 1,
		}})
		require.Equal(t, "7", m["lastEventId"])
		require.Equal(t, map[string]any{
			"suspendId": "s1", "kind": "USER_ACTION_REQUIRED", "reasonCode": "confirm",
			"allowedActions": []any{"approve"}, "schemaVersion": float64(1),
		}, m["suspension"])
	})
	t.Run("TaskList", func(t *testing.T) {
		t.Parallel()
		m, _ := wireMarshal(t, taskbridge.TaskList{Tasks: []taskbridge.TaskSummary{}})
		require.Equal(t, []string{"nextCursor", "tasks"}, wireKeys(m))
		require.Nil(t, m["nextCursor"])
		require.Equal(t, []any{}, m["tasks"])
		m, _ = wireMarshal(t, taskbridge.TaskList{Tasks: []taskbridge.TaskSummary{}, NextCursor: &cursor})
		require.Equal(t, "7", m["nextCursor"])
	})
	t.Run("ErrorEnvelope", func(t *testing.T) {
		t.Parallel()
		now := time.Date(2026, 5, 4, 14, 0, 0, 5, time.FixedZone("CEST", 2*3600))
		_, env := taskbridge.NewErrorEnvelope(taskbridge.ErrTaskNotFound, now)
		m, b := wireMarshal(t, env)
		require.Equal(t, []string{"code", "details", "message", "timestamp"}, wireKeys(m))
		require.Equal(t, map[string]any{}, m["details"], "details is {} not null")
		require.Equal(t, "2026-05-04T12:00:00.000Z", m["timestamp"], "UTC, three digits, truncated")
		protocoltest.ValidateErrorResponse(t, b)
	})
	t.Run("WebSocket frames", func(t *testing.T) {
		t.Parallel()
		m, b := wireMarshal(t, taskbridge.SubscriptionConfirmedFrame{
			Type: taskbridge.FrameSubscriptionConfirmed, TaskID: "t1", Live: true,
		})
		require.Equal(t, []string{"live", "replayStartedAfterEventId", "taskId", "type"}, wireKeys(m))
		require.Nil(t, m["replayStartedAfterEventId"])
		protocoltest.ValidateSubscriptionConfirmed(t, b)
		protocoltest.ValidateServerFrame(t, b)

		m, b = wireMarshal(t, taskbridge.HeartbeatFrame{Type: taskbridge.FrameHeartbeat, TaskID: "t1", Live: true})
		require.Equal(t, []string{"live", "taskId", "type"}, wireKeys(m))
		protocoltest.ValidateHeartbeat(t, b)

		m, b = wireMarshal(t, taskbridge.SubscribeFrame{Action: taskbridge.FrameSubscribe, TaskID: "t1"})
		require.Equal(t, []string{"action", "taskId"}, wireKeys(m))
		protocoltest.ValidateSubscribeFrame(t, b)
		_, b = wireMarshal(t, taskbridge.SubscribeFrame{Action: taskbridge.FrameSubscribe, TaskID: "t1", LastEventID: &cursor})
		protocoltest.ValidateSubscribeFrame(t, b)
	})
}

func TestValidTaskID(t *testing.T) {
	t.Parallel()
	valid := []string{
		uuid.NewString(), strings.ToUpper(uuid.NewString()), "a", "Z", "0", "task_123", "task-1",
		"a.b", "user@example.com", "9_-.@", strings.Repeat("a", 255),
	}
	for _, id := range valid {
		require.True(t, taskbridge.ValidTaskID(id), "%q", id)
	}
	invalid := []string{
		"", "_a", "-a", ".a", "@a", strings.Repeat("a", 256), "a/b", "a b", "a\n", "a\x00",
		"a..b", "a..", "..", "a%2Fb", "a?b", "a#b", "é", "tâche", "a:b", "a+b", "{a}",
	}
	for _, id := range invalid {
		require.False(t, taskbridge.ValidTaskID(id), "%q", id)
	}
}

// TestValidTaskIDMatchesThePattern checks ValidTaskID against the SDK's
// pattern, as a regular expression, with every byte value at every position
// of short ids, next to a dot and at the length limit.
func TestValidTaskIDMatchesThePattern(t *testing.T) {
	t.Parallel()
	pattern := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,254}$`)
	want := func(id string) bool { return pattern.MatchString(id) && !strings.Contains(id, "..") }
	bases := []string{"", "a", "ab", "a.", ".a", "a.b", "a-b@c_d", strings.Repeat("x", 254), strings.Repeat("x", 255)}
	for _, base := range bases {
		for p := 0; p <= len(base); p += max(1, len(base)/8) {
			for c := range 256 {
				for _, id := range []string{base[:p] + string([]byte{byte(c)}) + base[p:], base[:p] + string([]byte{byte(c)})} {
					require.Equal(t, want(id), taskbridge.ValidTaskID(id), "%q", id)
				}
			}
		}
		require.Equal(t, want(base), taskbridge.ValidTaskID(base), "%q", base)
	}
}

func TestFormatAndParseEventID(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{0, 1, 9, 10, 42, 1 << 32, math.MaxInt64} {
		s := taskbridge.FormatEventID(n)
		require.Equal(t, strconv.FormatInt(n, 10), s)
		got, err := taskbridge.ParseEventID(s)
		require.NoError(t, err)
		require.Equal(t, n, got)
	}
	got, err := taskbridge.ParseEventID("")
	require.NoError(t, err)
	require.Zero(t, got, `"" means from the start`)

	for _, s := range []string{
		"-1", "-0", "01", "00", "+1", "1.0", "1e3", " 1", "1 ", "0x1", "1_000", "abc", "4-0",
		"9223372036854775808", "99999999999999999999999", "١", strings.Repeat("9", 100),
	} {
		_, err := taskbridge.ParseEventID(s)
		require.ErrorIs(t, err, taskbridge.ErrInvalidCursor, "%q", s)
		require.LessOrEqual(t, len(err.Error()), 200, "long cursors are truncated in errors")
	}
}

func TestStatusAndEventTypePredicates(t *testing.T) {
	t.Parallel()
	terminalStatus := map[taskbridge.TaskStatus]bool{
		taskbridge.StatusAccepted: false, taskbridge.StatusRunning: false,
		taskbridge.StatusCompleted: true, taskbridge.StatusFailed: true, taskbridge.StatusCancelled: true,
	}
	for s, term := range terminalStatus {
		require.True(t, s.Valid(), s)
		require.Equal(t, term, s.Terminal(), s)
	}
	require.False(t, taskbridge.TaskStatus("PAUSED").Valid())
	require.False(t, taskbridge.TaskStatus("").Valid())
	require.False(t, taskbridge.TaskStatus("completed").Valid())

	terminalType := map[taskbridge.EventType]taskbridge.TaskStatus{
		taskbridge.EventTaskStarted: "", taskbridge.EventTaskProgress: "", taskbridge.EventTaskMessage: "",
		taskbridge.EventTaskSuspended: "", taskbridge.EventTaskActionAccepted: "",
		taskbridge.EventTaskCompleted: taskbridge.StatusCompleted,
		taskbridge.EventTaskFailed:    taskbridge.StatusFailed,
		taskbridge.EventTaskCancelled: taskbridge.StatusCancelled,
	}
	for et, st := range terminalType {
		require.True(t, et.Valid(), et)
		require.Equal(t, st != "", et.Terminal(), et)
		require.Equal(t, st, et.TerminalStatus(), et)
		require.Equal(t, st != "", taskbridge.TaskEvent{Type: et}.Terminal(), et)
	}
	require.False(t, taskbridge.EventType("TASK_PAUSED").Valid())
	require.Equal(t, taskbridge.TaskStatus(""), taskbridge.EventType("TASK_PAUSED").TerminalStatus())
}

func TestNextStatus(t *testing.T) {
	t.Parallel()
	const (
		accepted  = taskbridge.StatusAccepted
		running   = taskbridge.StatusRunning
		completed = taskbridge.StatusCompleted
		failed    = taskbridge.StatusFailed
		cancelled = taskbridge.StatusCancelled
	)
	types := []taskbridge.EventType{
		taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskMessage,
		taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
		taskbridge.EventTaskCompleted, taskbridge.EventTaskFailed, taskbridge.EventTaskCancelled,
	}
	errTransition := taskbridge.TaskStatus("ErrInvalidTransition")
	errTerminal := taskbridge.TaskStatus("ErrTaskTerminal")
	// want[status] lists the outcome for each of types, in order.
	want := map[taskbridge.TaskStatus][8]taskbridge.TaskStatus{
		accepted:  {running, errTransition, errTransition, errTransition, errTransition, completed, failed, cancelled},
		running:   {errTransition, running, running, running, running, completed, failed, cancelled},
		completed: {errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal},
		failed:    {errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal},
		cancelled: {errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal, errTerminal},
	}
	for cur, outcomes := range want {
		for i, et := range types {
			got, err := taskbridge.NextStatus(cur, et)
			switch outcomes[i] {
			case errTransition:
				require.ErrorIs(t, err, taskbridge.ErrInvalidTransition, "%s + %s", cur, et)
				require.Equal(t, cur, got, "status unchanged on error")
			case errTerminal:
				require.ErrorIs(t, err, taskbridge.ErrTaskTerminal, "%s + %s", cur, et)
				require.NotErrorIs(t, err, taskbridge.ErrInvalidTransition)
				require.Equal(t, cur, got)
			default:
				require.NoError(t, err, "%s + %s", cur, et)
				require.Equal(t, outcomes[i], got, "%s + %s", cur, et)
			}
		}
		got, err := taskbridge.NextStatus(cur, "TASK_PAUSED")
		require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, "unknown type in %s", cur)
		require.Equal(t, cur, got)
	}
	_, err := taskbridge.NextStatus("PAUSED", taskbridge.EventTaskProgress)
	require.ErrorIs(t, err, taskbridge.ErrInvalidTransition)
}
