package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

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

// Read implements [taskbridge.EventStore] with one round trip: the task's
// LastSeq and one XRANGE, pipelined. A limit below 1 fails with
// [taskbridge.ErrInvalidRequest].
//
// The two commands need not be atomic: events appended in between are
// after LastSeq and valid, and a trim in between shows as a first entry
// past the cursor, which is what retention means.
func (s *Store) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	if after < 0 {
		return nil, fmt.Errorf("%w: %d is not a position in task %q", taskbridge.ErrInvalidCursor, after, taskID)
	}
	start := "-"
	if after > 0 {
		start = strconv.FormatInt(after+1, 10) + "-0"
	}
	// Pipelined rather than a script: Redis does less work per read, and
	// reads are the most frequent call (every wake-up of every stream).
	var (
		last    *redis.StringCmd
		entries *redis.Cmd
	)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		last = p.HGet(ctx, s.k.task(taskID), "seq")
		entries = p.Do(ctx, "XRANGE", s.k.events(taskID), start, "+", "COUNT", limit)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.redisErr("read", err)
	}
	if errors.Is(last.Err(), redis.Nil) {
		return nil, taskNotFound(taskID)
	}
	lastSeq, err := last.Int64()
	if err != nil {
		return nil, fmt.Errorf("redisstore: read task %q: malformed seq: %w", taskID, err)
	}
	if after > lastSeq {
		return nil, fmt.Errorf("%w: %d is not a position in task %q (last event %d)", taskbridge.ErrInvalidCursor, after, taskID, lastSeq)
	}
	raw, _ := entries.Val().([]any)
	out := make([]taskbridge.TaskEvent, 0, len(raw))
	for _, e := range raw {
		ev, err := decodeEntry(taskID, e)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	if after > 0 && after < lastSeq && (len(out) == 0 || out[0].Seq > after+1) {
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: task %q has no events after %d left", taskbridge.ErrEventsExpired, taskID, after)
		}
		return nil, fmt.Errorf("%w: task %q keeps events from %d on", taskbridge.ErrEventsExpired, taskID, out[0].Seq)
	}
	return out, nil
}

// decodeEntry decodes one XRANGE entry [id, [field, value, ...]].
func decodeEntry(taskID string, e any) (taskbridge.TaskEvent, error) {
	entry, _ := e.([]any)
	if len(entry) != 2 {
		return taskbridge.TaskEvent{}, fmt.Errorf("redisstore: malformed stream entry in task %q", taskID)
	}
	id, _ := entry[0].(string)
	seq, err := strconv.ParseInt(id[:max(strings.IndexByte(id, '-'), 0)], 10, 64)
	if err != nil {
		return taskbridge.TaskEvent{}, fmt.Errorf("redisstore: malformed stream entry id %q in task %q", id, taskID)
	}
	ev := taskbridge.TaskEvent{TaskID: taskID, Seq: seq, EventID: taskbridge.FormatEventID(seq)}
	fields, _ := entry[1].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		value, _ := fields[i+1].(string)
		switch name {
		case "t":
			ev.Type = taskbridge.EventType(value)
		case "c":
			if ev.CreatedAt, err = parseTimeKey(value); err != nil {
				return taskbridge.TaskEvent{}, err
			}
		case "p":
			if value != "" {
				ev.Payload = json.RawMessage(value)
			}
		case "k":
			ev.IdempotencyKey = value
		}
	}
	return ev, nil
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
