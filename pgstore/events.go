package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// Append implements [taskbridge.EventStore] in one statement (one round
// trip): the task row is locked, the state machine applied, the next Seq
// assigned and the watchers of every process notified through
// pg_notify on commit.
func (s *Store) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	if err := s.check(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	if err := storecheck.Appendable(ev); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return s.appendEvent(ctx, s.pool, ev)
}

// AppendTx is [Store.Append] inside the caller's transaction tx, so that an
// application writes its own rows and the task's event atomically (the
// outbox pattern). The event is visible, and watchers in every process are
// woken, once tx commits; nothing happens if it rolls back. The task row
// stays locked until then, so keep tx short.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	if err := s.check(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	if tx == nil {
		return taskbridge.TaskEvent{}, errors.New("pgstore: AppendTx needs a transaction")
	}
	if err := storecheck.Appendable(ev); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return s.appendEvent(ctx, tx, ev)
}

// appendEvent runs the append function for a checked event.
func (s *Store) appendEvent(ctx context.Context, q querier, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	var key any
	if ev.IdempotencyKey != "" {
		key = ev.IdempotencyKey
	}
	var (
		code, status, typ string
		seq               int64
		createdAt         *time.Time
		payload           []byte
	)
	err := q.QueryRow(ctx, s.q[qAppend], ev.TaskID, string(ev.Type), ev.CreatedAt, string(ev.Payload), key, s.maxEvents).
		Scan(&code, &seq, &status, &typ, &createdAt, &payload)
	if err != nil {
		if isCheckViolation(err) {
			return taskbridge.TaskEvent{}, fmt.Errorf("%w: %v", taskbridge.ErrInvalidEvent, err)
		}
		return taskbridge.TaskEvent{}, dbError("append", err)
	}
	switch code {
	case "ok":
		ev.Seq, ev.EventID = seq, taskbridge.FormatEventID(seq)
		return ev, nil
	case "duplicate":
		out := taskbridge.TaskEvent{
			Type: taskbridge.EventType(typ), TaskID: ev.TaskID, EventID: taskbridge.FormatEventID(seq),
			CreatedAt: createdAt.UTC(), Payload: jsonOrNil(payload), Seq: seq, IdempotencyKey: ev.IdempotencyKey,
		}
		return out, nil
	case "not_found":
		return taskbridge.TaskEvent{}, taskNotFound(ev.TaskID)
	case "refused":
		if _, err := taskbridge.NextStatus(taskbridge.TaskStatus(status), ev.Type); err != nil {
			return taskbridge.TaskEvent{}, err
		}
		return taskbridge.TaskEvent{}, fmt.Errorf("pgstore: append: the database refused %s in status %s, which taskbridge.NextStatus allows",
			ev.Type, status)
	}
	return taskbridge.TaskEvent{}, fmt.Errorf("pgstore: append: unexpected result %q", code)
}

// isCheckViolation reports whether err says that a value was not accepted
// by its column: invalid JSON, or a string with a NUL byte.
func isCheckViolation(err error) bool {
	var pe interface{ SQLState() string }
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.SQLState() {
	case "22P02", "22021", "22P05", "2200N":
		return true
	}
	return false
}

// Read implements [taskbridge.EventStore] in one statement. A limit below 1
// fails with [taskbridge.ErrInvalidRequest].
func (s *Store) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	if after < 0 {
		return nil, fmt.Errorf("%w: %d is not a position in task %q", taskbridge.ErrInvalidCursor, after, taskID)
	}
	rows, err := s.pool.Query(ctx, s.q[qRead], taskID, after, limit)
	if err != nil {
		return nil, dbError("read", err)
	}
	defer rows.Close()
	var (
		out         []taskbridge.TaskEvent
		last, first int64
		found       bool
	)
	for rows.Next() {
		var (
			seq       *int64
			typ, key  *string
			createdAt *time.Time
			payload   []byte
		)
		if err := rows.Scan(&last, &first, &seq, &typ, &createdAt, &payload, &key); err != nil {
			return nil, dbError("read", err)
		}
		found = true
		if seq == nil {
			continue
		}
		ev := taskbridge.TaskEvent{
			Type: taskbridge.EventType(*typ), TaskID: taskID, EventID: taskbridge.FormatEventID(*seq),
			CreatedAt: createdAt.UTC(), Payload: jsonOrNil(payload), Seq: *seq,
		}
		if key != nil {
			ev.IdempotencyKey = *key
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("read", err)
	}
	switch {
	case !found:
		return nil, taskNotFound(taskID)
	case after > last:
		return nil, fmt.Errorf("%w: %d is not a position in task %q (last event %d)", taskbridge.ErrInvalidCursor, after, taskID, last)
	case after > 0 && after < first-1:
		return nil, fmt.Errorf("%w: task %q keeps events from %d on", taskbridge.ErrEventsExpired, taskID, first)
	}
	return out, nil
}

// TrimEvents applies retention to one task: it removes every event of the
// task except the newest keepLast (keepLast >= 0). Reads from a cursor
// older than the first kept event then fail with
// [taskbridge.ErrEventsExpired]; the task's LastSeq is unchanged and the
// next append continues the sequence. Events appended with an idempotency
// key are kept out of sight, so that their keys keep deduplicating.
func (s *Store) TrimEvents(ctx context.Context, taskID string, keepLast int) error {
	if err := s.check(); err != nil {
		return err
	}
	if keepLast < 0 {
		return invalidRequest("keepLast %d must not be negative", keepLast)
	}
	var n int
	if err := s.pool.QueryRow(ctx, s.q[qTrim], taskID, keepLast).Scan(&n); err != nil {
		return dbError("trim events", err)
	}
	if n == 0 {
		return taskNotFound(taskID)
	}
	return nil
}
