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
// trip): the task row is locked, the state machine applied and the next
// Seq assigned.
//
// The watchers of every process are woken through pg_notify. PostgreSQL
// serialises the commits of transactions that notify (and they cost
// several times a plain commit), so only the events after which a task may
// go quiet, TASK_SUSPENDED and the terminal ones, notify in their own
// transaction. The others (TASK_STARTED, TASK_PROGRESS, TASK_MESSAGE)
// notify right after the commit, batched with other appends of this
// process. If the process dies in between, the watchers of other processes
// learn of such an event with the task's next notified one; every task
// ends with one.
func (s *Store) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	if err := s.check(); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	if err := storecheck.Appendable(ev); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	notify := ev.Type.Terminal()
	out, appended, err := s.appendEvent(ctx, s.pool, ev, notify)
	if appended && !notify {
		s.notifier.add(ev.TaskID)
	}
	return out, err
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
	out, _, err := s.appendEvent(ctx, tx, ev, true)
	return out, err
}

// appendEvent runs the append function for a checked event; notify makes
// the transaction notify the events channel. appended is false when a
// repeated idempotency key returned the earlier event.
func (s *Store) appendEvent(ctx context.Context, q querier, ev taskbridge.TaskEvent, notify bool) (out taskbridge.TaskEvent, appended bool, err error) {
	var key []byte // NULL without a key
	if ev.IdempotencyKey != "" {
		key = []byte(ev.IdempotencyKey)
	}
	var (
		code, status, typ string
		seq               int64
		createdAt         *time.Time
		payload           []byte
	)
	err = q.QueryRow(ctx, s.q[qAppend], ev.TaskID, string(ev.Type), ev.CreatedAt, string(ev.Payload), key, s.maxEvents, notify).
		Scan(&code, &seq, &status, &typ, &createdAt, &payload)
	if err != nil {
		if isCheckViolation(err) {
			return taskbridge.TaskEvent{}, false, fmt.Errorf("%w: %v", taskbridge.ErrInvalidEvent, err)
		}
		return taskbridge.TaskEvent{}, false, dbError("append", err)
	}
	switch code {
	case "ok":
		ev.Seq, ev.EventID = seq, taskbridge.FormatEventID(seq)
		return ev, true, nil
	case "duplicate":
		out := taskbridge.TaskEvent{
			Type: taskbridge.EventType(typ), TaskID: ev.TaskID, EventID: taskbridge.FormatEventID(seq),
			CreatedAt: createdAt.UTC(), Payload: jsonOrNil(payload), Seq: seq, IdempotencyKey: ev.IdempotencyKey,
		}
		return out, false, nil
	case "not_found":
		return taskbridge.TaskEvent{}, false, taskNotFound(ev.TaskID)
	case "refused":
		if _, err := taskbridge.NextStatus(taskbridge.TaskStatus(status), ev.Type); err != nil {
			return taskbridge.TaskEvent{}, false, err
		}
		return taskbridge.TaskEvent{}, false, fmt.Errorf("pgstore: append: the database refused %s in status %s, which taskbridge.NextStatus allows",
			ev.Type, status)
	}
	return taskbridge.TaskEvent{}, false, fmt.Errorf("pgstore: append: unexpected result %q", code)
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
	if err := storecheck.Limit(limit); err != nil {
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
			typ       *string
			createdAt *time.Time
			payload   []byte
			key       []byte
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
		ev.IdempotencyKey = string(key)
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
