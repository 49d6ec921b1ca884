package taskbridge_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// Every type with a time writes it in the one format, whatever the time's
// zone and precision, and keeps its other fields.
func TestWireTimes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 14, 0, 0, 123_456_789, time.FixedZone("CEST", 2*3600))
	const want = "2026-05-04T12:00:00.123Z"
	id := "3"
	suspended := taskbridge.SuspendedPayload{SuspendID: "s1", Kind: taskbridge.KindUserActionRequired,
		ReasonCode: "r", AllowedActions: []string{"ok"}, SchemaVersion: 1, ExpiresAt: &at}
	summary := taskbridge.TaskSummary{TaskID: "t1", Status: taskbridge.StatusRunning, TaskType: "demo",
		ClientRequestID: "c", CreatedAt: at, UpdatedAt: at, LastEventID: &id}
	for name, c := range map[string]struct {
		v     any
		times []string // paths of the times
		keys  []string // every member
	}{
		"TaskEvent": {
			taskbridge.TaskEvent{Type: taskbridge.EventTaskStarted, TaskID: "t1", EventID: "1", CreatedAt: at, Payload: json.RawMessage(`{}`), Seq: 1},
			[]string{"createdAt"}, []string{"createdAt", "eventId", "payload", "taskId", "type"},
		},
		"TaskSummary": {summary, []string{"createdAt", "updatedAt"},
			[]string{"cancelRequested", "clientRequestId", "createdAt", "lastEventId", "status", "taskId", "taskType", "updatedAt"}},
		"TaskSnapshot": {taskbridge.TaskSnapshot{TaskSummary: summary, Suspension: &suspended},
			[]string{"createdAt", "updatedAt", "suspension.expiresAt"},
			[]string{"cancelRequested", "clientRequestId", "createdAt", "lastEventId", "status", "suspension", "taskId", "taskType", "updatedAt"}},
		"ErrorEnvelope": {taskbridge.ErrorEnvelope{Code: "X", Message: "m", Details: map[string]any{}, Timestamp: at},
			[]string{"timestamp"}, []string{"code", "details", "message", "timestamp"}},
		"SuspendedPayload": {suspended, []string{"expiresAt"},
			[]string{"allowedActions", "expiresAt", "kind", "reasonCode", "schemaVersion", "suspendId"}},
		"ActionAcceptedPayload": {taskbridge.ActionAcceptedPayload{SuspendID: "s1", ClientActionID: "a", ActionType: "ok", AcceptedAt: at},
			[]string{"acceptedAt"}, []string{"acceptedAt", "actionType", "clientActionId", "suspendId"}},
		"Suspension": {taskbridge.Suspension{TaskID: "t1", SuspendedPayload: suspended, Status: taskbridge.SuspensionOpen, CreatedAt: at, ClosedAt: at},
			[]string{"createdAt", "closedAt", "expiresAt"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(c.v)
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			if c.keys != nil {
				require.Equal(t, c.keys, wireKeys(m), "%s", b)
			}
			for _, path := range c.times {
				var v any = m
				for _, k := range strings.Split(path, ".") {
					v = v.(map[string]any)[k]
				}
				require.Equal(t, want, v, "%s in %s", path, b)
			}
			// Decoding gives the instant back, at millisecond precision.
			back := reflect.New(reflect.TypeOf(c.v))
			require.NoError(t, json.Unmarshal(b, back.Interface()))
			again, err := json.Marshal(back.Elem().Interface())
			require.NoError(t, err)
			require.JSONEq(t, string(b), string(again))
		})
	}
}

// Suspension's MarshalJSON lists its fields (a type derived from it would
// promote SuspendedPayload's method): this keeps the list complete.
func TestSuspensionJSONHasEveryField(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(taskbridge.Suspension{ResolvedActionID: "a"})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	var names func(reflect.Type) []string
	names = func(typ reflect.Type) []string {
		var out []string
		for f := range typ.Fields() {
			if f.Anonymous {
				out = append(out, names(f.Type)...)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "-" && !strings.Contains(f.Tag.Get("json"), "omitempty") {
				out = append(out, name)
			}
		}
		return out
	}
	for _, name := range append(names(reflect.TypeFor[taskbridge.Suspension]()), "resolvedActionId") {
		require.Contains(t, m, name, "%s", b)
	}
}

// Decoding accepts any RFC 3339 time, not only the format the library
// writes.
func TestWireTimesDecodeLeniently(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"2026-05-04T12:00:00Z", "2026-05-04T14:00:00+02:00", "2026-05-04T12:00:00.000000001Z", "2026-05-04T12:00:00.5Z"} {
		var sum taskbridge.TaskSummary
		require.NoError(t, json.Unmarshal([]byte(`{"createdAt":"`+s+`","updatedAt":"`+s+`"}`), &sum), s)
		require.Equal(t, 2026, sum.CreatedAt.Year())
		var p taskbridge.SuspendedPayload
		require.NoError(t, json.Unmarshal([]byte(`{"expiresAt":"`+s+`"}`), &p), s)
		require.NotNil(t, p.ExpiresAt)
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal([]byte(`{"createdAt":"`+s+`","payload":{}}`), &ev), s)
		require.False(t, ev.CreatedAt.IsZero())
	}
}

func TestTaskEventMarshalJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	b, err := json.Marshal(taskbridge.TaskEvent{Type: taskbridge.EventTaskStarted, TaskID: "t", EventID: "1", CreatedAt: at})
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"TASK_STARTED","taskId":"t","eventId":"1","createdAt":"2026-05-04T12:00:00.000Z","payload":null}`, string(b))
	_, err = json.Marshal(taskbridge.TaskEvent{CreatedAt: at, Payload: json.RawMessage(`{`)})
	require.Error(t, err, "an invalid payload")
	_, err = json.Marshal(taskbridge.TaskEvent{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Payload: json.RawMessage(`{}`)})
	require.Error(t, err, "a year RFC 3339 cannot express")
	_, err = json.Marshal(taskbridge.TaskSummary{CreatedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.Error(t, err)
}

// PollResponse writes what encoding/json would write for its fields, with
// the events as TaskEvent writes them, and fails where TaskEvent fails.
func TestPollResponseMarshalJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	next := `7"<`
	type plain struct {
		TaskID           string                 `json:"taskId"`
		Events           []taskbridge.TaskEvent `json:"events"`
		NextAfterEventID *string                `json:"nextAfterEventId"`
		HasMore          bool                   `json:"hasMore"`
	}
	for _, r := range []taskbridge.PollResponse{
		{TaskID: "t", Events: []taskbridge.TaskEvent{}},
		{TaskID: "t", NextAfterEventID: &next},
		{TaskID: "we\"ird\n", HasMore: true, NextAfterEventID: &next, Events: []taskbridge.TaskEvent{
			{Type: taskbridge.EventTaskStarted, TaskID: "t", EventID: "1", Seq: 1, CreatedAt: at},
			{Type: taskbridge.EventTaskMessage, TaskID: "t", EventID: "2", Seq: 2, CreatedAt: at, Payload: json.RawMessage("{\n \"message\": \"<a & b>\"\n}")},
			{Type: taskbridge.EventTaskProgress, TaskID: "t", EventID: "3", Seq: 3, CreatedAt: at, Payload: json.RawMessage(`{"percent":50}`)},
		}},
	} {
		got, err := json.Marshal(r)
		require.NoError(t, err)
		p := plain(r)
		if p.Events == nil {
			p.Events = []taskbridge.TaskEvent{}
		}
		want, err := json.Marshal(p)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got))
		direct, err := r.MarshalJSON()
		require.NoError(t, err)
		require.True(t, json.Valid(direct), string(direct))
		require.NotContains(t, string(direct), "\n", "compact")
		require.JSONEq(t, string(want), string(direct))
	}
	_, err := taskbridge.PollResponse{Events: []taskbridge.TaskEvent{{CreatedAt: at, Payload: json.RawMessage(`{`)}}}.MarshalJSON()
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
	_, err = taskbridge.PollResponse{Events: []taskbridge.TaskEvent{{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}.MarshalJSON()
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
}

func BenchmarkPollResponseMarshalJSON(b *testing.B) {
	at := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	next := "1"
	r := taskbridge.PollResponse{TaskID: "task_0123456789", NextAfterEventID: &next, Events: []taskbridge.TaskEvent{
		{Type: taskbridge.EventTaskProgress, TaskID: "task_0123456789", EventID: "1", Seq: 1, CreatedAt: at, Payload: json.RawMessage(`{"percent":50,"message":"halfway"}`)},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}
