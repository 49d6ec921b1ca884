package memstore

import (
	"context"
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
		s.pushDue(&s.leases, dueItem{at: ts.lease.ExpiresAt, taskID: taskID, ts: ts})
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
		s.pushDue(&s.leases, dueItem{at: ts.lease.ExpiresAt, taskID: taskID, ts: ts})
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
			s.dropDue(&s.leases, taskID, "")
		}
		return nil
	})
	if isNotFound(err) {
		return nil
	}
	return err
}

// ExpiredLeases implements [taskbridge.LeaseStore]. The store keeps held
// leases ordered by expiry, so a call costs the leases it returns, not a
// scan of the store. A limit below 1 fails with
// [taskbridge.ErrInvalidRequest].
func (s *Store) ExpiredLeases(_ context.Context, now time.Time, limit int) ([]taskbridge.Lease, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	var (
		out   []taskbridge.Lease
		still []dueItem // listed, so still held: back into the heap
	)
	for len(out) < limit {
		d, ok := s.popDue(&s.leases, func(at time.Time) bool { return !now.Before(at) })
		if !ok {
			break
		}
		d.ts.mu.RLock()
		if l := d.ts.lease; !d.ts.deleted && l.Holder != "" && l.Expired(now) {
			out = append(out, l)
			still = append(still, d)
		}
		d.ts.mu.RUnlock()
	}
	s.requeue(&s.leases, still, leaseWaits)
	return out, nil
}

// leaseWaits reports that d is still the item of its task's lease: held,
// and not renewed since d was pushed. The task's lock is held.
func leaseWaits(d dueItem) bool {
	l := d.ts.lease
	return l.Holder != "" && l.ExpiresAt.Equal(d.at)
}
