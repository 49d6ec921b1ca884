package taskbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// Payload is a typed event payload. Only the types in this package implement
// it, and each can only encode to a payload the protocol schema accepts:
// [Payload.Validate] rejects values the schema would reject.
type Payload interface {
	// EventType is the event type the payload belongs to.
	EventType() EventType
	// Validate reports why the payload would violate the event schema.
	Validate() error
	sealed()
}

// MessageLevel is the optional severity of a TASK_MESSAGE.
type MessageLevel string

// Message levels allowed by the schema.
const (
	LevelInfo    MessageLevel = "info"
	LevelWarning MessageLevel = "warning"
	LevelDebug   MessageLevel = "debug"
)

// SuspensionKind says why a task is suspended.
type SuspensionKind string

// Suspension kinds.
const (
	KindUserActionRequired          SuspensionKind = "USER_ACTION_REQUIRED"
	KindExternalConfirmationPending SuspensionKind = "EXTERNAL_CONFIRMATION_PENDING"
	KindSystemPaused                SuspensionKind = "SYSTEM_PAUSED"
)

// Valid reports whether k is a protocol suspension kind.
func (k SuspensionKind) Valid() bool {
	return k == KindUserActionRequired || k == KindExternalConfirmationPending || k == KindSystemPaused
}

// StartedPayload is the payload of TASK_STARTED: {message?}.
type StartedPayload struct {
	Message string `json:"message,omitempty"`
}

// ProgressPayload is the payload of TASK_PROGRESS: {progress 0..100, stage?, message?}.
type ProgressPayload struct {
	Progress float64 `json:"progress"`
	Stage    string  `json:"stage,omitempty"`
	Message  string  `json:"message,omitempty"`
}

// MessagePayload is the payload of TASK_MESSAGE: {message, level?}.
type MessagePayload struct {
	Message string       `json:"message"`
	Level   MessageLevel `json:"level,omitempty"`
}

// SuspendedPayload is the payload of TASK_SUSPENDED.
type SuspendedPayload struct {
	SuspendID      string         `json:"suspendId"`
	Kind           SuspensionKind `json:"kind"`
	ReasonCode     string         `json:"reasonCode"`
	AllowedActions []string       `json:"allowedActions"`
	SchemaVersion  int            `json:"schemaVersion"`
	ExpiresAt      *time.Time     `json:"expiresAt,omitempty"`
	UIHints        map[string]any `json:"uiHints,omitempty"`
	Interaction    map[string]any `json:"interaction,omitempty"`
}

// ActionAcceptedPayload is the payload of TASK_ACTION_ACCEPTED.
type ActionAcceptedPayload struct {
	SuspendID      string    `json:"suspendId"`
	ClientActionID string    `json:"clientActionId"`
	ActionType     string    `json:"actionType"`
	AcceptedAt     time.Time `json:"acceptedAt"`
	Message        string    `json:"message,omitempty"`
}

// CompletedPayload is the payload of TASK_COMPLETED: {result}. Result is
// required on the wire but may be null.
type CompletedPayload struct {
	Result any `json:"result"`
}

// FailedPayload is the payload of TASK_FAILED: {code, message, retryable}.
type FailedPayload struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// CancelledPayload is the payload of TASK_CANCELLED: {reason, message?}.
type CancelledPayload struct {
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// EventType implements [Payload].
func (StartedPayload) EventType() EventType { return EventTaskStarted }

// EventType implements [Payload].
func (ProgressPayload) EventType() EventType { return EventTaskProgress }

// EventType implements [Payload].
func (MessagePayload) EventType() EventType { return EventTaskMessage }

// EventType implements [Payload].
func (SuspendedPayload) EventType() EventType { return EventTaskSuspended }

// EventType implements [Payload].
func (ActionAcceptedPayload) EventType() EventType { return EventTaskActionAccepted }

// EventType implements [Payload].
func (CompletedPayload) EventType() EventType { return EventTaskCompleted }

// EventType implements [Payload].
func (FailedPayload) EventType() EventType { return EventTaskFailed }

// EventType implements [Payload].
func (CancelledPayload) EventType() EventType { return EventTaskCancelled }

func (StartedPayload) sealed()        {}
func (ProgressPayload) sealed()       {}
func (MessagePayload) sealed()        {}
func (SuspendedPayload) sealed()      {}
func (ActionAcceptedPayload) sealed() {}
func (CompletedPayload) sealed()      {}
func (FailedPayload) sealed()         {}
func (CancelledPayload) sealed()      {}

func invalidPayload(t EventType, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidEvent, t, fmt.Sprintf(format, args...))
}

// Validate implements [Payload]; a started payload is always valid.
func (p StartedPayload) Validate() error { return nil }

// Validate implements [Payload]: progress must be a number in 0..100.
func (p ProgressPayload) Validate() error {
	if math.IsNaN(p.Progress) || p.Progress < 0 || p.Progress > 100 {
		return invalidPayload(EventTaskProgress, "progress %v is outside 0..100", p.Progress)
	}
	return nil
}

// Validate implements [Payload]: level, when set, is info, warning or debug.
func (p MessagePayload) Validate() error {
	switch p.Level {
	case "", LevelInfo, LevelWarning, LevelDebug:
		return nil
	}
	return invalidPayload(EventTaskMessage, "level %q is not info, warning or debug", p.Level)
}

// Validate implements [Payload].
func (p SuspendedPayload) Validate() error {
	t := EventTaskSuspended
	switch {
	case p.SuspendID == "":
		return invalidPayload(t, "suspendId is required")
	case !p.Kind.Valid():
		return invalidPayload(t, "kind %q is not a suspension kind", p.Kind)
	case p.ReasonCode == "":
		return invalidPayload(t, "reasonCode is required")
	case len(p.AllowedActions) == 0:
		return invalidPayload(t, "allowedActions needs at least one action")
	case p.SchemaVersion < 1:
		return invalidPayload(t, "schemaVersion must be at least 1")
	}
	for _, a := range p.AllowedActions {
		if a == "" {
			return invalidPayload(t, "allowedActions contains an empty action")
		}
	}
	return nil
}

// checkAnswerable refuses a suspension that clients could not answer: its
// suspendId and allowed actions must pass the checks of the ids a client
// sends in an action. It is checked when a suspension is opened, not when
// a stored event is decoded (the schema allows more).
func (p SuspendedPayload) checkAnswerable() error {
	t := EventTaskSuspended
	if msg := idProblem(p.SuspendID); msg != "" {
		return invalidPayload(t, "suspendId %s", msg)
	}
	for _, a := range p.AllowedActions {
		if msg := idProblem(a); msg != "" {
			return invalidPayload(t, "allowed action %q %s", truncate(a, 64), msg)
		}
	}
	return nil
}

// Validate implements [Payload].
func (p ActionAcceptedPayload) Validate() error {
	t := EventTaskActionAccepted
	switch {
	case p.SuspendID == "":
		return invalidPayload(t, "suspendId is required")
	case p.ClientActionID == "":
		return invalidPayload(t, "clientActionId is required")
	case p.ActionType == "":
		return invalidPayload(t, "actionType is required")
	case p.AcceptedAt.IsZero():
		return invalidPayload(t, "acceptedAt is required")
	}
	return nil
}

// Validate implements [Payload]: the result must be encodable as JSON.
func (p CompletedPayload) Validate() error {
	if _, err := json.Marshal(p.Result); err != nil {
		return invalidPayload(EventTaskCompleted, "result is not encodable: %v", err)
	}
	return nil
}

// Validate implements [Payload]: code is required.
func (p FailedPayload) Validate() error {
	if p.Code == "" {
		return invalidPayload(EventTaskFailed, "code is required")
	}
	return nil
}

// Validate implements [Payload]: reason is required.
func (p CancelledPayload) Validate() error {
	if p.Reason == "" {
		return invalidPayload(EventTaskCancelled, "reason is required")
	}
	return nil
}

// EncodePayload validates p and returns its JSON encoding.
func EncodePayload(p Payload) (json.RawMessage, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil payload", ErrInvalidEvent)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if b, ok := encodeFrequent(p); ok {
		return b, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, invalidPayload(p.EventType(), "%v", err)
	}
	return b, nil
}

// encodeFrequent encodes the payloads a task emits most often (progress,
// messages, its start) without reflection, byte for byte as json.Marshal
// would; ok is false for the other types, which json.Marshal encodes.
// p has passed Validate.
func encodeFrequent(p Payload) (b []byte, ok bool) {
	switch p := p.(type) {
	case ProgressPayload:
		if p.Progress != 0 && math.Abs(p.Progress) < 1e-6 {
			return nil, false // encoding/json writes these with an exponent
		}
		// 37 bytes of names and punctuation, and up to 24 of number
		// ("0.0000012345678901234567"): the buffer never grows.
		b = make([]byte, 0, 64+len(p.Stage)+len(p.Message))
		b = append(b, `{"progress":`...)
		b = appendProgress(b, p.Progress)
		b = appendOptional(b, `,"stage":`, p.Stage)
		b = appendOptional(b, `,"message":`, p.Message)
	case MessagePayload:
		b = make([]byte, 0, 32+len(p.Message)+len(p.Level))
		b = append(b, `{"message":`...)
		b = wire.AppendString(b, p.Message)
		b = appendOptional(b, `,"level":`, string(p.Level))
	case StartedPayload:
		b = make([]byte, 0, 16+len(p.Message))
		b = appendOptional(append(b, '{'), `"message":`, p.Message)
	default:
		return nil, false
	}
	return append(b, '}'), true
}

// appendProgress appends p as encoding/json writes a float64 in 1e-6..1e21
// (strconv's 'f' format, shortest), but the values a progress usually takes,
// whole numbers and hundredths from 0 to 100, without strconv's general
// algorithm: such a p is float64(n)/100 exactly, the correctly rounded
// quotient, so the decimal n/100 reads back as p, and no other decimal with
// at most two decimal places lies within p's rounding interval, so none is
// shorter (TestAppendProgress compares all 10,001 with strconv).
func appendProgress(b []byte, p float64) []byte {
	if p >= 0 && p <= 100 && !math.Signbit(p) {
		n := int64(p*100 + 0.5)
		if float64(n)/100 == p {
			b = strconv.AppendInt(b, n/100, 10)
			if f := n % 100; f != 0 {
				b = append(b, '.', byte('0'+f/10))
				if f%10 != 0 {
					b = append(b, byte('0'+f%10))
				}
			}
			return b
		}
	}
	return strconv.AppendFloat(b, p, 'f', -1, 64)
}

// appendOptional appends the member whose name and colon are in name, with
// value v, unless v is empty (an omitempty member).
func appendOptional(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return wire.AppendString(append(b, name...), v)
}

// DecodePayload decodes e.Payload into the typed payload of e.Type. It is
// strict, so that it accepts no payload the event schema rejects:
//
//   - the payload must be a single JSON object, without repeated member
//     names;
//   - member names must match exactly (encoding/json alone would also match
//     "Message" to message), and a member the schema does not define is an
//     error, except in TASK_COMPLETED, whose payload may carry extra members;
//   - required members must be present, and no member may be null except
//     expiresAt of TASK_SUSPENDED (and anything in TASK_COMPLETED);
//   - date-times must be RFC 3339, progress must lie within 0..100 exactly
//     (not merely after rounding to float64), and level, when present, must
//     be one of the levels;
//   - the decoded value must pass the type's Validate.
//
// It is deliberately stricter than the schema where a payload is ambiguous
// (a repeated member name: readers disagree on which one counts), where
// Validate is (non-empty ids, kinds, codes, reasons and actions; a non-zero
// acceptedAt) and where a value does not fit the Go type: a schemaVersion
// written other than as a plain integer within int (1.0, 1e1), a date-time
// with a lowercase "t" or "z" or a leap second, numbers beyond float64 in
// result, uiHints or interaction.
func DecodePayload(e TaskEvent) (Payload, error) {
	spec, ok := payloadSpecs[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalidEvent, e.Type)
	}
	members, err := payloadMembers(e.Payload)
	if err != nil {
		return nil, invalidPayload(e.Type, "%v", err)
	}
	if err := spec.checkMembers(e.Type, members); err != nil {
		return nil, err
	}
	p, err := spec.decode(e.Payload, members)
	if err != nil {
		return nil, invalidPayload(e.Type, "%v", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// payloadSpec is what DecodePayload knows of one payload type beyond its Go
// struct: the member names the schema defines, which of them may be null,
// which are required, and value rules that the struct decoding loses.
type payloadSpec struct {
	// fields maps each defined member name to whether it may be null; nil
	// means any member is allowed and may be null (TASK_COMPLETED).
	fields   map[string]bool
	required []string
	check    func(members map[string]json.RawMessage) error
	decode   func(raw []byte, members map[string]json.RawMessage) (Payload, error)
}

var payloadSpecs = map[EventType]payloadSpec{
	EventTaskStarted:  structSpec[StartedPayload](nil, nil),
	EventTaskProgress: structSpec[ProgressPayload]([]string{"progress"}, checkProgress),
	EventTaskMessage:  structSpec[MessagePayload]([]string{"message"}, checkLevel),
	EventTaskSuspended: structSpec[SuspendedPayload](
		[]string{"suspendId", "kind", "reasonCode", "allowedActions", "schemaVersion"},
		checkDateTimes("expiresAt"), "expiresAt"),
	EventTaskActionAccepted: structSpec[ActionAcceptedPayload](
		[]string{"suspendId", "clientActionId", "actionType", "acceptedAt"},
		checkDateTimes("acceptedAt")),
	EventTaskCompleted: {
		required: []string{"result"},
		// Only "result" is decoded, by its exact name, so that an extra
		// "Result" member cannot replace it.
		decode: func(_ []byte, members map[string]json.RawMessage) (Payload, error) {
			var p CompletedPayload
			if err := json.Unmarshal(members["result"], &p.Result); err != nil {
				return nil, fmt.Errorf("result: %w", err)
			}
			return p, nil
		},
	},
	EventTaskFailed:    structSpec[FailedPayload]([]string{"code", "message", "retryable"}, nil),
	EventTaskCancelled: structSpec[CancelledPayload]([]string{"reason"}, nil),
}

// structSpec derives a payloadSpec from the JSON tags of payload struct P.
func structSpec[P Payload](required []string, check func(map[string]json.RawMessage) error, nullable ...string) payloadSpec {
	fields := map[string]bool{}
	rt := reflect.TypeFor[P]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		fields[name] = false
	}
	for _, n := range nullable {
		fields[n] = true
	}
	return payloadSpec{
		fields:   fields,
		required: required,
		check:    check,
		decode: func(raw []byte, _ map[string]json.RawMessage) (Payload, error) {
			var p P
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				return nil, err
			}
			return p, nil
		},
	}
}

func (s payloadSpec) checkMembers(t EventType, members map[string]json.RawMessage) error {
	if s.fields != nil {
		names := make([]string, 0, len(members))
		for n := range members {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			nullable, known := s.fields[n]
			if !known {
				return invalidPayload(t, "unknown field %q", n)
			}
			if !nullable && isJSONNull(members[n]) {
				return invalidPayload(t, "%s must not be null", n)
			}
		}
	}
	for _, n := range s.required {
		if _, ok := members[n]; !ok {
			return invalidPayload(t, "%s is required", n)
		}
	}
	if s.check != nil {
		if err := s.check(members); err != nil {
			return invalidPayload(t, "%v", err)
		}
	}
	return nil
}

// payloadMembers splits a payload into its top-level members. It fails
// unless raw is a single JSON object whose member names are all distinct.
func payloadMembers(raw []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(raw) {
		return nil, errors.New("payload is not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("payload is not a JSON object")
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("member %q is repeated", truncate(name, 64))
		}
		members[name] = v
	}
	return members, nil
}

func isJSONNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// checkProgress checks progress against 0..100 on its exact decimal value:
// decoding to float64 rounds -1e-400 to -0 and 100.00000000000000001 to 100,
// both of which the schema rejects. Non-numbers are left to the decoder.
func checkProgress(members map[string]json.RawMessage) error {
	s := string(bytes.TrimSpace(members["progress"]))
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil
	}
	switch f {
	case 0:
		if mantissa, _, _ := strings.Cut(strings.ToLower(s), "e"); strings.HasPrefix(s, "-") &&
			strings.ContainsAny(mantissa, "123456789") {
			return fmt.Errorf("progress %s is below 0", truncate(s, 32))
		}
	case 100:
		// f == 100 bounds the exponent by the literal's length, so this
		// exact comparison is cheap.
		r, ok := new(big.Rat).SetString(s)
		if !ok || r.Cmp(big.NewRat(100, 1)) > 0 {
			return fmt.Errorf("progress %s is above 100", truncate(s, 32))
		}
	}
	return nil
}

// checkLevel rejects an explicit empty level, which Validate treats as
// "unset" but the schema's enum does not allow.
func checkLevel(members map[string]json.RawMessage) error {
	if raw, ok := members["level"]; ok && string(bytes.TrimSpace(raw)) == `""` {
		return errors.New(`level "" is not info, warning or debug`)
	}
	return nil
}

// checkDateTimes checks that the named members, when present and not null,
// are RFC 3339 date-times as the schema's "date-time" format defines them.
// time.Time's decoder alone is more lenient (it accepts "T1:00:00Z",
// "00:00:00,5Z" and offsets such as +24:00).
func checkDateTimes(names ...string) func(map[string]json.RawMessage) error {
	return func(members map[string]json.RawMessage) error {
		for _, n := range names {
			raw, ok := members[n]
			if !ok || isJSONNull(raw) {
				continue
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			if !validDateTime(s) {
				return fmt.Errorf("%s %q is not an RFC 3339 date-time", n, truncate(s, 64))
			}
		}
		return nil
	}
}

var dateTimePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))$`)

// validDateTime reports whether s is an RFC 3339 date-time that time.Parse
// can represent (so no leap second, and an uppercase "T" and "Z").
func validDateTime(s string) bool {
	m := dateTimePattern.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	if m[1] != "" && (m[1] > "23" || m[2] > "59") {
		return false
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}
