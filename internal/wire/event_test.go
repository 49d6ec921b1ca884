package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// event is the envelope as encoding/json writes it, for comparison.
type event struct {
	Type      string          `json:"type"`
	TaskID    string          `json:"taskId"`
	EventID   string          `json:"eventId"`
	CreatedAt time.Time       `json:"createdAt"`
	Payload   json.RawMessage `json:"payload"`
}

func appendEvent(dst []byte, ev event) []byte {
	return wire.AppendEvent(dst, ev.Type, ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload)
}

func TestAppendEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 12, 0, 10, 500_000_000, time.FixedZone("CEST", 2*3600))
	for _, ev := range []event{
		{Type: "TASK_PROGRESS", TaskID: "task_123", EventID: "3", CreatedAt: at, Payload: json.RawMessage(`{"progress":60}`)},
		{Type: "TASK_MESSAGE", TaskID: "t", EventID: "1", CreatedAt: at, Payload: json.RawMessage("{\n  \"message\": \"a b\"\n}")},
		{Type: "TASK_MESSAGE", TaskID: `we"ird`, EventID: "1", CreatedAt: at, Payload: json.RawMessage(`{"message":"<&>"}`)},
		{Type: "TASK_COMPLETED", TaskID: "t", EventID: "2", CreatedAt: at, Payload: json.RawMessage(`not json`)},
		{Type: "TASK_MESSAGE", TaskID: "t", EventID: "1\"<2>", CreatedAt: at, Payload: json.RawMessage(`{"message":"m"}`)},
		{Type: "TASK_STARTED", TaskID: "t", EventID: "4", CreatedAt: at, Payload: nil},
	} {
		got := appendEvent([]byte("prefix"), ev)
		if !strings.ContainsAny(ev.TaskID, `"<&>\`) {
			safe := wire.AppendSafeEvent([]byte("prefix"), ev.Type, ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload)
			require.Equal(t, string(got), string(safe), "AppendSafeEvent writes the same bytes, checking the event id and payload")
		}
		require.True(t, strings.HasPrefix(string(got), "prefix"))
		got = got[len("prefix"):]
		require.True(t, json.Valid(got), string(got))
		require.NotContains(t, string(got), "\n")
		var back map[string]any
		require.NoError(t, json.Unmarshal(got, &back))
		require.Equal(t, ev.TaskID, back["taskId"])
		require.Equal(t, "2026-05-04T10:00:10.500Z", back["createdAt"], "createdAt is UTC, with three digits")
		if ok, compact := wire.Valid(ev.Payload); (ok && compact || len(ev.Payload) == 0) && !strings.ContainsAny(ev.TaskID, `"<&>\`) {
			vetted := wire.AppendVettedEvent(nil, ev.Type, ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload)
			require.Equal(t, string(got), string(vetted), "AppendVettedEvent writes the same bytes, checking the event id")
		}
		if ok, compact := wire.Valid(ev.Payload); ok {
			valid := wire.AppendValidEvent(nil, ev.Type, ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload, compact)
			require.Equal(t, string(got), string(valid), "AppendValidEvent writes the same bytes")
			want, err := json.Marshal(ev)
			require.NoError(t, err)
			var wantMap map[string]any
			require.NoError(t, json.Unmarshal(want, &wantMap))
			wantMap["createdAt"] = back["createdAt"]
			require.Equal(t, wantMap, back)
		} else {
			require.Equal(t, map[string]any{}, back["payload"])
		}
	}
}

// A buffer sized with EventOverhead never grows on the fast path, even for
// the longest timestamps.
func TestEventOverhead(t *testing.T) {
	t.Parallel()
	for _, ev := range []event{
		{Type: "TASK_COMPLETED", TaskID: "a", EventID: "1", CreatedAt: time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), Payload: json.RawMessage(`{"result":null}`)},
		{Type: "TASK_PROGRESS", TaskID: strings.Repeat("x", 255), EventID: "18446744073709551615",
			CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 123456789, time.FixedZone("", 3600)), Payload: json.RawMessage(`{"progress":1}`)},
		{Type: "TASK_MESSAGE", TaskID: "t", EventID: "2", CreatedAt: time.Unix(0, 0), Payload: json.RawMessage(`{}`)},
	} {
		n := wire.EventOverhead + len(ev.Type) + len(ev.TaskID) + len(ev.EventID) + len(ev.Payload)
		got := appendEvent(make([]byte, 0, n), ev)
		require.Equal(t, n, cap(got), "%d bytes in a buffer of %d: %s", len(got), n, got)
		require.True(t, json.Valid(got))
	}
}

// AppendString writes what encoding/json writes, for strings it can copy as
// they are and for those it must escape.
func TestAppendString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "task_123", `we"ird`, `back\slash`, "line\nbreak", "<&>", "é", "\u2028", "\x00", "\xff"} {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, "x"+string(want), string(wire.AppendString([]byte("x"), s)), "%q", s)
	}
}
