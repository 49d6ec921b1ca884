package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// rawJSON returns b for a json parameter: nil (NULL) when empty.
func rawJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// scanTask reads the columns of taskCols, after the given leading
// destinations.
func scanTask(row pgx.Row, lead ...any) (taskbridge.Task, error) {
	var (
		t           taskbridge.Task
		input, meta []byte
		atts        []byte
		status      string
	)
	dest := append(lead, &t.ID, &t.OwnerID, &t.ClientRequestID, &t.TaskType, &input, &meta, &atts, &t.Fingerprint,
		&status, &t.LastSeq, &t.CancelRequested, &t.CancelReason, &t.CreatedAt, &t.UpdatedAt)
	if err := row.Scan(dest...); err != nil {
		return taskbridge.Task{}, err
	}
	t.Status = taskbridge.TaskStatus(status)
	t.Input, t.Metadata = jsonOrNil(input), jsonOrNil(meta)
	if len(atts) > 0 {
		if err := json.Unmarshal(atts, &t.Attachments); err != nil {
			return taskbridge.Task{}, fmt.Errorf("decoding attachments: %w", err)
		}
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, nil
}

// jsonOrNil returns a copy of b as JSON, nil for NULL.
func jsonOrNil(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage{}, b...)
}

// CreateTask implements [taskbridge.TaskRegistry] in one statement (two
// when it loses a race for the same key). The stored task always starts
// ACCEPTED with LastSeq 0. A task id that is already used by another task
// fails with [taskbridge.ErrInvalidRequest]. Times are stored with
// microsecond precision.
func (s *Store) CreateTask(ctx context.Context, t taskbridge.Task) (taskbridge.Task, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	return s.createTask(ctx, s.pool, t)
}

// CreateTaskTx is [Store.CreateTask] inside the caller's transaction tx, so
// that an application can write its own rows (or enqueue a job) and create
// a task atomically. The task exists for others once tx commits. Inside a
// REPEATABLE READ or SERIALIZABLE transaction, a concurrent create with the
// same key may fail with a serialization error instead of returning the
// other task.
func (s *Store) CreateTaskTx(ctx context.Context, tx pgx.Tx, t taskbridge.Task) (taskbridge.Task, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	if tx == nil {
		return taskbridge.Task{}, false, errors.New("pgstore: CreateTaskTx needs a transaction")
	}
	return s.createTask(ctx, tx, t)
}

func (s *Store) createTask(ctx context.Context, q querier, t taskbridge.Task) (taskbridge.Task, bool, error) {
	if t.ID == "" {
		return taskbridge.Task{}, false, invalidRequest("task id is empty")
	}
	var atts any
	if len(t.Attachments) > 0 {
		b, err := json.Marshal(t.Attachments)
		if err != nil {
			return taskbridge.Task{}, false, invalidRequest("attachments: %v", err)
		}
		atts = string(b)
	}
	updated := t.UpdatedAt
	if updated.IsZero() {
		updated = t.CreatedAt
	}
	// A task found by key may be deleted before it is read back; then
	// the create is tried again.
	for range 3 {
		var created bool
		stored, err := scanTask(q.QueryRow(ctx, s.q[qCreateTask], t.ID, t.OwnerID, t.ClientRequestID, t.TaskType,
			rawJSON(t.Input), rawJSON(t.Metadata), atts, t.Fingerprint, t.CreatedAt, updated), &created)
		if errors.Is(err, pgx.ErrNoRows) {
			stored, err = scanTask(q.QueryRow(ctx, s.q[qGetTaskByKey], t.OwnerID, t.ClientRequestID))
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
		}
		switch {
		case isUniqueViolation(err, "tasks_pkey"):
			return taskbridge.Task{}, false, invalidRequest("task id %q is already used", t.ID)
		case err != nil:
			return taskbridge.Task{}, false, dbError("create task", err)
		}
		return stored, created, nil
	}
	return taskbridge.Task{}, false, fmt.Errorf("pgstore: create task: the task with client request id %q keeps disappearing", t.ClientRequestID)
}

// CreateLiveTask implements [taskbridge.LiveTaskCreator]: CreateTask that
// fails with [taskbridge.ErrTaskQuota] when the owner already has maxLive
// tasks that have not ended. One transaction takes a per-owner advisory
// lock, looks the key up, counts the owner's live tasks and inserts, so
// the quota is exact across every process sharing the database.
func (s *Store) CreateLiveTask(ctx context.Context, t taskbridge.Task, maxLive int) (taskbridge.Task, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	if maxLive < 1 {
		return taskbridge.Task{}, false, invalidRequest("maxLive %d must be at least 1", maxLive)
	}
	if t.ID == "" {
		return taskbridge.Task{}, false, invalidRequest("task id is empty")
	}
	var (
		stored  taskbridge.Task
		created bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.q[qLockOwner], t.OwnerID); err != nil {
			return dbError("lock owner", err)
		}
		existing, err := scanTask(tx.QueryRow(ctx, s.q[qGetTaskByKey], t.OwnerID, t.ClientRequestID))
		switch {
		case err == nil:
			stored = existing
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return dbError("create task", err)
		}
		var live int
		if err := tx.QueryRow(ctx, s.q[qCountLive], t.OwnerID, maxLive).Scan(&live); err != nil {
			return dbError("count live tasks", err)
		}
		if live >= maxLive {
			return fmt.Errorf("%w: at most %d unfinished tasks", taskbridge.ErrTaskQuota, maxLive)
		}
		stored, created, err = s.createTask(ctx, tx, t)
		return err
	})
	if err != nil {
		return taskbridge.Task{}, false, err
	}
	return stored, created, nil
}

// GetTaskHead implements [taskbridge.TaskHeadGetter]: the task without its
// Input, Metadata and Attachments, which are not read.
func (s *Store) GetTaskHead(ctx context.Context, taskID string) (taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, err
	}
	t, err := scanTask(s.pool.QueryRow(ctx, s.q[qGetTaskHead], taskID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return taskbridge.Task{}, taskNotFound(taskID)
	case err != nil:
		return taskbridge.Task{}, dbError("get task", err)
	}
	return t, nil
}

// GetTask implements [taskbridge.TaskRegistry].
func (s *Store) GetTask(ctx context.Context, taskID string) (taskbridge.Task, error) {
	return s.getTask(ctx, s.pool, taskID)
}

func (s *Store) getTask(ctx context.Context, q querier, taskID string) (taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, err
	}
	t, err := scanTask(q.QueryRow(ctx, s.q[qGetTask], taskID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return taskbridge.Task{}, taskNotFound(taskID)
	case err != nil:
		return taskbridge.Task{}, dbError("get task", err)
	}
	return t, nil
}

// ListTasks implements [taskbridge.TaskRegistry]. It reads the
// (created_at, id) index, or (owner_id, created_at, id) when q.OwnerID is
// set. A limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ListTasks(ctx context.Context, q taskbridge.TaskQuery) ([]taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(q.Limit); err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.OwnerID != "" {
		where = append(where, "owner_id = "+arg(q.OwnerID))
	}
	if len(q.Statuses) > 0 {
		st := make([]string, len(q.Statuses))
		for i, x := range q.Statuses {
			st[i] = string(x)
		}
		where = append(where, "status = ANY("+arg(st)+")")
	}
	if q.Before != nil {
		where = append(where, "(created_at, id) < ("+arg(q.Before.CreatedAt)+", "+arg(q.Before.ID)+")")
	}
	sql := "SELECT " + taskCols + " FROM " + s.schema + ".tasks"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY created_at DESC, id DESC LIMIT " + arg(q.Limit)
	return s.queryTasks(ctx, "list tasks", sql, args...)
}

// queryTasks runs a query that returns task rows (taskCols) and scans
// them; what names the operation in errors.
func (s *Store) queryTasks(ctx context.Context, what, sql string, args ...any) ([]taskbridge.Task, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, dbError(what, err)
	}
	defer rows.Close()
	var out []taskbridge.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, dbError(what, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(what, err)
	}
	return out, nil
}

// RequestCancel implements [taskbridge.TaskRegistry]. The first request
// also sets the task's UpdatedAt to now and notifies every process's
// [Store.WatchControl] watchers.
func (s *Store) RequestCancel(ctx context.Context, taskID, reason string, now time.Time) (taskbridge.Task, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Task{}, false, err
	}
	var notifyResult bool
	t, err := scanTask(s.pool.QueryRow(ctx, s.q[qRequestCancel], taskID, reason, now), &notifyResult)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Not changed: already requested, terminal, or no such task.
		t, err := s.GetTask(ctx, taskID)
		return t, false, err
	case err != nil:
		return taskbridge.Task{}, false, dbError("request cancel", err)
	}
	return t, true, nil
}

// DeleteTerminalTasks implements [taskbridge.TaskRegistry]: it deletes the
// tasks that ended first, with their events, suspensions and receipts, in
// one statement. Tasks locked by a concurrent call are skipped. A limit
// below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) DeleteTerminalTasks(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, s.q[qDeleteTerminal], before, limit)
	if err != nil {
		return 0, dbError("delete terminal tasks", err)
	}
	return int(tag.RowsAffected()), nil
}

// PruneTerminalTasks implements [taskbridge.TerminalTaskPruner]: it is
// DeleteTerminalTasks returning the deleted tasks, in one statement.
func (s *Store) PruneTerminalTasks(ctx context.Context, before time.Time, limit int) ([]taskbridge.Task, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	return s.queryTasks(ctx, "delete terminal tasks", s.q[qPruneTerminal], before, limit)
}
