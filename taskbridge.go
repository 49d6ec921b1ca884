package taskbridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// Config configures a [Service]. A zero field means its default.
type Config struct {
	// Store keeps tasks, events, suspensions and receipts. Required.
	Store Store
	// Executor runs tasks. Required.
	Executor TaskExecutor
	// Ownership decides who may create and see tasks. Defaults to [OwnerOnly].
	Ownership OwnershipPolicy
	// Metrics receives counters and gauges, and histograms when it also
	// implements [HistogramSink]. Defaults to a no-op sink.
	Metrics MetricsSink
	// Diagnostics are hooks called by the transports (long poll, SSE,
	// WebSocket) and Subscribe: replay start, deliveries, heartbeats,
	// disconnects, expired cursors. The zero value calls nothing.
	Diagnostics Diagnostics
	// Propagator, when set, carries the create request's context (its
	// trace) to the executor: it is stored in the task's Metadata (never
	// sent to clients) and extracted by [Service.TaskContext]. Defaults to
	// none.
	Propagator Propagator
	// Logger receives structured logs (never payload contents). Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// NewID generates task and suspension ids; they must satisfy
	// [ValidTaskID]. Defaults to random UUIDs.
	NewID func() string
	// ReceiptRetention is how long action receipts are kept for
	// deduplication. Defaults to 24h.
	ReceiptRetention time.Duration
	// TaskRetention is how long terminal tasks (with their events) are kept
	// before [Service.Prune] deletes them; a deleted task is 404
	// TASK_NOT_FOUND. Defaults to 24h. Negative keeps them forever. Pruning
	// happens only while the host runs [Service.RunMaintenance] (or calls
	// Prune).
	TaskRetention time.Duration
	// Attachments, when set, removes the uploaded files of the tasks that
	// retention deletes: [Service.Prune] calls its Discard for the Ref of
	// every attachment of every task it deletes. Pass the HTTP handler's
	// upload sink (every httpapi.AttachmentSink is one). It needs a store
	// that implements [TerminalTaskPruner]; with another store the files
	// are left to the host, and New logs a warning.
	Attachments AttachmentDiscarder
	// MaxLiveTasksPerOwner bounds how many tasks one owner may have that
	// have not ended (ACCEPTED or RUNNING). A create beyond it fails with
	// [ErrTaskQuota] (HTTP 429 TOO_MANY_TASKS, which clients retry
	// with backoff); repeating the create of an existing task is
	// deduplicated as always. The quota is exact with a store that
	// implements [LiveTaskCreator] (memstore, pgstore and redisstore do). With another store it
	// is best-effort: concurrent creates of one owner may pass it together,
	// and while the owner is at the quota a repeat of a task that has
	// already ended is refused instead of deduplicated. Zero means no
	// limit.
	MaxLiveTasksPerOwner int
	// ReplayBatch is how many events one store read returns while replaying
	// a stream. Defaults to 256.
	ReplayBatch int
	// Probes are extra readiness probes reported by [Service.Readiness].
	Probes Readiness
	// DisableWakePacing stops the fan-out's pacing of wake-ups: by default
	// a goroutine that wakes many streams in a row (an appender writing to
	// many tasks, a store's listener, the heartbeat scheduler) yields its
	// processor every 64 wake-ups, so the streams run in the order they
	// were woken instead of some waiting behind the Go scheduler's global
	// run queue (with one core at 50,000 events/s over 5,000 tasks: p99
	// about 6 ms instead of 150-210 ms). Under overload, unpaced streams
	// woken late write several events at once, which gives more peak
	// throughput at a far higher latency; set this for that.
	DisableWakePacing bool
}

// DefaultTaskRetention is the default [Config].TaskRetention.
const DefaultTaskRetention = 24 * time.Hour

// Service implements the TaskBridge operations over a [Store] and a
// [TaskExecutor]. Transports (httpapi, sse, ws) call it; executors report
// through its [Emitter]s. It is safe for concurrent use.
type Service struct {
	cfg     Config
	store   Store
	exec    TaskExecutor
	policy  OwnershipPolicy
	metrics MetricsSink
	hist    HistogramSink // nil unless Metrics implements it
	log     *slog.Logger
	now     func() time.Time
	newID   func() string
	hub     *fanout.Hub
	relay   *controlRelay  // nil unless the store is a ControlFeed and the executor a LocalExecutor
	vetted  VettedAppender // the store, when it vouches for its payloads

	mu     sync.Mutex
	closed bool
}

// New validates cfg, fills in defaults and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("taskbridge: Config.Store is required")
	}
	if cfg.Executor == nil {
		return nil, errors.New("taskbridge: Config.Executor is required")
	}
	if cfg.Ownership == nil {
		cfg.Ownership = OwnerOnly{}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = uuid.NewString
	}
	if cfg.ReceiptRetention <= 0 {
		cfg.ReceiptRetention = 24 * time.Hour
	}
	if cfg.TaskRetention == 0 {
		cfg.TaskRetention = DefaultTaskRetention
	}
	if cfg.MaxLiveTasksPerOwner < 0 {
		return nil, errors.New("taskbridge: Config.MaxLiveTasksPerOwner must not be negative")
	}
	if cfg.ReplayBatch <= 0 {
		cfg.ReplayBatch = 256
	}
	s := &Service{
		cfg:     cfg,
		store:   cfg.Store,
		exec:    cfg.Executor,
		policy:  cfg.Ownership,
		metrics: cfg.Metrics,
		log:     cfg.Logger,
		now:     cfg.Now,
		newID:   cfg.NewID,
	}
	s.hist, _ = cfg.Metrics.(HistogramSink)
	s.vetted = vettedAppender(cfg.Store)
	if _, ok := cfg.Store.(TerminalTaskPruner); cfg.Attachments != nil && !ok {
		cfg.Logger.Warn("taskbridge: the store does not implement TerminalTaskPruner: " +
			"retention deletes tasks but leaves their uploaded files (Config.Attachments) to the host")
	}
	hub, err := newHub(s)
	if err != nil {
		return nil, err
	}
	s.hub = hub
	s.relay = startControlRelay(s)
	return s, nil
}

// Readiness returns the composite readiness probe: the store and the
// executor when they implement [ReadinessProbe], the service itself (not
// ready once shut down) and Config.Probes.
func (s *Service) Readiness() Readiness {
	r := Readiness{"service": ProbeFunc(func(context.Context) error {
		if s.isClosed() {
			return ErrClosed
		}
		return nil
	})}
	if p, ok := s.store.(ReadinessProbe); ok {
		r["store"] = p
	}
	if p, ok := s.exec.(ReadinessProbe); ok {
		r["executor"] = p
	}
	for n, p := range s.cfg.Probes {
		r[n] = p
	}
	return r
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops the service: new subscriptions and commands fail with
// [ErrClosed], every open subscription ends with [ErrClosed] (transports
// close SSE streams and send WebSocket close 1001), and Shutdown waits until
// all of them were closed by their transports or ctx ends. It also stops
// relaying control changes to the executor (see [LocalExecutor]). It does
// not stop the executor or the store, which the host owns. Safe to call
// twice.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.relay != nil {
		s.relay.shutdown()
	}
	return s.hub.Shutdown(ctx)
}
