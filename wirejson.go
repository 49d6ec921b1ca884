package taskbridge

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// The JSON encodings of the types the library writes: every time in one
// format, RFC 3339 in UTC with exactly three fractional digits
// ("2026-05-04T12:00:00.000Z"), so that clients may parse it with a fixed
// pattern. Decoding stays lenient: the types decode with encoding/json's
// defaults and accept any RFC 3339 time.
//
// Each MarshalJSON wraps the type's fields (through a defined type without
// methods) and overrides its time fields, which the shallower field wins.

// wireTime is a time as the library writes it.
type wireTime time.Time

// MarshalJSON writes t in wire.TimeLayout. Like time.Time, it refuses years
// that RFC 3339 cannot express.
func (t wireTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if y := tt.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("taskbridge: time %v is outside years 0..9999", tt)
	}
	b := make([]byte, 0, len(wire.TimeLayout)+2)
	b = append(b, '"')
	b = wire.AppendTime(b, tt)
	return append(b, '"'), nil
}

// MarshalJSON encodes e as the protocol's event envelope, the same bytes
// SSE and WebSocket send. A nil Payload is written as null.
func (e TaskEvent) MarshalJSON() ([]byte, error) {
	return e.appendJSON(make([]byte, 0, e.jsonSize()))
}

// appendJSON appends e's envelope to dst, or fails for an event no client
// could decode.
func (e TaskEvent) appendJSON(dst []byte) ([]byte, error) {
	if len(e.Payload) == 0 {
		e.Payload = json.RawMessage(`null`)
	}
	ok, compact := wire.Valid(e.Payload)
	if !ok {
		return nil, fmt.Errorf("%w: event %s has an invalid JSON payload", ErrInvalidEvent, e.EventID)
	}
	if y := e.CreatedAt.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: event %s has createdAt %v outside years 0..9999", ErrInvalidEvent, e.EventID, e.CreatedAt)
	}
	return wire.AppendValidEvent(dst, string(e.Type), e.TaskID, e.EventID, e.CreatedAt, e.Payload, compact), nil
}

// MarshalJSON writes r as the protocol's poll response, its events as
// TaskEvent writes them, without reflection: a long poll's answer is on
// the hot path of every woken poll. Nil Events are written as [].
func (r PollResponse) MarshalJSON() ([]byte, error) {
	n := len(`{"taskId":"","events":[],"nextAfterEventId":null,"hasMore":false}`) + len(r.TaskID)
	if r.NextAfterEventID != nil {
		n += len(*r.NextAfterEventID)
	}
	for _, e := range r.Events {
		n += e.jsonSize() + 1 // and a comma
	}
	b := make([]byte, 0, n)
	b = append(b, `{"taskId":`...)
	b = wire.AppendString(b, r.TaskID)
	b = append(b, `,"events":[`...)
	for i, e := range r.Events {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = e.appendJSON(b); err != nil {
			return nil, err
		}
	}
	b = append(b, `],"nextAfterEventId":`...)
	if r.NextAfterEventID == nil {
		b = append(b, `null`...)
	} else {
		b = wire.AppendString(b, *r.NextAfterEventID)
	}
	b = append(b, `,"hasMore":`...)
	b = strconv.AppendBool(b, r.HasMore)
	return append(b, '}'), nil
}

type (
	plainSummary        TaskSummary
	plainEnvelope       ErrorEnvelope
	plainSuspended      SuspendedPayload
	plainActionAccepted ActionAcceptedPayload
)

// summaryJSON is a TaskSummary as written; TaskSnapshot embeds it too.
type summaryJSON struct {
	plainSummary
	CreatedAt wireTime `json:"createdAt"`
	UpdatedAt wireTime `json:"updatedAt"`
}

func (s TaskSummary) wire() summaryJSON {
	return summaryJSON{plainSummary(s), wireTime(s.CreatedAt), wireTime(s.UpdatedAt)}
}

// MarshalJSON writes s with its times in the protocol's format.
func (s TaskSummary) MarshalJSON() ([]byte, error) { return json.Marshal(s.wire()) }

// MarshalJSON writes s with its times in the protocol's format. (It is
// needed, or TaskSummary's would be promoted and drop the suspension.)
func (s TaskSnapshot) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		summaryJSON
		Suspension *SuspendedPayload `json:"suspension"`
	}{s.TaskSummary.wire(), s.Suspension})
}

// MarshalJSON writes e with its timestamp in the protocol's format.
func (e ErrorEnvelope) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		plainEnvelope
		Timestamp wireTime `json:"timestamp"`
	}{plainEnvelope(e), wireTime(e.Timestamp)})
}

// suspendedJSON is a SuspendedPayload as written; Suspension embeds it too.
type suspendedJSON struct {
	plainSuspended
	ExpiresAt *wireTime `json:"expiresAt,omitempty"`
}

func (p SuspendedPayload) wire() suspendedJSON {
	return suspendedJSON{plainSuspended(p), (*wireTime)(p.ExpiresAt)}
}

// MarshalJSON writes p with its time in the protocol's format.
func (p SuspendedPayload) MarshalJSON() ([]byte, error) { return json.Marshal(p.wire()) }

// MarshalJSON writes p with its time in the protocol's format.
func (p ActionAcceptedPayload) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		plainActionAccepted
		AcceptedAt wireTime `json:"acceptedAt"`
	}{plainActionAccepted(p), wireTime(p.AcceptedAt)})
}

// MarshalJSON writes s with its times in the protocol's format. (It is
// needed, or SuspendedPayload's would be promoted and drop the other
// fields; they are listed here because a type derived from Suspension
// would still promote it. TestSuspensionJSONHasEveryField keeps the list
// complete.)
func (s Suspension) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		TaskID string `json:"taskId"`
		suspendedJSON
		Status           SuspensionStatus `json:"status"`
		EventSeq         int64            `json:"eventSeq"`
		ResolvedActionID string           `json:"resolvedActionId,omitempty"`
		ResumeStatus     ResumeStatus     `json:"resumeStatus"`
		CreatedAt        wireTime         `json:"createdAt"`
		ClosedAt         wireTime         `json:"closedAt"`
	}{s.TaskID, s.SuspendedPayload.wire(), s.Status, s.EventSeq, s.ResolvedActionID, s.ResumeStatus,
		wireTime(s.CreatedAt), wireTime(s.ClosedAt)})
}
