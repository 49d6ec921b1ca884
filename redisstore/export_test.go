package redisstore

import (
	"context"

	"github.com/taskbridge-go/taskbridge"
)

// AppendTwiceForTest runs the append script for ev twice with the same
// operation token, as a go-redis retry would, and returns both seqs.
func AppendTwiceForTest(ctx context.Context, s *Store, ev taskbridge.TaskEvent) (first, second string, err error) {
	keys, args := s.k.taskKeys(ev.TaskID), s.k.taskArgs(ev.TaskID, s.eventArgs(ev)...)
	r1, err := s.run(ctx, "append", appendScript, keys, args...)
	if err != nil {
		return "", "", err
	}
	r2, err := s.run(ctx, "append", appendScript, keys, args...)
	if err != nil {
		return "", "", err
	}
	return r1.str(0) + " " + r1.str(1), r2.str(0) + " " + r2.str(1), nil
}

// SetSweepHookForTest makes the FinishedTTL sweep call fn after each pass.
func SetSweepHookForTest(s *Store, fn func()) { s.sweepHook.Store(&fn) }
