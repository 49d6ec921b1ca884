package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/gopool"
)

// Config configures a [Hub]. A zero field means its default.
type Config struct {
	// Source supplies the events. Required.
	Source Source
	// Batch is how many frames one Source read returns, at most. Defaults
	// to 256.
	Batch int
	// Logger receives a warning when a topic's read fails and is retried.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// StreamsActive, when set, is called with +1 when a subscription with
	// a Transport opens and -1 when it closes.
	StreamsActive func(transport string, delta int64)
	// Observer, when set, is told of the deliveries, heartbeats and ends
	// of the subscriptions with a Transport. Nil costs nothing.
	Observer *Observer
	// InlineReads reports that the Source's Read is served from memory,
	// never blocks and may be called from inside a Watch callback: a solo
	// topic's member with SubscribeOpts.Deliver then gets its new events
	// on the appending goroutine (see Subscription.Lock). False keeps
	// the reads of a solo topic's member on its own goroutine; members of
	// a shared topic get their frames from its fetcher either way.
	InlineReads bool
	// DisableWakePacing stops goroutines that wake many subscribers in a
	// row from yielding every wakeBurst wake-ups (see Hub.woke).
	DisableWakePacing bool

	// The errors the engine returns and recognises in Source errors: the
	// host package's sentinels. Each defaults to an error of this package.
	//
	// ErrClosed is returned by Subscribe, Wait and Next once the hub shuts
	// down, and by Next after Close. ErrExpired means events after a
	// cursor were removed by retention (returned by Next for a cursor-0
	// stream that lost event 1). A topic whose read fails with ErrNotFound
	// (the task was deleted) or ErrInvalidCursor (the log went backwards)
	// fails its members with that error; other read errors are retried.
	ErrClosed, ErrExpired, ErrNotFound, ErrInvalidCursor error
}

const (
	// A topic keeps the frames its slowest live subscriber has yet to take,
	// up to topicWindow frames and topicWindowBytes of JSON; a subscriber
	// further behind reads the Source until it catches up. Frames every
	// subscriber has taken are dropped at once.
	topicWindow      = 16384
	topicWindowBytes = 8 << 20
	// maxFramesPerNext bounds the frames one Next call returns, so one
	// write stays bounded.
	maxFramesPerNext = 512
	// A topic retries a failed read after retryMin, doubling up to
	// retryMax.
	retryMin = 10 * time.Millisecond
	retryMax = 2 * time.Second
)

// wakeBurst is how many subscriber goroutines may be woken, counted over
// the hub, before the waking goroutine yields (see Hub.woke).
const wakeBurst = 64

// woke is called after waking a subscriber's goroutine for new events or a
// heartbeat. Every wakeBurst-th wake-up over the hub, the calling goroutine
// yields its P (runtime.Gosched), so the goroutines woken so far run, in
// the order they were woken, before it wakes more.
//
// Without it, a goroutine that wakes many subscribers in a row (one
// appender writing to many tasks, a durable store's listener, a fetcher
// with many members, the heartbeat scheduler) makes more goroutines
// runnable than its P's run queue holds (256). The runtime moves half of
// them to the global queue, which a busy P serves only once every 61
// turns, so those deliveries wait while fresh wake-ups keep the P busy:
// with one P at 50,000 events/s over 5,000 tasks, p99 150-210 ms instead
// of 6-7 ms. A yield costs about a microsecond, once per wakeBurst
// wake-ups, and delays the waker only by the work it handed out.
func (h *Hub) woke() {
	if h.wakes.Add(1)%wakeBurst == 0 && !h.cfg.DisableWakePacing {
		runtime.Gosched()
	}
}

// Hub is the fan-out of one service. Create it with [New]; it is safe for
// concurrent use. It runs goroutines only while subscriptions are open
// (a fetcher per topic while it reads, which then waits for the next
// topic's fetch; a heartbeat scheduler per interval), and [Hub.Shutdown]
// waits for them.
type Hub struct {
	cfg      Config
	retryMin time.Duration   // retryMin, but tests may lengthen it
	ctx      context.Context // cancelled by Shutdown; bounds the topics' reads
	cancel   context.CancelFunc

	mu      sync.Mutex
	topics  map[string]*topic
	subs    map[*Subscription]struct{}
	closed  bool
	drained chan struct{} // closed when closed && len(subs) == 0
	hb      map[time.Duration]*hbGroup

	wg sync.WaitGroup // topic fetchers and heartbeat schedulers
	// fetchers runs the topics' fetches (see maxIdleFetchers).
	fetchers gopool.Pool

	lastID atomic.Uint64 // the last subscription id handed out
	wakes  atomic.Uint64 // wake-ups counted by woke
}

// New validates cfg, fills in defaults and returns a Hub.
func New(cfg Config) (*Hub, error) {
	if cfg.Source == nil {
		return nil, errors.New("fanout: Config.Source is required")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, e := range []struct {
		err  *error
		text string
	}{
		{&cfg.ErrClosed, "fanout: closed"},
		{&cfg.ErrExpired, "fanout: events after cursor have expired"},
		{&cfg.ErrNotFound, "fanout: task not found"},
		{&cfg.ErrInvalidCursor, "fanout: invalid cursor"},
	} {
		if *e.err == nil {
			*e.err = errors.New(e.text)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg:      cfg,
		retryMin: retryMin,
		ctx:      ctx,
		cancel:   cancel,
		topics:   map[string]*topic{},
		subs:     map[*Subscription]struct{}{},
		drained:  make(chan struct{}),
		hb:       map[time.Duration]*hbGroup{},
	}
	h.fetchers.MaxIdle = maxIdleFetchers
	h.fetchers.Group = &h.wg
	return h, nil
}

// maxIdleFetchers is the most goroutines that wait for a topic's fetch.
//
// Each fetch runs on a goroutine of its own, so that a topic whose Source
// read is slow delays no other topic; at light load a shared topic fetches
// once per append. A new goroutine for each cost more than the fetch (its
// stack grown by copying to the depth of a read, an encode and inline
// writes), so the goroutines wait for the next fetch of any topic (see
// package internal/gopool), and are released when the hub's last
// subscription closes and at Shutdown: the hub runs no goroutine without
// subscriptions.
const maxIdleFetchers = 64

// Start is where a subscription starts, with what the host knew of the
// task when it checked it, before reading its log.
type Start struct {
	// After is the cursor: the subscription delivers the events with
	// Seq > After. 0 means from the oldest retained event.
	After int64
	// LastSeq is the task's last Seq: a subscription from 0 of a log
	// that retains nothing starts after it.
	LastSeq int64
	// Terminal reports that the task had ended: a subscription with
	// nothing after its cursor is complete (Next returns io.EOF).
	Terminal bool
}

// SubscribeOpts configures a subscription for its transport.
type SubscribeOpts struct {
	// Transport names the transport ("sse", "ws") for Config.StreamsActive,
	// Config.Observer and in logs. Empty means a subscription that is not
	// counted or observed as a stream.
	Transport string
	// HeartbeatInterval is the idle time after which HeartbeatDue reports
	// true. Zero disables heartbeats.
	HeartbeatInterval time.Duration
	// Signal, when set, is used as the subscription's Ready channel, so
	// one connection can wait on several subscriptions. It must have a
	// capacity of at least 1.
	Signal chan struct{}
	// Deliver, when set, lets the engine hand the subscription new events
	// on its own goroutines instead of waking the transport's: the watch
	// callback of a solo topic (on the appending goroutine, with
	// Config.InlineReads) and the fetcher of a shared topic take the
	// frames (as Next would) and call Deliver with them while they hold
	// the subscription's lock. Deliver must not block: it writes what it
	// can at once, keeps the rest for the transport's goroutine and
	// returns false, which signals Ready; it returns true when everything
	// went out. The frames are the subscription's from then on, delivered
	// exactly once whatever Deliver does with them; the slice holding them
	// is not (Deliver may keep the frames, not the slice). A subscription
	// with Deliver must be used under Lock (see there).
	Deliver func(frames []*Frame) (sent bool)
}

// Subscribe reads the first batch of the task's events after start.After
// and returns a subscription that delivers them, then the rest as they are
// appended. Errors are the first read's and ErrClosed, so a transport can
// answer them before it commits to a stream. The caller must Close the
// subscription.
func (h *Hub) Subscribe(ctx context.Context, taskID string, start Start, opts SubscribeOpts) (*Subscription, error) {
	if opts.Signal != nil && cap(opts.Signal) < 1 {
		return nil, errors.New("fanout: SubscribeOpts.Signal must be buffered")
	}
	if h.isClosed() {
		return nil, h.cfg.ErrClosed
	}
	frames, err := h.cfg.Source.Read(ctx, taskID, start.After, h.cfg.Batch)
	if err != nil {
		return nil, err
	}
	owned(frames)
	after := start.After
	switch {
	case after > 0:
		if err := h.checkDense(after, frames); err != nil {
			return nil, err
		}
	case len(frames) == 0:
		// Nothing is retained: the stream starts after the task's last
		// event, and is held to that cursor from now on (see replay).
		after = start.LastSeq
	}
	sub := h.newSubscription(taskID, after, opts)
	sub.pending = frames
	// The task was read before its log: if it was terminal then and nothing
	// follows the cursor, the cursor is at (or after) the terminal event.
	if start.Terminal && len(frames) == 0 {
		sub.done = true
	}
	if err := h.register(sub); err != nil {
		return nil, err
	}
	return sub, nil
}

func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *Hub) newSubscription(taskID string, after int64, opts SubscribeOpts) *Subscription {
	sub := &Subscription{
		h:          h,
		taskID:     taskID,
		transport:  opts.Transport,
		ready:      opts.Signal,
		batch:      h.cfg.Batch,
		last:       after,
		hbInterval: opts.HeartbeatInterval,
	}
	if opts.Deliver != nil {
		sub.inline = &inlineSub{deliver: opts.Deliver}
	}
	if opts.Transport != "" {
		sub.id = h.lastID.Add(1)
		sub.obs = h.cfg.Observer
		sub.started = time.Now()
	}
	sub.pos.Store(after)
	if sub.ready == nil {
		sub.ready = make(chan struct{}, 1)
	}
	// lastActive is 0, as after a delivery: the heartbeat scheduler's
	// next tick starts the idle time.
	return sub
}

// register makes sub known to shutdown, the gauge and the heartbeat
// scheduler.
func (h *Hub) register(sub *Subscription) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return h.cfg.ErrClosed
	}
	h.subs[sub] = struct{}{}
	var g *hbGroup
	if sub.hbInterval > 0 {
		g = h.hb[sub.hbInterval]
		if g == nil {
			g = &hbGroup{h: h, interval: sub.hbInterval, members: map[*Subscription]struct{}{}}
			h.hb[sub.hbInterval] = g
		}
	}
	h.mu.Unlock()
	if g != nil {
		g.add(sub)
	}
	h.gauge(sub, 1)
	return nil
}

// unregister undoes register; sub has left its topic.
func (h *Hub) unregister(sub *Subscription) {
	h.mu.Lock()
	delete(h.subs, sub)
	g := h.hb[sub.hbInterval]
	empty := len(h.subs) == 0
	drained := h.closed && empty
	h.mu.Unlock()
	if empty {
		h.fetchers.Release()
	}
	if g != nil {
		g.remove(sub)
	}
	if drained {
		h.closeDrained()
	}
	h.gauge(sub, -1)
}

func (h *Hub) gauge(sub *Subscription, delta int64) {
	if sub.transport != "" && h.cfg.StreamsActive != nil {
		h.cfg.StreamsActive(sub.transport, delta)
	}
}

func (h *Hub) closeDrained() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.drained:
	default:
		close(h.drained)
	}
}

// Shutdown fails every subscription with ErrClosed, so that transports end
// their streams, and waits until they have all been closed and the hub's
// goroutines have exited, or ctx ends. New subscriptions fail with
// ErrClosed. Safe to call more than once.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	first := !h.closed
	h.closed = true
	subs := make([]*Subscription, 0, len(h.subs))
	for sub := range h.subs {
		subs = append(subs, sub)
	}
	empty := len(h.subs) == 0
	h.mu.Unlock()
	if first {
		for _, sub := range subs {
			sub.fail(h.cfg.ErrClosed)
		}
		if empty {
			h.closeDrained()
		}
	}
	select {
	case <-h.drained:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.cancel()
	h.fetchers.Close()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait is the wait of a long poll: it blocks until check reports that the
// task has events for the poll, ctx ends or timeout passes. check is the
// caller's own read of its store (which has the last word: the fan-out may
// lag behind it), so what it finds is what the poll answers and Wait
// itself reads and encodes nothing. Wait calls check once after it starts
// watching the task, for an append between the caller's last read and the
// watch, and again each time the task's topic signals that events may have
// been appended; a signal that finds nothing (coalesced or spurious
// notifications) goes on waiting.
//
// A check that fails with ErrExpired, ErrNotFound or ErrInvalidCursor ends
// the wait with that error. Any other failure is taken as transient, like
// a topic's failed read: it is logged at debug level and check is called
// again after a backoff (or at the next signal), so a store's brief outage
// does not fail a poll that would find its event a moment later. It
// returns nil when check found events or the timeout passed (the caller
// reads once more and reports a failure that lasted), check's error as
// above, ctx's error, ErrClosed, or the topic's permanent read error.
func (h *Hub) Wait(ctx context.Context, taskID string, after int64, timeout time.Duration, check func() (found bool, err error)) error {
	sub := h.newSubscription(taskID, after, SubscribeOpts{})
	if err := h.register(sub); err != nil {
		return err
	}
	defer sub.Close()
	// The waiter never takes frames: its cursor stays at after, which
	// holds a shared topic's window there for as long as the poll waits,
	// and a solo topic's appends only signal it.
	sub.t = h.join(sub)
	// Joining signals the waiter (the topic's first notify, a switch to
	// solo); the first check below reads after all of that.
	select {
	case <-sub.ready:
	default:
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var retry *time.Timer // armed after a transient check failure
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	backoff := h.retryMin
	cfg := &h.cfg
	for {
		if p := sub.failErr.Load(); p != nil {
			return *p
		}
		found, err := check()
		switch {
		case found:
			return nil
		case err == nil:
			backoff = h.retryMin
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, cfg.ErrExpired), errors.Is(err, cfg.ErrNotFound), errors.Is(err, cfg.ErrInvalidCursor):
			return err
		default:
			// Debug, not Warn: every waiting poll retries, so an outage
			// would log once per poll and backoff step; a failure that
			// lasts reaches the caller's final read and its error path.
			cfg.Logger.Debug("taskbridge: a long poll's read failed; retrying",
				slog.String("taskId", taskID), slog.Any("error", err))
			if retry == nil {
				retry = time.NewTimer(backoff)
			} else {
				retry.Reset(backoff)
			}
			backoff = min(2*backoff, max(retryMax, h.retryMin))
		}
		var retryC <-chan time.Time
		if err != nil {
			retryC = retry.C
		}
		select {
		case <-sub.ready:
		case <-retryC:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Hold blocks a long poll that can receive no event, because its task has
// ended and its cursor is at the terminal event, until timeout passes, ctx
// ends or the hub shuts down. It returns nil after the timeout, ctx's
// error, or ErrClosed. Such a poll waits like any other (a client resuming
// at the end of a finished task must not spin), but joins no topic: it
// costs a timer and no Source watch.
func (h *Hub) Hold(ctx context.Context, taskID string, timeout time.Duration) error {
	sub := h.newSubscription(taskID, 0, SubscribeOpts{})
	sub.done = true // never joins the task's topic
	if err := h.register(sub); err != nil {
		return err
	}
	defer sub.Close()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-sub.ready:
			if p := sub.failErr.Load(); p != nil {
				return *p
			}
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkDense checks that frames, read after cursor after, continue it
// without a gap. A gap after 0 means retention removed the log's first
// events (ErrExpired); any other gap breaks the Source's contract.
func (h *Hub) checkDense(after int64, frames []*Frame) error {
	if len(frames) == 0 {
		return nil
	}
	first, last := frames[0].Seq, frames[len(frames)-1].Seq
	switch {
	case first == after+1 && last == after+int64(len(frames)):
		return nil
	case after == 0 && first > 1 && last == first+int64(len(frames))-1:
		return fmt.Errorf("%w: events 1..%d were removed by retention", h.cfg.ErrExpired, first-1)
	}
	return fmt.Errorf("%w: source returned events %d..%d after %d", errNotDense, first, last, after)
}

// errNotDense reports a Source that broke the density of Seqs.
var errNotDense = errors.New("fanout: Seqs must be dense")
