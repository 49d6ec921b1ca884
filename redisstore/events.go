package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// appendFailure maps the failure replies of an appending script.
func appendFailure(op string, taskID string, et taskbridge.EventType, r reply) error {
	switch code := r.str(0); code {
	case "NOTFOUND":
		return taskNotFound(taskID)
	case "!T", "!I", "!U":
		return transitionError(taskID, r.str(1), et)
	}
	return unexpected(op, r)
}

// errUnexpected marks a script reply the store does not understand (a
// script of another version of the store, or a bug).
var errUnexpected = errors.New("redisstore: unexpected script reply")

func unexpected(op string, r reply) error {
	return fmt.Errorf("%w: %s: %v", errUnexpected, op, []any(r))
}

// withSeq returns ev with the position seq.
func withSeq(ev taskbridge.TaskEvent, seq string) (taskbridge.TaskEvent, error) {
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil {
		return taskbridge.TaskEvent{}, fmt.Errorf("redisstore: malformed seq %q", seq)
	}
	ev.Seq, ev.EventID = n, taskbridge.FormatEventID(n)
	return ev, nil
}

// Append implements [taskbridge.EventStore]. The sequence number, the
// stream entry, the task's status and the wake-up of every process's
// watchers (PUBLISH) are one script. An event with an IdempotencyKey
// already used in the task returns the stored event instead.
func (s *Store) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	if err := storecheck.Appendable(ev); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	args := s.k.taskArgs(ev.TaskID, s.eventArgs(ev)...)
	r, err := s.run(ctx, "append", appendScript, s.k.taskKeys(ev.TaskID), args...)
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	switch r.str(0) {
	case "OK":
		return withSeq(ev, r.str(1))
	case "DUP":
		return decodeStoredEvent(ev.TaskID, ev.IdempotencyKey, r.str(1))
	}
	return taskbridge.TaskEvent{}, appendFailure("append", ev.TaskID, ev.Type, r)
}

// decodeStoredEvent decodes an idempotency record "seq created type
// payload".
func decodeStoredEvent(taskID, key, rec string) (taskbridge.TaskEvent, error) {
	parts := strings.SplitN(rec, " ", 4)
	if len(parts) != 4 {
		return taskbridge.TaskEvent{}, fmt.Errorf("redisstore: malformed idempotency record of task %q", taskID)
	}
	at, err := parseTimeKey(parts[1])
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	ev := taskbridge.TaskEvent{Type: taskbridge.EventType(parts[2]), TaskID: taskID, CreatedAt: at, IdempotencyKey: key}
	if parts[3] != "" {
		ev.Payload = json.RawMessage(parts[3])
	}
	return withSeq(ev, parts[0])
}

// Read implements [taskbridge.EventStore] with one XRANGE, in a script
// that also checks the cursor against the task's LastSeq and the first
// retained entry. A limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	if after < 0 {
		return nil, fmt.Errorf("%w: %d is not a position in task %q", taskbridge.ErrInvalidCursor, after, taskID)
	}
	r, err := s.run(ctx, "read", readScript, []string{s.k.task(taskID), s.k.events(taskID)}, after, limit)
	if err != nil {
		return nil, err
	}
	switch r.str(0) {
	case "OK":
	case "NOTFOUND":
		return nil, taskNotFound(taskID)
	case "CURSOR":
		return nil, fmt.Errorf("%w: %d is not a position in task %q (last event %s)", taskbridge.ErrInvalidCursor, after, taskID, r.str(1))
	case "EXPIRED":
		return nil, fmt.Errorf("%w: task %q keeps events from %s on", taskbridge.ErrEventsExpired, taskID, r.str(1))
	default:
		return nil, unexpected("read", r)
	}
	const head, width = 2, 5
	out := make([]taskbridge.TaskEvent, (len(r)-head)/width)
	for i := range out {
		base := head + i*width
		id := r.str(base)
		seq, err := strconv.ParseInt(id[:max(strings.IndexByte(id, '-'), 0)], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redisstore: malformed stream entry id %q in task %q", id, taskID)
		}
		at, err := parseTimeKey(r.str(base + 2))
		if err != nil {
			return nil, err
		}
		ev := taskbridge.TaskEvent{
			Type: taskbridge.EventType(r.str(base + 1)), TaskID: taskID, EventID: taskbridge.FormatEventID(seq),
			CreatedAt: at, Seq: seq, IdempotencyKey: r.str(base + 4),
		}
		if p := r.str(base + 3); p != "" {
			ev.Payload = json.RawMessage(p)
		}
		out[i] = ev
	}
	return out, nil
}

// TrimEvents applies retention to one task: it removes every event of the
// task except the newest keepLast (keepLast >= 0), exactly (XTRIM MAXLEN
// =). Reads from a cursor older than the first kept event then fail with
// [taskbridge.ErrEventsExpired]; the task's LastSeq is unchanged and the
// next append continues the sequence.
func (s *Store) TrimEvents(ctx context.Context, taskID string, keepLast int) error {
	if keepLast < 0 {
		return invalidRequest("keepLast %d must not be negative", keepLast)
	}
	r, err := s.run(ctx, "trim events", trimScript, s.k.taskKeys(taskID), s.k.taskArgs(taskID, keepLast)...)
	if err != nil {
		return err
	}
	if r.str(0) == "NOTFOUND" {
		return taskNotFound(taskID)
	}
	return nil
}
