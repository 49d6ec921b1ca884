package wire

import (
	"bytes"
	"encoding/json"
	"time"
)

// EventOverhead is what [AppendEvent] adds to an event's strings and
// payload on its fast path: the envelope's keys and punctuation and the
// time. A buffer of EventOverhead plus the lengths of the type, task id,
// event id and payload holds the event without growing.
const EventOverhead = len(`{"type":"","taskId":"","eventId":"","createdAt":"","payload":}`) + len(TimeLayout)

// AppendEvent appends the compact JSON encoding of an event envelope to
// dst: {"type","taskId","eventId","createdAt","payload"}, with createdAt
// in [TimeLayout]. It is identical in content to json.Marshal of the
// envelope, without reflection on its fast path. The payload is compacted
// if it has whitespace outside its strings (SSE data lines must not contain
// line breaks); an invalid payload is written as {} so that the envelope
// stays valid.
func AppendEvent(dst []byte, typ, taskID, eventID string, createdAt time.Time, payload []byte) []byte {
	ok, compact := Valid(payload)
	if !ok {
		return appendEventSlow(dst, typ, taskID, eventID, createdAt, payload)
	}
	return AppendValidEvent(dst, typ, taskID, eventID, createdAt, payload, compact)
}

// AppendValidEvent is [AppendEvent] for a payload the caller has already
// checked with [Valid], which it does not check again; compact is what
// Valid reported.
func AppendValidEvent(dst []byte, typ, taskID, eventID string, createdAt time.Time, payload []byte, compact bool) []byte {
	if !safeString(typ) || !safeString(taskID) || !safeString(eventID) {
		return appendEventSlow(dst, typ, taskID, eventID, createdAt, payload)
	}
	return appendEvent(dst, typ, taskID, eventID, createdAt, payload, compact)
}

// AppendSafeEvent is [AppendEvent] for a type and a task id that the caller
// knows need no escaping (a protocol event type; a task id that passed
// taskbridge.ValidTaskID, whose characters are all safe), which it writes
// without checking them; it checks the event id and the payload as
// AppendEvent does. A frame's encoding runs once per event read, and those
// two checks were a fifth of it.
func AppendSafeEvent(dst []byte, typ, taskID, eventID string, createdAt time.Time, payload []byte) []byte {
	ok, compact := Valid(payload)
	if !ok || !safeString(eventID) {
		return appendEventSlow(dst, typ, taskID, eventID, createdAt, payload)
	}
	return appendEvent(dst, typ, taskID, eventID, createdAt, payload, compact)
}

// AppendVettedEvent is [AppendSafeEvent] for a payload its store vouches
// for (see taskbridge.VettedAppender): empty or valid, compact JSON, which
// it writes without checking it. It checks the event id only.
func AppendVettedEvent(dst []byte, typ, taskID, eventID string, createdAt time.Time, payload []byte) []byte {
	if len(payload) == 0 || !safeString(eventID) {
		return AppendSafeEvent(dst, typ, taskID, eventID, createdAt, payload)
	}
	return appendEvent(dst, typ, taskID, eventID, createdAt, payload, true)
}

// appendEvent writes an envelope whose strings need no escaping and whose
// payload is valid, compacting it unless compact.
func appendEvent(dst []byte, typ, taskID, eventID string, createdAt time.Time, payload []byte, compact bool) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","taskId":"`...)
	dst = append(dst, taskID...)
	dst = append(dst, `","eventId":"`...)
	dst = append(dst, eventID...)
	dst = append(dst, `","createdAt":"`...)
	dst = AppendTime(dst, createdAt)
	dst = append(dst, `","payload":`...)
	if !compact {
		var buf bytes.Buffer
		_ = json.Compact(&buf, payload)
		dst = append(dst, buf.Bytes()...)
	} else {
		dst = append(dst, payload...)
	}
	return append(dst, '}')
}

// envelope is the event envelope for encoding/json, which escapes the
// strings the fast path cannot write as they are.
type envelope struct {
	Type      string          `json:"type"`
	TaskID    string          `json:"taskId"`
	EventID   string          `json:"eventId"`
	CreatedAt string          `json:"createdAt"`
	Payload   json.RawMessage `json:"payload"`
}

func appendEventSlow(dst []byte, typ, taskID, eventID string, createdAt time.Time, payload []byte) []byte {
	ev := envelope{Type: typ, TaskID: taskID, EventID: eventID, CreatedAt: FormatTime(createdAt), Payload: payload}
	if !json.Valid(payload) {
		ev.Payload = json.RawMessage(`{}`)
	}
	b, _ := json.Marshal(ev) // cannot fail: strings and a valid payload
	return append(dst, b...)
}

// AppendString appends s to dst as a JSON string, as encoding/json writes
// it.
func AppendString(dst []byte, s string) []byte {
	if !safeString(s) {
		b, _ := json.Marshal(s) // cannot fail for a string
		return append(dst, b...)
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// safeString reports whether s can be written between JSON quotes as is
// (encoding/json would write it unchanged). A string of 8 bytes or more is
// checked a word at a time (see unsafeBytes), its last word overlapping
// the one before; a shorter one byte by byte.
func safeString(s string) bool {
	if len(s) < 8 {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
		return true
	}
	last := len(s) - 8
	for i := 0; ; i += 8 {
		i = min(i, last)
		t := s[i : i+8]
		w := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		if unsafeBytes(w) {
			return false
		}
		if i == last {
			return true
		}
	}
}

// unsafeBytes reports whether any of w's bytes is one safeString refuses:
// below 0x20 or from 0x7f on, a quote, a backslash, '<', '>' or '&' (see
// flagBytes).
func unsafeBytes(w uint64) bool {
	return flagBytes(w^ones*'"')|flagBytes(w^ones*'\\')|flagBytes(w^ones*'<')|flagBytes(w^ones*'>')|
		flagBytes(w^ones*'&')|flagBytes(w^ones*0x7f)|belowBytes(w, 0x20)|w&highs != 0
}
