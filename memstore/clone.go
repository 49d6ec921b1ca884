package memstore

import (
	"encoding/json"
	"slices"

	"github.com/taskbridge-go/taskbridge"
)

// cloneBytes copies b; nil stays nil.
func cloneBytes(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage{}, b...)
}

// clonePayloads gives the events' payloads fresh backing memory: one buffer
// for all of them, each payload capped so that appending to one cannot
// overwrite the next.
func clonePayloads(evs []taskbridge.TaskEvent) {
	total := 0
	for i := range evs {
		total += len(evs[i].Payload)
	}
	buf := make([]byte, total)
	off := 0
	for i := range evs {
		p := evs[i].Payload
		if p == nil {
			continue
		}
		end := off + copy(buf[off:], p)
		evs[i].Payload = buf[off:end:end]
		off = end
	}
}

func cloneTask(t taskbridge.Task) taskbridge.Task {
	t.Input = cloneBytes(t.Input)
	t.Metadata = cloneBytes(t.Metadata)
	t.Attachments = slices.Clone(t.Attachments)
	return t
}

func cloneReceipt(r taskbridge.ActionReceipt) taskbridge.ActionReceipt {
	r.Payload = cloneBytes(r.Payload)
	r.Metadata = cloneBytes(r.Metadata)
	return r
}

func cloneSuspension(s taskbridge.Suspension) taskbridge.Suspension {
	s.AllowedActions = slices.Clone(s.AllowedActions)
	if s.ExpiresAt != nil {
		at := *s.ExpiresAt
		s.ExpiresAt = &at
	}
	s.UIHints = cloneMap(s.UIHints)
	s.Interaction = cloneMap(s.Interaction)
	return s
}

// cloneMap deep-copies a JSON-like map: nested map[string]any, []any,
// []string, map[string]string and json.RawMessage values are copied; other
// values (strings, numbers, booleans, and any other type) are kept as they
// are.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneMap(v)
	case []any:
		if v == nil {
			return v
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	case []string:
		return slices.Clone(v)
	case map[string]string:
		if v == nil {
			return v
		}
		out := make(map[string]string, len(v))
		for k, e := range v {
			out[k] = e
		}
		return out
	case json.RawMessage:
		return cloneBytes(v)
	}
	return v
}
