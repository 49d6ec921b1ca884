package taskbridge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

// wireEventTypes lists the eight event types in a fixed order (the fuzz
// target selects one by index).
var wireEventTypes = []taskbridge.EventType{
	taskbridge.EventTaskStarted, taskbridge.EventTaskProgress, taskbridge.EventTaskMessage,
	taskbridge.EventTaskSuspended, taskbridge.EventTaskActionAccepted,
	taskbridge.EventTaskCompleted, taskbridge.EventTaskFailed, taskbridge.EventTaskCancelled,
}

// wireEnvelope embeds a payload (valid JSON) in an otherwise valid event.
func wireEnvelope(typ taskbridge.EventType, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"type":`)
	b.WriteString(strconv.Quote(string(typ)))
	b.WriteString(`,"taskId":"task-1","eventId":"1","createdAt":"2026-05-04T12:00:00Z","payload":`)
	b.Write(payload)
	b.WriteString(`}`)
	return b.Bytes()
}

// wirePayloadRule is what task_event.schema.json says about one type's
// payload.
type wirePayloadRule struct {
	required   []string
	properties []string
	additional bool
}

// wireSchemaRules reads the per-type payload rules from the schema file
// itself, so that the strictness tests follow the contract, not the code.
func wireSchemaRules(t *testing.T) map[taskbridge.EventType]wirePayloadRule {
	t.Helper()
	raw, err := os.ReadFile(protocoltest.Path("schemas", "task_event.schema.json"))
	require.NoError(t, err)
	var schema struct {
		AllOf []struct {
			If struct {
				Properties struct {
					Type struct {
						Const taskbridge.EventType `json:"const"`
					} `json:"type"`
				} `json:"properties"`
			} `json:"if"`
			Then struct {
				Properties struct {
					Payload struct {
						Required             []string                   `json:"required"`
						Properties           map[string]json.RawMessage `json:"properties"`
						AdditionalProperties bool                       `json:"additionalProperties"`
					} `json:"payload"`
				} `json:"properties"`
			} `json:"then"`
		} `json:"allOf"`
	}
	require.NoError(t, json.Unmarshal(raw, &schema))
	rules := map[taskbridge.EventType]wirePayloadRule{}
	for _, c := range schema.AllOf {
		p := c.Then.Properties.Payload
		rules[c.If.Properties.Type.Const] = wirePayloadRule{
			required: p.Required, properties: wireSortedKeys(p.Properties), additional: p.AdditionalProperties,
		}
	}
	require.Len(t, rules, 8)
	return rules
}

// wireValidPayloads are representative valid values of every payload type.
func wireValidPayloads() []taskbridge.Payload {
	at := time.Date(2026, 5, 5, 12, 0, 4, 123000000, time.UTC)
	later := time.Date(2026, 5, 6, 0, 0, 0, 0, time.FixedZone("", 2*3600))
	return []taskbridge.Payload{
		taskbridge.StartedPayload{},
		taskbridge.StartedPayload{Message: "Task started"},
		taskbridge.ProgressPayload{Progress: 0},
		taskbridge.ProgressPayload{Progress: 100, Stage: "done"},
		taskbridge.ProgressPayload{Progress: 33.333, Stage: "inference", Message: "Running"},
		taskbridge.ProgressPayload{Progress: math.Copysign(0, -1)},
		taskbridge.MessagePayload{Message: ""},
		taskbridge.MessagePayload{Message: "hello", Level: taskbridge.LevelInfo},
		taskbridge.MessagePayload{Message: "careful", Level: taskbridge.LevelWarning},
		taskbridge.MessagePayload{Message: "trace", Level: taskbridge.LevelDebug},
		taskbridge.SuspendedPayload{
			SuspendID: "s1", Kind: taskbridge.KindUserActionRequired, ReasonCode: "clarification_required",
			AllowedActions: []string{"submit_form"}, SchemaVersion: 1,
		},
		taskbridge.SuspendedPayload{
			SuspendID: "s2", Kind: taskbridge.KindExternalConfirmationPending, ReasonCode: "payment",
			AllowedActions: []string{"confirm", "cancel"}, SchemaVersion: 3, ExpiresAt: &later,
			UIHints:     map[string]any{"presentation": "dialog"},
			Interaction: map[string]any{"question": "Continue?", "options": []any{"yes", "no"}},
		},
		taskbridge.SuspendedPayload{
			SuspendID: "s3", Kind: taskbridge.KindSystemPaused, ReasonCode: "maintenance",
			AllowedActions: []string{"resume"}, SchemaVersion: 1, UIHints: map[string]any{},
		},
		taskbridge.ActionAcceptedPayload{SuspendID: "s1", ClientActionID: "c1", ActionType: "submit_form", AcceptedAt: at},
		taskbridge.ActionAcceptedPayload{
			SuspendID: "s1", ClientActionID: "c1", ActionType: "submit_form", AcceptedAt: later, Message: "thanks",
		},
		taskbridge.CompletedPayload{},
		taskbridge.CompletedPayload{Result: map[string]any{"label": "quartz", "confidence": 0.82}},
		taskbridge.CompletedPayload{Result: []int{1, 2, 3}},
		taskbridge.CompletedPayload{Result: "text"},
		taskbridge.CompletedPayload{Result: json.RawMessage(`{"raw":true}`)},
		taskbridge.FailedPayload{Code: "TASK_EXECUTION_FAILED", Message: "boom", Retryable: true},
		taskbridge.FailedPayload{Code: "E", Message: ""},
		taskbridge.CancelledPayload{Reason: "cancelled_by_user"},
		taskbridge.CancelledPayload{Reason: "timeout", Message: "Took too long"},
	}
}

func TestEncodePayloadProducesSchemaValidEvents(t *testing.T) {
	t.Parallel()
	seen := map[taskbridge.EventType]bool{}
	for i, p := range wireValidPayloads() {
		t.Run(fmt.Sprintf("%d_%s", i, p.EventType()), func(t *testing.T) {
			require.NoError(t, p.Validate())
			raw, err := taskbridge.EncodePayload(p)
			require.NoError(t, err)
			ev := taskbridge.TaskEvent{
				Type: p.EventType(), TaskID: "task-1", EventID: taskbridge.FormatEventID(int64(i + 1)),
				CreatedAt: time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC), Payload: raw,
			}
			b, err := json.Marshal(ev)
			require.NoError(t, err)
			protocoltest.ValidateEvent(t, b)

			// And the payload decodes back to an equivalent value.
			back, err := taskbridge.DecodePayload(ev)
			require.NoError(t, err)
			require.IsType(t, p, back)
			again, err := taskbridge.EncodePayload(back)
			require.NoError(t, err)
			requireWireEqual(t, raw, again)
		})
		seen[p.EventType()] = true
	}
	require.Len(t, seen, 8)
}

func TestEncodePayloadOmitsUnsetOptionalMembers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    taskbridge.Payload
		want string
	}{
		{taskbridge.StartedPayload{}, `{}`},
		{taskbridge.ProgressPayload{Progress: 5}, `{"progress":5}`},
		{taskbridge.MessagePayload{Message: "m"}, `{"message":"m"}`},
		{taskbridge.CompletedPayload{}, `{"result":null}`},
		{taskbridge.FailedPayload{Code: "E"}, `{"code":"E","message":"","retryable":false}`},
		{taskbridge.CancelledPayload{Reason: "r"}, `{"reason":"r"}`},
		{taskbridge.SuspendedPayload{
			SuspendID: "s", Kind: taskbridge.KindSystemPaused, ReasonCode: "r", AllowedActions: []string{"a"}, SchemaVersion: 1,
		}, `{"suspendId":"s","kind":"SYSTEM_PAUSED","reasonCode":"r","allowedActions":["a"],"schemaVersion":1}`},
	} {
		raw, err := taskbridge.EncodePayload(tc.p)
		require.NoError(t, err)
		require.JSONEq(t, tc.want, string(raw))
	}
}

func TestPayloadValidateRejectsInvalidValues(t *testing.T) {
	t.Parallel()
	suspended := func(edit func(p *taskbridge.SuspendedPayload)) taskbridge.SuspendedPayload {
		p := taskbridge.SuspendedPayload{
			SuspendID: "s1", Kind: taskbridge.KindUserActionRequired, ReasonCode: "r",
			AllowedActions: []string{"a"}, SchemaVersion: 1,
		}
		edit(&p)
		return p
	}
	accepted := func(edit func(p *taskbridge.ActionAcceptedPayload)) taskbridge.ActionAcceptedPayload {
		p := taskbridge.ActionAcceptedPayload{SuspendID: "s1", ClientActionID: "c1", ActionType: "a", AcceptedAt: time.Now()}
		edit(&p)
		return p
	}
	cases := map[string]taskbridge.Payload{
		"progress -1":              taskbridge.ProgressPayload{Progress: -1},
		"progress -0.001":          taskbridge.ProgressPayload{Progress: -0.001},
		"progress 100.5":           taskbridge.ProgressPayload{Progress: 100.5},
		"progress NaN":             taskbridge.ProgressPayload{Progress: math.NaN()},
		"progress +Inf":            taskbridge.ProgressPayload{Progress: math.Inf(1)},
		"progress -Inf":            taskbridge.ProgressPayload{Progress: math.Inf(-1)},
		"level error":              taskbridge.MessagePayload{Message: "m", Level: "error"},
		"level INFO":               taskbridge.MessagePayload{Message: "m", Level: "INFO"},
		"suspended nil actions":    suspended(func(p *taskbridge.SuspendedPayload) { p.AllowedActions = nil }),
		"suspended no actions":     suspended(func(p *taskbridge.SuspendedPayload) { p.AllowedActions = []string{} }),
		"suspended empty action":   suspended(func(p *taskbridge.SuspendedPayload) { p.AllowedActions = []string{"a", ""} }),
		"suspended no kind":        suspended(func(p *taskbridge.SuspendedPayload) { p.Kind = "" }),
		"suspended unknown kind":   suspended(func(p *taskbridge.SuspendedPayload) { p.Kind = "PAUSED" }),
		"suspended no reason":      suspended(func(p *taskbridge.SuspendedPayload) { p.ReasonCode = "" }),
		"suspended no suspendId":   suspended(func(p *taskbridge.SuspendedPayload) { p.SuspendID = "" }),
		"suspended schemaVersion0": suspended(func(p *taskbridge.SuspendedPayload) { p.SchemaVersion = 0 }),
		"suspended schemaVersion-": suspended(func(p *taskbridge.SuspendedPayload) { p.SchemaVersion = -1 }),
		"accepted no suspendId":    accepted(func(p *taskbridge.ActionAcceptedPayload) { p.SuspendID = "" }),
		"accepted no action id":    accepted(func(p *taskbridge.ActionAcceptedPayload) { p.ClientActionID = "" }),
		"accepted no action type":  accepted(func(p *taskbridge.ActionAcceptedPayload) { p.ActionType = "" }),
		"accepted zero time":       accepted(func(p *taskbridge.ActionAcceptedPayload) { p.AcceptedAt = time.Time{} }),
		"completed unencodable":    taskbridge.CompletedPayload{Result: func() {}},
		"completed NaN":            taskbridge.CompletedPayload{Result: math.NaN()},
		"completed bad raw":        taskbridge.CompletedPayload{Result: json.RawMessage(`{`)},
		"failed no code":           taskbridge.FailedPayload{Message: "m"},
		"cancelled no reason":      taskbridge.CancelledPayload{Message: "m"},
	}
	for name, p := range cases {
		err := p.Validate()
		require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, name)
		require.Contains(t, err.Error(), string(p.EventType()), name)
		raw, err := taskbridge.EncodePayload(p)
		require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, name)
		require.Nil(t, raw, name)
	}
	_, err := taskbridge.EncodePayload(nil)
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)

	// A value Validate cannot see is still refused by EncodePayload.
	_, err = taskbridge.EncodePayload(suspended(func(p *taskbridge.SuspendedPayload) {
		p.UIHints = map[string]any{"bad": math.Inf(1)}
	}))
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
	year10k := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = taskbridge.EncodePayload(accepted(func(p *taskbridge.ActionAcceptedPayload) { p.AcceptedAt = year10k }))
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
}

func TestDecodePayloadIsStrict(t *testing.T) {
	t.Parallel()
	rules := wireSchemaRules(t)
	fixtures := protocoltest.Fixtures(t)
	for _, typ := range wireEventTypes {
		rule := rules[typ]
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal(fixtures["task_"+strings.ToLower(strings.TrimPrefix(string(typ), "TASK_"))], &ev))
		// A payload with every member the schema defines, valid values.
		var full map[string]any
		require.NoError(t, json.Unmarshal(ev.Payload, &full))
		fillOptional := map[string]any{
			"message": "m", "stage": "s", "level": "debug", "expiresAt": nil,
			"uiHints": map[string]any{}, "interaction": map[string]any{"q": "?"},
		}
		for _, name := range rule.properties {
			if _, ok := full[name]; !ok {
				full[name] = fillOptional[name]
			}
		}
		decode := func(m map[string]any) error {
			raw, err := json.Marshal(m)
			require.NoError(t, err)
			schemaErr := protocoltest.EventError(wireEnvelope(typ, raw))
			_, err = taskbridge.DecodePayload(taskbridge.TaskEvent{Type: typ, Payload: raw})
			if err != nil {
				require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
			} else {
				require.NoError(t, schemaErr, "DecodePayload accepted what the schema rejects: %s", raw)
			}
			return err
		}
		with := func(edit func(m map[string]any)) map[string]any {
			m := make(map[string]any, len(full))
			for k, v := range full {
				m[k] = v
			}
			edit(m)
			return m
		}

		t.Run(string(typ), func(t *testing.T) {
			require.NoError(t, decode(full), "all members set")

			for _, name := range rule.required {
				require.Error(t, decode(with(func(m map[string]any) { delete(m, name) })), "missing %s", name)
			}
			for _, name := range rule.properties {
				if !wireContains(rule.required, name) {
					require.NoError(t, decode(with(func(m map[string]any) { delete(m, name) })), "optional %s", name)
				}
			}

			extra := with(func(m map[string]any) { m["extra"] = "x" })
			if rule.additional {
				require.NoError(t, decode(extra), "extra members are allowed")
			} else {
				require.Error(t, decode(extra), "extra member")
				require.Error(t, decode(with(func(m map[string]any) { m["EXTRA"] = nil })))
			}

			for _, name := range rule.properties {
				// Member names are matched exactly: a case variant is an
				// extra member (encoding/json alone would accept it).
				variant := strings.ToUpper(name[:1]) + name[1:]
				err := decode(with(func(m map[string]any) { m[variant] = m[name] }))
				if rule.additional {
					require.NoError(t, err)
				} else {
					require.Error(t, err, "case variant %s", variant)
				}

				// null is only allowed where the schema allows it.
				nullable := name == "expiresAt" || typ == taskbridge.EventTaskCompleted
				err = decode(with(func(m map[string]any) { m[name] = nil }))
				if nullable {
					require.NoError(t, err, "%s: null", name)
				} else {
					require.Error(t, err, "%s: null", name)
				}
			}

			for _, bad := range []string{`null`, `[]`, `"x"`, `1`, ``, `{`, `{} {}`, `{"message":"a"} x`} {
				_, err := taskbridge.DecodePayload(taskbridge.TaskEvent{Type: typ, Payload: json.RawMessage(bad)})
				require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, "payload %q", bad)
			}
		})
	}

	_, err := taskbridge.DecodePayload(taskbridge.TaskEvent{Type: "TASK_PAUSED", Payload: json.RawMessage(`{}`)})
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
}

func wireContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestDecodePayloadEdgeCases(t *testing.T) {
	t.Parallel()
	decode := func(typ taskbridge.EventType, payload string) (taskbridge.Payload, error) {
		return taskbridge.DecodePayload(taskbridge.TaskEvent{Type: typ, Payload: json.RawMessage(payload)})
	}

	// The completed result is taken from "result" only, however the extra
	// members are spelled.
	p, err := decode(taskbridge.EventTaskCompleted, `{"result":{"a":1},"Result":2,"RESULT":3,"x":null}`)
	require.NoError(t, err)
	require.Equal(t, taskbridge.CompletedPayload{Result: map[string]any{"a": float64(1)}}, p)
	p, err = decode(taskbridge.EventTaskCompleted, `{"result":null}`)
	require.NoError(t, err)
	require.Equal(t, taskbridge.CompletedPayload{}, p)

	// Progress is checked on its exact value, not the rounded float64.
	for payload, ok := range map[string]bool{
		`{"progress":100}`:                     true,
		`{"progress":1e2}`:                     true,
		`{"progress":100.000}`:                 true,
		`{"progress":-0}`:                      true,
		`{"progress":-0.0e5}`:                  true,
		`{"progress":1e-400}`:                  true,
		`{"progress":99.99999999999999999999}`: true,
		`{"progress":100.00000000000000001}`:   false,
		`{"progress":1000000000000000001e-16}`: false,
		`{"progress":-1e-400}`:                 false,
		`{"progress":-0.00000000000000000001}`: false,
		`{"progress":1e400}`:                   false,
		`{"progress":"50"}`:                    false,
	} {
		_, err := decode(taskbridge.EventTaskProgress, payload)
		schemaErr := protocoltest.EventError(wireEnvelope(taskbridge.EventTaskProgress, []byte(payload)))
		if ok {
			require.NoError(t, err, payload)
			require.NoError(t, schemaErr, payload)
		} else {
			require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, payload)
			require.Error(t, schemaErr, payload)
		}
	}

	// An explicit empty level is not "unset".
	_, err = decode(taskbridge.EventTaskMessage, `{"message":"m","level":""}`)
	require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)

	// Date-times follow RFC 3339, not time.Time's more lenient parser.
	for _, at := range []string{
		"2026-05-05T1:00:04Z", "2026-05-05T12:00:04,5Z", "2026-05-05T12:00:04+24:00",
		"2026-05-05T12:00:04+05:60", "2026-05-05 12:00:04Z", "2026-02-30T00:00:00Z", "2026-05-05T12:00:04",
	} {
		payload := `{"suspendId":"s","clientActionId":"c","actionType":"a","acceptedAt":"` + at + `"}`
		_, err := decode(taskbridge.EventTaskActionAccepted, payload)
		require.ErrorIs(t, err, taskbridge.ErrInvalidEvent, at)
		require.Error(t, protocoltest.EventError(wireEnvelope(taskbridge.EventTaskActionAccepted, []byte(payload))), at)
	}
	p, err = decode(taskbridge.EventTaskSuspended,
		`{"suspendId":"s","kind":"SYSTEM_PAUSED","reasonCode":"r","allowedActions":["a"],"schemaVersion":1,"expiresAt":"2026-05-05T12:00:04.5-03:30"}`)
	require.NoError(t, err)
	want := time.Date(2026, 5, 5, 15, 30, 4, 500000000, time.UTC)
	require.True(t, p.(taskbridge.SuspendedPayload).ExpiresAt.Equal(want))

	// Decoded payloads are values, ready for a type switch.
	p, err = decode(taskbridge.EventTaskStarted, `{}`)
	require.NoError(t, err)
	_, ok := p.(taskbridge.StartedPayload)
	require.True(t, ok)
}

// wireDeliberatelyStricter says why DecodePayload may reject a payload that
// the schema accepts, or "" if it has no documented reason to. These are the
// places where the Go API is stricter than the JSON Schema on purpose:
//   - a member name must not be repeated (the schema validator, like
//     encoding/json, silently keeps the last one; other readers may not);
//   - ids, codes and reasons must be non-empty (suspendId, reasonCode,
//     clientActionId, actionType, code, reason, every allowed action);
//   - acceptedAt must not be the zero time;
//   - values must fit the Go types: schemaVersion as a plain int literal
//     (the schema also accepts 1.0 and 1e0), date-times without leap seconds
//     or lowercase "t"/"z", numbers in result/uiHints/interaction within
//     float64 range.
func wireDeliberatelyStricter(typ taskbridge.EventType, payload []byte) string {
	if wireHasRepeatedMember(payload) {
		return "repeated member name"
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return ""
	}
	nonEmpty := map[taskbridge.EventType][]string{
		taskbridge.EventTaskSuspended:      {"suspendId", "reasonCode"},
		taskbridge.EventTaskActionAccepted: {"suspendId", "clientActionId", "actionType"},
		taskbridge.EventTaskFailed:         {"code"},
		taskbridge.EventTaskCancelled:      {"reason"},
	}
	for _, n := range nonEmpty[typ] {
		if m[n] == "" {
			return "empty " + n
		}
	}
	switch typ {
	case taskbridge.EventTaskSuspended:
		if actions, ok := m["allowedActions"].([]any); ok && wireContains(wireAnyStrings(actions), "") {
			return "empty action"
		}
		if n, ok := m["schemaVersion"].(json.Number); ok {
			if _, err := strconv.Atoi(string(n)); err != nil {
				return "schemaVersion " + string(n) + " is not a Go int literal"
			}
		}
		if s, ok := m["expiresAt"].(string); ok && wireGoLenientDate(s) != "" {
			return wireGoLenientDate(s)
		}
	case taskbridge.EventTaskActionAccepted:
		if s, ok := m["acceptedAt"].(string); ok {
			if r := wireGoLenientDate(s); r != "" {
				return r
			}
			if at, err := time.Parse(time.RFC3339Nano, s); err == nil && at.IsZero() {
				return "zero acceptedAt"
			}
		}
	}
	if wireOutOfFloat64(m) {
		return "number beyond float64"
	}
	return ""
}

// wireHasRepeatedMember reports whether a JSON object repeats a top-level
// member name.
func wireHasRepeatedMember(payload []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		name, _ := tok.(string)
		if seen[name] {
			return true
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}

// wireGoLenientDate reports the RFC 3339 features time.Parse does not support.
func wireGoLenientDate(s string) string {
	switch {
	case len(s) > 10 && s[10] == 't', strings.HasSuffix(s, "z"):
		return "lowercase t/z in date-time"
	case len(s) >= 19 && s[17:19] == "60":
		return "leap second"
	}
	return ""
}

func wireAnyStrings(vs []any) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func wireOutOfFloat64(v any) bool {
	switch v := v.(type) {
	case json.Number:
		_, err := strconv.ParseFloat(string(v), 64)
		return err != nil
	case []any:
		for _, e := range v {
			if wireOutOfFloat64(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if wireOutOfFloat64(e) {
				return true
			}
		}
	}
	return false
}

// wireAgreement is the outcome of one agreement check.
type wireAgreement int

const (
	wireBothAccept wireAgreement = iota
	wireBothReject
	wireStricter
)

// wireCheckAgreement checks DecodePayload against the JSON Schema on one
// payload (valid JSON): DecodePayload must never accept what the schema
// rejects, and may reject what the schema accepts only for a documented
// reason (wireDeliberatelyStricter). An accepted payload must also survive
// EncodePayload and still be valid.
func wireCheckAgreement(t *testing.T, typ taskbridge.EventType, payload []byte) wireAgreement {
	t.Helper()
	p, decErr := taskbridge.DecodePayload(taskbridge.TaskEvent{Type: typ, Payload: payload})
	schemaErr := protocoltest.EventError(wireEnvelope(typ, payload))
	switch {
	case decErr == nil && schemaErr != nil:
		t.Fatalf("%s: DecodePayload accepts a payload the schema rejects: %s\nschema: %v", typ, payload, schemaErr)
	case decErr != nil:
		require.ErrorIs(t, decErr, taskbridge.ErrInvalidEvent)
		if schemaErr == nil {
			if reason := wireDeliberatelyStricter(typ, payload); reason != "" {
				return wireStricter
			}
			t.Fatalf("%s: the schema accepts a payload DecodePayload rejects with no documented reason: %s\nDecodePayload: %v",
				typ, payload, decErr)
		}
		return wireBothReject
	}
	require.Equal(t, typ, p.EventType())
	again, err := taskbridge.EncodePayload(p)
	require.NoError(t, err, "%s: re-encoding decoded %s", typ, payload)
	require.NoError(t, protocoltest.EventError(wireEnvelope(typ, again)), "%s: re-encoded %s", typ, again)
	return wireBothAccept
}

// Value pools for the payload generator: JSON literals, the first list
// mostly valid, the second mostly not (the schema is the judge either way).
var (
	wireStrings    = []string{`"x"`, `"submit_form"`, `"ünï ☃"`, `"with \"quotes\""`, `"\u0000"`, `"a\nb"`}
	wireBadStrings = []string{`""`, `null`, `1`, `true`, `[]`, `{}`, `["x"]`}
	wireDates      = []string{
		`"2026-05-05T12:00:04Z"`, `"2026-05-05T12:00:04.123456789+02:00"`, `"2026-05-05T12:00:04.1-11:30"`,
		`"9999-12-31T23:59:59.999Z"`, `"2024-02-29T00:00:00Z"`, `"2026-05-05T23:59:59.1234567891234Z"`,
	}
	wireBadDates = []string{
		`"0001-01-01T00:00:00Z"`, `"2026-05-05t12:00:04z"`, `"2026-12-31T23:59:60Z"`, `"2026-05-05T12:00:60Z"`,
		`"2026-05-05T1:00:04Z"`, `"2026-05-05T12:00:04,5Z"`, `"2026-05-05T12:00:04+24:00"`,
		`"2026-05-05T12:00:04+05:60"`, `"2026-02-30T00:00:00Z"`, `"2023-02-29T00:00:00Z"`, `"2026-05-05"`,
		`"2026-05-05T12:00:04"`, `"2026-05-05T12:00:04.Z"`, `"2026-05-05 12:00:04Z"`, `"20260505T120004Z"`,
		`"2026-05-05T12:00:04+0200"`, `"2026-13-05T12:00:04Z"`, `"2026-05-05T24:00:00Z"`, `null`, `1`, `""`,
	}
	wireObjects    = []string{`{}`, `{"a":1}`, `{"presentation":"dialog","n":[1,2.5,null]}`}
	wireBadObjects = []string{`{"n":1e400}`, `[]`, `null`, `"x"`, `1`}
)

type wireGenField struct {
	name        string
	good, bad   []string
	probPresent float64
}

func wireField(name string, good, bad []string) wireGenField {
	return wireGenField{name: name, good: good, bad: bad, probPresent: 0.9}
}

var wireGenFields = map[taskbridge.EventType][]wireGenField{
	taskbridge.EventTaskStarted: {wireField("message", wireStrings, wireBadStrings)},
	taskbridge.EventTaskProgress: {
		wireField("progress",
			[]string{`0`, `-0`, `100`, `100.0`, `1e2`, `50.5`, `1e-400`, `99.99999999999999999`, `0.0000`, `33.333333333333333333`},
			[]string{`-1`, `101`, `100.00000000000000001`, `-1e-400`, `1e400`, `-0.0000001`, `"50"`, `null`, `true`, `[50]`}),
		wireField("stage", wireStrings, wireBadStrings),
		wireField("message", wireStrings, wireBadStrings),
	},
	taskbridge.EventTaskMessage: {
		wireField("message", wireStrings, wireBadStrings),
		wireField("level", []string{`"info"`, `"warning"`, `"debug"`}, []string{`""`, `"INFO"`, `"error"`, `null`, `1`}),
	},
	taskbridge.EventTaskSuspended: {
		wireField("suspendId", wireStrings, wireBadStrings),
		wireField("kind", []string{`"USER_ACTION_REQUIRED"`, `"EXTERNAL_CONFIRMATION_PENDING"`, `"SYSTEM_PAUSED"`},
			[]string{`""`, `"PAUSED"`, `"system_paused"`, `null`, `1`}),
		wireField("reasonCode", wireStrings, wireBadStrings),
		wireField("allowedActions", []string{`["a"]`, `["a","b"]`, `["submit_form","cancel","a"]`},
			[]string{`[]`, `[""]`, `[null]`, `[1]`, `"a"`, `null`, `["a",""]`, `{}`}),
		wireField("schemaVersion", []string{`1`, `2`, `2147483647`},
			[]string{`0`, `-1`, `1.0`, `1e0`, `2E1`, `1.5`, `99999999999999999999`, `"1"`, `null`, `true`}),
		wireField("expiresAt", append([]string{`null`}, wireDates...), wireBadDates),
		wireField("uiHints", wireObjects, wireBadObjects),
		wireField("interaction", wireObjects, wireBadObjects),
	},
	taskbridge.EventTaskActionAccepted: {
		wireField("suspendId", wireStrings, wireBadStrings),
		wireField("clientActionId", wireStrings, wireBadStrings),
		wireField("actionType", wireStrings, wireBadStrings),
		wireField("acceptedAt", wireDates, wireBadDates),
		wireField("message", wireStrings, wireBadStrings),
	},
	taskbridge.EventTaskCompleted: {
		wireField("result",
			[]string{`null`, `1`, `{"a":[1,2]}`, `"s"`, `[]`, `true`, `{"label":"quartz","confidence":0.82}`},
			[]string{`1e400`, `{"n":-1e400}`, `[1e999]`}),
	},
	taskbridge.EventTaskFailed: {
		wireField("code", wireStrings, wireBadStrings),
		wireField("message", wireStrings, wireBadStrings),
		wireField("retryable", []string{`true`, `false`}, []string{`null`, `0`, `"true"`, `[]`}),
	},
	taskbridge.EventTaskCancelled: {
		wireField("reason", wireStrings, wireBadStrings),
		wireField("message", wireStrings, wireBadStrings),
	},
}

// wireGenPayload generates one payload (valid JSON) for typ.
func wireGenPayload(r *rand.Rand, typ taskbridge.EventType) []byte {
	pick := func(vs []string) string { return vs[r.IntN(len(vs))] }
	if r.Float64() < 0.03 {
		return []byte(pick([]string{`null`, `[]`, `"x"`, `1`, `[{}]`}))
	}
	fields := wireGenFields[typ]
	var members []string
	add := func(name, value string) { members = append(members, strconv.Quote(name)+":"+value) }
	value := func(f wireGenField) string {
		if r.Float64() < 0.85 {
			return pick(f.good)
		}
		return pick(append(append([]string{}, f.bad...), wireBadStrings...))
	}
	for _, f := range fields {
		if r.Float64() < f.probPresent {
			add(f.name, value(f))
		}
	}
	if r.Float64() < 0.08 {
		f := fields[r.IntN(len(fields))]
		variants := []string{"extra", strings.ToUpper(f.name[:1]) + f.name[1:], strings.ToUpper(f.name), f.name + " "}
		add(pick(variants), value(f))
	}
	if r.Float64() < 0.04 {
		f := fields[r.IntN(len(fields))]
		add(f.name, value(f)) // duplicate member: the last one wins
	}
	r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	return []byte("{" + strings.Join(members, ",") + "}")
}

// TestDecodePayloadAgreesWithSchema runs the agreement property over a
// deterministic stream of generated payloads for every event type.
func TestDecodePayloadAgreesWithSchema(t *testing.T) {
	t.Parallel()
	const perType = 1000
	for i, typ := range wireEventTypes {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(20260504, uint64(i)))
			counts := map[wireAgreement]int{}
			for range perType {
				payload := wireGenPayload(r, typ)
				require.True(t, json.Valid(payload), "%s", payload)
				counts[wireCheckAgreement(t, typ, payload)]++
			}
			// The generator must exercise both sides of the property.
			require.Greater(t, counts[wireBothAccept], perType/10, "accepted: %v", counts)
			require.Greater(t, counts[wireBothReject], perType/10, "rejected: %v", counts)
		})
	}
}

// FuzzDecodePayload checks the agreement property on arbitrary payloads. Its
// seed corpus (the protocol fixtures and edge cases) runs in plain go test.
func FuzzDecodePayload(f *testing.F) {
	names, err := protocoltest.EventFixtureNames()
	if err != nil {
		f.Fatal(err)
	}
	index := map[taskbridge.EventType]uint8{}
	for i, typ := range wireEventTypes {
		index[typ] = uint8(i)
	}
	for _, name := range names {
		raw, err := os.ReadFile(protocoltest.Path("examples", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		var ev taskbridge.TaskEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			f.Fatal(err)
		}
		f.Add(index[ev.Type], string(ev.Payload))
	}
	f.Add(uint8(0), `{"Message":"x"}`)
	f.Add(uint8(1), `{"progress":100.00000000000000001}`)
	f.Add(uint8(1), `{"progress":-1e-400}`)
	f.Add(uint8(2), `{"message":"m","level":""}`)
	f.Add(uint8(3), `{"suspendId":"s","kind":"SYSTEM_PAUSED","reasonCode":"r","allowedActions":["a"],"schemaVersion":1.0}`)
	f.Add(uint8(4), `{"suspendId":"s","clientActionId":"c","actionType":"a","acceptedAt":"2026-05-05T1:00:04Z"}`)
	f.Add(uint8(5), `{"result":1,"Result":2}`)
	f.Add(uint8(6), `{"code":"E","message":"m","retryable":null}`)
	f.Add(uint8(7), `null`)
	f.Fuzz(func(t *testing.T, typIndex uint8, payload string) {
		typ := wireEventTypes[int(typIndex)%len(wireEventTypes)]
		if !json.Valid([]byte(payload)) {
			_, err := taskbridge.DecodePayload(taskbridge.TaskEvent{Type: typ, Payload: json.RawMessage(payload)})
			require.ErrorIs(t, err, taskbridge.ErrInvalidEvent)
			return
		}
		wireCheckAgreement(t, typ, []byte(payload))
	})
}

func ExampleEncodePayload() {
	raw, err := taskbridge.EncodePayload(taskbridge.ProgressPayload{Progress: 40, Stage: "upload"})
	fmt.Println(string(raw), err)

	_, err = taskbridge.EncodePayload(taskbridge.ProgressPayload{Progress: 140})
	fmt.Println(errors.Is(err, taskbridge.ErrInvalidEvent))
	// Output:
	// {"progress":40,"stage":"upload"} <nil>
	// true
}

func ExampleDecodePayload() {
	ev := taskbridge.TaskEvent{
		Type:    taskbridge.EventTaskFailed,
		Payload: json.RawMessage(`{"code":"E42","message":"boom","retryable":true}`),
	}
	p, err := taskbridge.DecodePayload(ev)
	if err != nil {
		fmt.Println(err)
		return
	}
	if failed, ok := p.(taskbridge.FailedPayload); ok {
		fmt.Println(failed.Code, failed.Retryable)
	}

	// Member names must match exactly.
	_, err = taskbridge.DecodePayload(taskbridge.TaskEvent{
		Type:    taskbridge.EventTaskMessage,
		Payload: json.RawMessage(`{"message":"hi","Level":"info"}`),
	})
	fmt.Println(err)
	// Output:
	// E42 true
	// taskbridge: invalid event: TASK_MESSAGE: unknown field "Level"
}
