package memstore

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// AcquireLease implements [taskbridge.LeaseStore].
func (s *Store) AcquireLease(_ context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, bool, error) {
	if err := storecheck.Lease(holder, ttl); err != nil {
		return taskbridge.Lease{}, false, err
	}
	var (
		out      taskbridge.Lease
		acquired bool
	)
	err := s.update(taskID, func(ts *taskState) error {
		if ts.task.Status.Terminal() {
			return taskTerminal(taskID)
		}
		if cur := ts.lease; cur.Holder != "" && cur.Holder != holder && !cur.Expired(now) {
			out = cur
			return nil
		}
		ts.lease = taskbridge.Lease{TaskID: taskID, Holder: holder, ExpiresAt: now.Add(ttl)}
		out, acquired = ts.lease, true
		return nil
	})
	if err != nil {
		return taskbridge.Lease{}, false, err
	}
	return out, acquired, nil
}

// RenewLease implements [taskbridge.LeaseStore].
func (s *Store) RenewLease(_ context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, error) {
	if err := storecheck.Lease(holder, ttl); err != nil {
		return taskbridge.Lease{}, err
	}
	var out taskbridge.Lease
	err := s.update(taskID, func(ts *taskState) error {
		if ts.lease.Holder != holder {
			return leaseLost(taskID, holder)
		}
		ts.lease.ExpiresAt = now.Add(ttl)
		out = ts.lease
		return nil
	})
	return out, err
}

// ReleaseLease implements [taskbridge.LeaseStore].
func (s *Store) ReleaseLease(_ context.Context, taskID, holder string) error {
	if holder == "" {
		return invalidRequest("lease holder is empty")
	}
	err := s.update(taskID, func(ts *taskState) error {
		if ts.lease.Holder == holder {
			ts.lease = taskbridge.Lease{}
		}
		return nil
	})
	if isNotFound(err) {
		return nil
	}
	return err
}

// ExpiredLeases implements [taskbridge.LeaseStore]. Unlike a durable store
// it keeps no index: it scans every task, like the other maintenance
// operations. A limit below 1 fails with [taskbridge.ErrInvalidRequest].
func (s *Store) ExpiredLeases(_ context.Context, now time.Time, limit int) ([]taskbridge.Lease, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	var out []taskbridge.Lease
	s.each(func(ts *taskState) bool {
		// Terminal tasks have no lease: the terminal append dropped it.
		if ts.lease.Holder != "" && ts.lease.Expired(now) {
			out = append(out, ts.lease)
		}
		return true
	})
	slices.SortFunc(out, func(a, b taskbridge.Lease) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.TaskID, b.TaskID))
	})
	return out[:min(len(out), limit)], nil
}
