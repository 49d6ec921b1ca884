package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge-go/taskbridge"
)

// Config configures a [Store]. A zero field means its default.
type Config struct {
	// Prefix starts every key and channel name the store uses, so that
	// several applications (or tests) can share one Redis database.
	// Defaults to "taskbridge".
	Prefix string

	// MaxLen, when positive, caps each task's event stream: every append
	// trims it to about its newest MaxLen events (XADD MAXLEN ~, which
	// trims in whole stream nodes and so may keep somewhat more). Reading
	// from a cursor whose next event was trimmed fails with
	// [taskbridge.ErrEventsExpired]. Zero keeps every event.
	MaxLen int64

	// FinishedTTL, when positive, deletes every terminal task, with its
	// events, suspensions, receipts and index entries, once its terminal
	// event is older than FinishedTTL (by Now). Every Store sharing the
	// database runs the sweep, every SweepInterval; later reads of a
	// deleted task fail with [taskbridge.ErrTaskNotFound]. Zero keeps
	// terminal tasks (the service's TaskRetention may still delete them).
	FinishedTTL time.Duration

	// SweepInterval is how often the FinishedTTL sweep runs. Defaults to
	// FinishedTTL/10, at least 1s and at most 1m.
	SweepInterval time.Duration

	// WatchTimeout bounds how long [Store.Watch] and [Store.WatchControl]
	// wait for Redis to confirm the subscription of a channel nobody in
	// this process watched before. Past it they return anyway, and the
	// watcher is called once the subscription is confirmed. Defaults to
	// 5s.
	WatchTimeout time.Duration

	// PingInterval is how long the subscription connection may be idle
	// before the store pings Redis over it, which keeps it alive through
	// idle-timeout proxies and finds a broken one. Defaults to 30s.
	PingInterval time.Duration

	// Logger receives the state changes of the subscription connection
	// and sweep failures. Defaults to slog.Default().
	Logger *slog.Logger

	// Now is the clock of the FinishedTTL sweep. Defaults to time.Now.
	Now func() time.Time
}

// Store is a [taskbridge.Store] in Redis, shared by every process that
// opens it on the same database and prefix. It also implements
// [taskbridge.ReadinessProbe], [taskbridge.ControlFeed] and
// [taskbridge.LeaseStore]. Create it with [New]; it is safe for concurrent
// use. Close it to stop its goroutines; it never closes the client.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	k   keys
	n   *notifier

	closed    atomic.Bool
	closeOnce sync.Once
	stopSweep chan struct{}
	sweepHook atomic.Pointer[func()] // tests: called after each sweep pass
	wg        sync.WaitGroup
}

var (
	_ taskbridge.Store          = (*Store)(nil)
	_ taskbridge.ReadinessProbe = (*Store)(nil)
	_ taskbridge.ControlFeed    = (*Store)(nil)
	_ taskbridge.LeaseStore     = (*Store)(nil)

	_ taskbridge.TaskHeadGetter     = (*Store)(nil)
	_ taskbridge.TerminalTaskPruner = (*Store)(nil)
	_ taskbridge.LiveTaskCreator    = (*Store)(nil)
)

// New returns a store over rdb, which the caller keeps owning. It opens one
// subscription connection (go-redis PubSub) for every watcher of this
// store and, with FinishedTTL, starts the sweep. Redis Cluster clients are
// refused: the store's cross-task indexes live on one node (see the
// package documentation).
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: the Redis client is required")
	}
	switch rdb.(type) {
	case *redis.ClusterClient, *redis.Ring:
		return nil, errors.New("redisstore: Redis Cluster and Ring are not supported: use one Redis node (or Sentinel)")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "taskbridge"
	}
	if strings.ContainsAny(cfg.Prefix, "{}\x00") {
		return nil, fmt.Errorf("redisstore: Prefix %q must not contain '{', '}' or NUL", cfg.Prefix)
	}
	if cfg.MaxLen < 0 {
		return nil, errors.New("redisstore: MaxLen must not be negative")
	}
	if cfg.FinishedTTL < 0 || cfg.SweepInterval < 0 || cfg.WatchTimeout < 0 || cfg.PingInterval < 0 {
		return nil, errors.New("redisstore: durations must not be negative")
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = min(max(cfg.FinishedTTL/10, time.Second), time.Minute)
	}
	if cfg.WatchTimeout == 0 {
		cfg.WatchTimeout = 5 * time.Second
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{rdb: rdb, cfg: cfg, k: keys{prefix: cfg.Prefix}, stopSweep: make(chan struct{})}
	s.n = newNotifier(rdb, s.k.control(), cfg)
	if cfg.FinishedTTL > 0 {
		s.wg.Go(s.sweep)
	}
	return s, nil
}

// Close stops the store's goroutines and closes its subscription
// connection (not the client). Every watcher is called one last time, so
// that waiters wake up and observe the closed store, and then released;
// every later call fails with [taskbridge.ErrClosed]. Close is idempotent
// and returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stopSweep)
		s.wg.Wait()
		s.n.close()
	})
	return nil
}

// CheckReady implements [taskbridge.ReadinessProbe]: Redis answers PING and
// the subscription connection that wakes watchers is up.
func (s *Store) CheckReady(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return s.n.ready()
}

func (s *Store) check() error {
	if s.closed.Load() {
		return taskbridge.ErrClosed
	}
	return nil
}

// sweep deletes terminal tasks older than FinishedTTL every SweepInterval
// until the store is closed.
func (s *Store) sweep() {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stopSweep
		cancel()
	}()
	for {
		select {
		case <-s.stopSweep:
			return
		case <-t.C:
		}
		before := s.cfg.Now().Add(-s.cfg.FinishedTTL)
		for {
			n, err := s.DeleteTerminalTasks(ctx, before, sweepBatch)
			if err != nil {
				if ctx.Err() == nil {
					s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "redisstore: finished-task sweep failed", slog.Any("error", err))
				}
				break
			}
			if n < sweepBatch {
				break
			}
		}
		if hook := s.sweepHook.Load(); hook != nil {
			(*hook)()
		}
	}
}

// sweepBatch is how many tasks one sweep call deletes.
const sweepBatch = 100

// keys names the store's keys and channels. Every key of one task shares
// the hash tag {taskID}.
type keys struct{ prefix string }

func (k keys) task(id string) string     { return k.prefix + ":tasks:{" + id + "}" }
func (k keys) events(id string) string   { return k.task(id) + ":events" }
func (k keys) idem(id string) string     { return k.task(id) + ":idem" }
func (k keys) susp(id string) string     { return k.task(id) + ":susp" }
func (k keys) rcpt(id string) string     { return k.task(id) + ":rcpt" }
func (k keys) wake(id string) string     { return k.task(id) + ":wake" }
func (k keys) taskPrefix() string        { return k.prefix + ":tasks:{" }
func (k keys) control() string           { return k.prefix + ":control" }
func (k keys) requests() string          { return k.prefix + ":idx:requests" }
func (k keys) all() string               { return k.prefix + ":idx:tasks" }
func (k keys) ownerPrefix() string       { return k.prefix + ":idx:owner:" }
func (k keys) owner(owner string) string { return k.ownerPrefix() + owner }
func (k keys) live(owner string) string  { return k.prefix + ":idx:live:" + owner }
func (k keys) terminal() string          { return k.prefix + ":idx:terminal" }
func (k keys) leases() string            { return k.prefix + ":idx:leases" }
func (k keys) expiry() string            { return k.prefix + ":idx:expiry" }
func (k keys) resumes() string           { return k.prefix + ":idx:resumes" }
func (k keys) receipts() string          { return k.prefix + ":idx:receipts" }

// taskKeys returns the KEYS of a per-task script (see taskPrelude).
func (k keys) taskKeys(id string) []string {
	return []string{
		k.task(id), k.events(id), k.idem(id), k.susp(id), k.rcpt(id),
		k.terminal(), k.leases(), k.expiry(), k.resumes(), k.receipts(),
	}
}

// taskArgs returns the first ARGV of a per-task script: the task id, its
// wake-up channel, the control channel and a fresh operation token.
func (k keys) taskArgs(id string, extra ...any) []any {
	args := make([]any, 0, 4+len(extra))
	args = append(args, id, k.wake(id), k.control(), newOpToken())
	return append(args, extra...)
}

// newOpToken returns a random token that identifies one store call, so
// that a script run twice for it (go-redis retries a command whose
// connection broke after it was sent) applies once.
func newOpToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// timeKey encodes t as 24 lowercase hex digits that sort as strings in the
// order of the instants: the Unix seconds with the sign bit flipped, then
// the nanoseconds. Scripts compare and index times in this form.
func timeKey(t time.Time) string {
	var b [24]byte
	const digits = "0123456789abcdef"
	sec := uint64(t.Unix()) ^ (1 << 63)
	for i := 15; i >= 0; i-- {
		b[i] = digits[sec&0xf]
		sec >>= 4
	}
	ns := uint32(t.Nanosecond())
	for i := 23; i >= 16; i-- {
		b[i] = digits[ns&0xf]
		ns >>= 4
	}
	return string(b[:])
}

// parseTimeKey decodes a [timeKey] as a UTC time; "" is the zero time.
func parseTimeKey(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if len(s) != timeKeyLen {
		return time.Time{}, fmt.Errorf("redisstore: malformed time %q", s)
	}
	sec, err1 := strconv.ParseUint(s[:16], 16, 64)
	ns, err2 := strconv.ParseUint(s[16:], 16, 32)
	if err1 != nil || err2 != nil || ns >= 1e9 {
		return time.Time{}, fmt.Errorf("redisstore: malformed time %q", s)
	}
	t := time.Unix(int64(sec^(1<<63)), int64(ns)).UTC()
	if t.Equal(time.Time{}) {
		return time.Time{}, nil
	}
	return t, nil
}

// timeKeyLen is the length of a [timeKey].
const timeKeyLen = 24

// atOrBefore returns the exclusive lexicographic upper bound that selects
// index members whose time is at or before t.
func atOrBefore(t time.Time) string { return "(" + timeKey(t.Add(time.Nanosecond)) }

// strictlyBefore returns the exclusive lexicographic upper bound that
// selects index members whose time is strictly before t.
func strictlyBefore(t time.Time) string { return "(" + timeKey(t) }

func taskNotFound(id string) error {
	return fmt.Errorf("%w: %q", taskbridge.ErrTaskNotFound, id)
}

func suspensionNotFound(taskID, suspendID string) error {
	return fmt.Errorf("%w: task %q has no suspension %q", taskbridge.ErrSuspensionNotFound, taskID, suspendID)
}

func invalidRequest(format string, args ...any) error {
	return fmt.Errorf("%w: redisstore: %s", taskbridge.ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// checkID refuses ids that the key and index encodings cannot hold.
func checkID(what, id string) error {
	if id == "" {
		return invalidRequest("%s is empty", what)
	}
	if strings.IndexByte(id, 0) >= 0 {
		return invalidRequest("%s %q contains NUL", what, id)
	}
	return nil
}

// redisErr wraps a Redis failure of operation op. Closing the store makes
// in-flight calls fail with ErrClosed.
func (s *Store) redisErr(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("redisstore: %s: %w (%w)", op, taskbridge.ErrClosed, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// reply is a script reply: a flat or nested array of strings.
type reply []any

// str returns element i as a string; nil and missing elements are "".
func (r reply) str(i int) string {
	if i >= len(r) {
		return ""
	}
	switch v := r[i].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

// int returns element i as an integer.
func (r reply) int(i int) (int64, error) {
	if i < len(r) {
		if v, ok := r[i].(int64); ok {
			return v, nil
		}
	}
	n, err := strconv.ParseInt(r.str(i), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redisstore: malformed reply element %d: %v", i, r.at(i))
	}
	return n, nil
}

// sub returns element i as a nested reply.
func (r reply) sub(i int) reply {
	if i < len(r) {
		if v, ok := r[i].([]any); ok {
			return v
		}
	}
	return nil
}

func (r reply) at(i int) any {
	if i < len(r) {
		return r[i]
	}
	return nil
}

// run runs script with keys and args and returns its array reply.
func (s *Store) run(ctx context.Context, op string, sc *redis.Script, keys []string, args ...any) (reply, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	v, err := sc.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, s.redisErr(op, err)
	}
	return v, nil
}
