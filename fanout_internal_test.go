package taskbridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// newFrame sizes its buffer so that the fast path never grows it, even for
// the longest timestamps.
func TestNewFrameFitsItsBuffer(t *testing.T) {
	for _, ev := range []TaskEvent{
		{Type: EventTaskCompleted, TaskID: "a", EventID: "1", Seq: 1, CreatedAt: time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), Payload: json.RawMessage(`{"result":null}`)},
		{Type: EventTaskProgress, TaskID: strings.Repeat("x", 255), EventID: "9223372036854775807", Seq: 9223372036854775807,
			CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 123456789, time.FixedZone("", 3600)), Payload: json.RawMessage(`{"progress":1}`)},
		{Type: EventTaskMessage, TaskID: "t", EventID: "2", Seq: 2, CreatedAt: time.Unix(0, 0), Payload: json.RawMessage(`{}`)},
	} {
		for _, vouched := range []bool{false, true} {
			f := newFrame(&ev, ev.TaskID, vouched)
			want := wire.EventOverhead + len(ev.Type) + len(ev.TaskID) + len(ev.EventID) + len(ev.Payload)
			if cap(f.JSON) != want || !json.Valid(f.JSON) {
				t.Fatalf("vouched %v: frame of %d bytes in a buffer of %d, sized %d: %s", vouched, len(f.JSON), cap(f.JSON), want, f.JSON)
			}
			if f.Seq != ev.Seq || f.EventID != ev.EventID || f.Terminal != ev.Terminal() {
				t.Fatalf("frame %+v of event %+v", f, ev)
			}
		}
	}
}

// newFrame skips the escaping checks only for what it knows is safe: the
// read's own (valid) task id and protocol event types, and, from a store
// that vouches for them, compact payloads. A store returning another task
// id, an unknown type or an odd event id gets them escaped, even when it
// vouches for its payloads.
func TestNewFrameEscapesWhatItDoesNotKnow(t *testing.T) {
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for _, ev := range []TaskEvent{
		{Type: EventTaskMessage, TaskID: `t"<x>`, EventID: "1", Seq: 1, CreatedAt: at, Payload: json.RawMessage(`{"message":"m"}`)},
		{Type: EventType(`TASK_"ODD"`), TaskID: "t", EventID: "1", Seq: 1, CreatedAt: at, Payload: json.RawMessage(`{"message":"m"}`)},
		{Type: EventTaskMessage, TaskID: "t", EventID: `1"`, Seq: 1, CreatedAt: at, Payload: json.RawMessage(`{"message":"m"}`)},
		{Type: EventTaskMessage, TaskID: "t", EventID: "1", Seq: 1, CreatedAt: at, Payload: json.RawMessage(`{"message": "<m>"}`)},
		{Type: EventTaskStarted, TaskID: "t", EventID: "1", Seq: 1, CreatedAt: at},
	} {
		ok, compact := wire.Valid(ev.Payload)
		for _, vouched := range []bool{false, ok && compact || len(ev.Payload) == 0} {
			f := newFrame(&ev, "t", vouched)
			want := wire.AppendEvent(nil, string(ev.Type), ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload)
			if string(f.JSON) != string(want) || !json.Valid(f.JSON) {
				t.Fatalf("vouched %v: frame %s, want %s", vouched, f.JSON, want)
			}
			var back struct{ Type, TaskID, EventID string }
			if err := json.Unmarshal(f.JSON, &back); err != nil || back.Type != string(ev.Type) || back.TaskID != ev.TaskID || back.EventID != ev.EventID {
				t.Fatalf("frame %s decodes to %+v (%v)", f.JSON, back, err)
			}
		}
	}
}
