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

// AcquireLease implements [taskbridge.LeaseStore] in a transaction that
// locks the task row.
func (s *Store) AcquireLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, bool, error) {
	if err := s.check(); err != nil {
		return taskbridge.Lease{}, false, err
	}
	if err := storecheck.Lease(holder, ttl); err != nil {
		return taskbridge.Lease{}, false, err
	}
	var (
		lease    taskbridge.Lease
		acquired bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		locked, err := s.lockTask(ctx, tx, taskID)
		switch {
		case err != nil:
			return err
		case locked.terminal:
			return fmt.Errorf("%w: task %q is %s", taskbridge.ErrTaskTerminal, taskID, locked.status)
		}
		if locked.holder != nil && *locked.holder != holder && locked.expiresAt != nil {
			cur := taskbridge.Lease{TaskID: taskID, Holder: *locked.holder, ExpiresAt: locked.expiresAt.UTC()}
			if !cur.Expired(now) {
				lease = cur
				return nil
			}
		}
		lease = taskbridge.Lease{TaskID: taskID, Holder: holder, ExpiresAt: now.Add(ttl).UTC()}
		if _, err := tx.Exec(ctx, s.q[qAcquireLease], taskID, holder, lease.ExpiresAt); err != nil {
			return dbError("acquire lease", err)
		}
		acquired = true
		return nil
	})
	if err != nil {
		return taskbridge.Lease{}, false, err
	}
	return lease, acquired, nil
}

// RenewLease implements [taskbridge.LeaseStore] in one statement.
func (s *Store) RenewLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, error) {
	if err := s.check(); err != nil {
		return taskbridge.Lease{}, err
	}
	if err := storecheck.Lease(holder, ttl); err != nil {
		return taskbridge.Lease{}, err
	}
	lease := taskbridge.Lease{TaskID: taskID, Holder: holder, ExpiresAt: now.Add(ttl).UTC()}
	tag, err := s.pool.Exec(ctx, s.q[qRenewLease], taskID, holder, lease.ExpiresAt)
	if err != nil {
		return taskbridge.Lease{}, dbError("renew lease", err)
	}
	if tag.RowsAffected() == 0 {
		return taskbridge.Lease{}, s.missing(ctx, s.pool, taskID,
			fmt.Errorf("%w: %s does not hold the lease on task %q", taskbridge.ErrLeaseLost, holder, taskID))
	}
	return lease, nil
}

// ReleaseLease implements [taskbridge.LeaseStore].
func (s *Store) ReleaseLease(ctx context.Context, taskID, holder string) error {
	if err := s.check(); err != nil {
		return err
	}
	if holder == "" {
		return invalidRequest("lease holder is empty")
	}
	if _, err := s.pool.Exec(ctx, s.q[qReleaseLease], taskID, holder); err != nil {
		return dbError("release lease", err)
	}
	return nil
}

// ExpiredLeases implements [taskbridge.LeaseStore]. It reads a partial
// index of the leases of non-terminal tasks ordered by expiry, so it only
// touches expired leases.
func (s *Store) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]taskbridge.Lease, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.q[qExpiredLeases], now, limit)
	if err != nil {
		return nil, dbError("expired leases", err)
	}
	defer rows.Close()
	var out []taskbridge.Lease
	for rows.Next() {
		var l taskbridge.Lease
		if err := rows.Scan(&l.TaskID, &l.Holder, &l.ExpiresAt); err != nil {
			return nil, dbError("expired leases", err)
		}
		l.ExpiresAt = l.ExpiresAt.UTC()
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("expired leases", err)
	}
	return out, nil
}

// lockedTask is what [Store.lockTask] reads.
type lockedTask struct {
	status    string
	terminal  bool
	holder    *string
	expiresAt *time.Time
}

// lockTask locks the task's row in tx, the first step of every
// transaction that decides on a task's state.
func (s *Store) lockTask(ctx context.Context, tx pgx.Tx, taskID string) (lockedTask, error) {
	var t lockedTask
	err := tx.QueryRow(ctx, s.q[qLockTask], taskID).Scan(&t.status, &t.terminal, &t.holder, &t.expiresAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return lockedTask{}, taskNotFound(taskID)
	case err != nil:
		return lockedTask{}, dbError("lock task", err)
	}
	return t, nil
}
