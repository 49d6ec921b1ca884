package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

func checkLease(holder string, ttl time.Duration) error {
	if err := checkID("lease holder", holder); err != nil {
		return err
	}
	return storecheck.Lease(holder, ttl)
}

// decodeLease builds a lease from a script's holder and expiry elements.
func decodeLease(taskID string, r reply, i int) (taskbridge.Lease, error) {
	at, err := parseTimeKey(r.str(i + 1))
	if err != nil {
		return taskbridge.Lease{}, err
	}
	return taskbridge.Lease{TaskID: taskID, Holder: r.str(i), ExpiresAt: at}, nil
}

// AcquireLease implements [taskbridge.LeaseStore] in one script.
func (s *Store) AcquireLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, bool, error) {
	if err := checkLease(holder, ttl); err != nil {
		return taskbridge.Lease{}, false, err
	}
	r, err := s.run(ctx, "acquire lease", acquireScript, s.k.taskKeys(taskID),
		s.k.taskArgs(taskID, holder, timeKey(now), timeKey(now.Add(ttl)))...)
	if err != nil {
		return taskbridge.Lease{}, false, err
	}
	switch r.str(0) {
	case "ACQUIRED", "HELD":
		l, err := decodeLease(taskID, r, 1)
		return l, r.str(0) == "ACQUIRED", err
	case "NOTFOUND":
		return taskbridge.Lease{}, false, taskNotFound(taskID)
	case "TERMINAL":
		return taskbridge.Lease{}, false, fmt.Errorf("%w: task %q is %s", taskbridge.ErrTaskTerminal, taskID, r.str(1))
	}
	return taskbridge.Lease{}, false, unexpected("acquire lease", r)
}

// RenewLease implements [taskbridge.LeaseStore].
func (s *Store) RenewLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, error) {
	if err := checkLease(holder, ttl); err != nil {
		return taskbridge.Lease{}, err
	}
	r, err := s.run(ctx, "renew lease", renewScript, s.k.taskKeys(taskID),
		s.k.taskArgs(taskID, holder, timeKey(now), timeKey(now.Add(ttl)))...)
	if err != nil {
		return taskbridge.Lease{}, err
	}
	switch r.str(0) {
	case "OK":
		return decodeLease(taskID, r, 1)
	case "NOTFOUND":
		return taskbridge.Lease{}, taskNotFound(taskID)
	case "LOST":
		return taskbridge.Lease{}, fmt.Errorf("%w: task %q, holder %q (lease held by %q or the task ended)",
			taskbridge.ErrLeaseLost, taskID, holder, r.str(1))
	}
	return taskbridge.Lease{}, unexpected("renew lease", r)
}

// ReleaseLease implements [taskbridge.LeaseStore]. Releasing the lease of an
// unknown (or deleted) task does nothing.
func (s *Store) ReleaseLease(ctx context.Context, taskID, holder string) error {
	if err := checkID("lease holder", holder); err != nil {
		return err
	}
	_, err := s.run(ctx, "release lease", releaseScript, s.k.taskKeys(taskID), s.k.taskArgs(taskID, holder)...)
	return err
}

// ExpiredLeases implements [taskbridge.LeaseStore] with one range read of
// the lease index, which holds the leases of non-terminal tasks by expiry.
func (s *Store) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]taskbridge.Lease, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := storecheck.Limit(limit); err != nil {
		return nil, err
	}
	members, err := s.rdb.ZRangeByLex(ctx, s.k.leases(), &redis.ZRangeBy{Min: "-", Max: atOrBefore(now), Count: int64(limit)}).Result()
	if err != nil {
		return nil, s.redisErr("expired leases", err)
	}
	out := make([]taskbridge.Lease, 0, len(members))
	for _, m := range members {
		id, holder, ok := strings.Cut(m[min(timeKeyLen, len(m)):], "\x00")
		at, err := parseTimeKey(m[:min(timeKeyLen, len(m))])
		if !ok || err != nil {
			return nil, fmt.Errorf("redisstore: malformed lease index entry %q", m)
		}
		out = append(out, taskbridge.Lease{TaskID: id, Holder: holder, ExpiresAt: at})
	}
	return out, nil
}
