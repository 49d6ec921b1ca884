package taskbridge_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/memstore"
)

var (
	stressSeed     = flag.Uint64("fanout.seed", 0, "seed of TestFanOutStress; 0 picks one (printed on failure)")
	stressDuration = flag.Duration("fanout.duration", 0, "how long TestFanOutStress runs; defaults to 2s, 300ms with -short")
)

// TestFanOutStress runs rounds of random fan-out traffic until its
// duration has passed: several appenders, a small retention, subscribers
// that start at random cursors (before the first event too), pause, drop
// and resume, long polls, and in some rounds a Shutdown in mid-stream.
// Every stream must deliver each event after its cursor exactly once and
// in order, or end with an ErrEventsExpired that the store confirms, or
// with ErrClosed after a shutdown: never a gap, a repeat or a hang. A
// failure prints the seed; rerun it with
//
//	go test -race -run TestFanOutStress -fanout.seed=N -fanout.duration=1m
//
// (Goroutine scheduling still varies between runs; the seed fixes the
// parameters and every random choice.)
func TestFanOutStress(t *testing.T) {
	t.Parallel()
	d := *stressDuration
	if d == 0 {
		d = 2 * time.Second
		if testing.Short() {
			d = 300 * time.Millisecond
		}
	}
	runFanOutStress(t, d)
}

// TestFanOutStressRecycled is TestFanOutStress with released frames
// recycled, as in production, rather than spoiled (as the package's tests
// run otherwise): a frame reused while a subscription still held it would
// deliver another event's bytes, which the streams' checks catch. Not
// parallel, since recycling is a process-wide setting; a quarter of the
// default duration.
func TestFanOutStressRecycled(t *testing.T) {
	fanout.PoisonReleased(false)
	defer fanout.PoisonReleased(true)
	d := *stressDuration / 4
	if d == 0 {
		d = 500 * time.Millisecond
		if testing.Short() {
			d = 100 * time.Millisecond
		}
	}
	runFanOutStress(t, d)
}

// runFanOutStress runs stress rounds until d has passed.
func runFanOutStress(t *testing.T, d time.Duration) {
	seed := *stressSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test -race -run %s -fanout.seed=%d", t.Name(), seed)
		}
	})
	deadline := time.Now().Add(d)
	rounds := 0
	for ; rounds == 0 || time.Now().Before(deadline); rounds++ {
		r := newStressRound(t, seed, uint64(rounds))
		if !r.run() {
			return
		}
	}
	t.Logf("seed %d: %d rounds, %d inline", seed, rounds, inlineCalls.Load())
}

// stressRound is one service, store and task with its traffic.
type stressRound struct {
	t     *testing.T
	name  string
	rng   *rand.Rand
	store *memstore.Store
	svc   *taskbridge.Service
	task  string

	retention   int
	appenders   int
	subscribers int
	pollers     int
	events      int   // appended before the terminal event
	shutdownAt  int64 // shut down once this many events exist; 0: never

	appended atomic.Int64  // events in the log
	closing  atomic.Bool   // Shutdown is due
	shutdown chan struct{} // closed when Shutdown is due
	progress *broadcast    // advanced as events are appended
	finished chan struct{} // closed when the appenders are done

	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	errs []string
}

func newStressRound(t *testing.T, seed, round uint64) *stressRound {
	rng := rand.New(rand.NewPCG(seed, round))
	r := &stressRound{
		t:           t,
		name:        fmt.Sprintf("seed %d round %d", seed, round),
		rng:         rng,
		retention:   []int{0, 8, 20, 50, 100, 300}[rng.IntN(6)],
		appenders:   1 + rng.IntN(4),
		subscribers: 1 + rng.IntN(11),
		pollers:     rng.IntN(3),
		events:      50 + rng.IntN(1500),
		progress:    newBroadcast(),
		shutdown:    make(chan struct{}),
		finished:    make(chan struct{}),
	}
	if rng.IntN(3) == 0 {
		r.shutdownAt = 1 + rng.Int64N(int64(r.events))
	}
	r.store = memstore.New(memstore.Config{MaxEventsPerTask: r.retention})
	svc, err := taskbridge.New(taskbridge.Config{
		Store: r.store, Executor: &fakeExecutor{}, Logger: discardLogger(),
		ReplayBatch: []int{1, 3, 16, 64, 256}[rng.IntN(5)],
	})
	if err != nil {
		t.Fatal(err)
	}
	r.svc = svc
	resp, err := svc.CreateTask(context.Background(), alice, taskbridge.CreateTaskRequest{ClientRequestID: "c", TaskType: "t"})
	if err != nil {
		t.Fatal(err)
	}
	r.task = resp.TaskID
	r.ctx, r.cancel = context.WithTimeout(context.Background(), 60*time.Second)
	return r
}

func (r *stressRound) failf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.cancel()
}

// run runs the round and reports whether it passed.
func (r *stressRound) run() bool {
	defer r.cancel()
	var wg sync.WaitGroup
	// Some subscribers start before the task's first event.
	early := r.rng.IntN(r.subscribers + 1)
	for i := range r.subscribers {
		if i == early {
			r.emit(taskbridge.StartedPayload{})
		}
		rng := rand.New(rand.NewPCG(r.rng.Uint64(), uint64(i)))
		wg.Go(func() { r.subscriber(rng) })
	}
	if early == r.subscribers {
		r.emit(taskbridge.StartedPayload{})
	}
	for i := range r.pollers {
		rng := rand.New(rand.NewPCG(r.rng.Uint64(), uint64(1000+i)))
		wg.Go(func() { r.poller(rng) })
	}
	var shutdownErr error
	wg.Go(func() {
		// Shut down while the appenders and subscribers still run.
		select {
		case <-r.shutdown:
		case <-r.finished:
			if !r.closing.Load() {
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		shutdownErr = r.svc.Shutdown(ctx)
		cancel()
	})
	var appenders sync.WaitGroup
	for range r.appenders {
		appenders.Go(r.appender)
	}
	appenders.Wait()
	close(r.finished)
	wg.Wait()
	if shutdownErr != nil {
		r.failf("Shutdown: %v", shutdownErr)
	}
	if err := r.svc.Shutdown(context.Background()); err != nil {
		r.failf("final Shutdown: %v", err)
	}
	_ = r.store.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		r.t.Errorf("%s (retention %d, %d appenders, %d subscribers, %d pollers, %d events, shutdown at %d): %s",
			r.name, r.retention, r.appenders, r.subscribers, r.pollers, r.events, r.shutdownAt, e)
	}
	return len(r.errs) == 0
}

// emit appends the task's first event.
func (r *stressRound) emit(p taskbridge.Payload) {
	ev, err := r.svc.Emitter(r.task).Emit(context.Background(), p)
	if err != nil {
		r.failf("emit: %v", err)
		return
	}
	r.appended.Store(max(r.appended.Load(), ev.Seq))
	r.progress.advance()
}

// appender emits messages until the round has its events, then tries to
// end the task; the first to try succeeds. A round with a shutdown stops
// appending once Shutdown has begun.
func (r *stressRound) appender() {
	em := r.svc.Emitter(r.task)
	for r.ctx.Err() == nil {
		n := r.appended.Load()
		if r.shutdownAt > 0 && n >= r.shutdownAt {
			if r.closing.CompareAndSwap(false, true) {
				close(r.shutdown)
			}
			return
		}
		if n >= int64(r.events) {
			ev, err := em.Emit(context.Background(), taskbridge.CompletedPayload{})
			switch {
			case errors.Is(err, taskbridge.ErrTaskTerminal):
			case err != nil:
				r.failf("emit terminal: %v", err)
			default:
				r.appended.Store(max(r.appended.Load(), ev.Seq))
				r.progress.advance()
			}
			return
		}
		ev, err := em.Emit(context.Background(), taskbridge.MessagePayload{Message: strconv.FormatInt(n, 10)})
		switch {
		case errors.Is(err, taskbridge.ErrTaskTerminal):
			return // another appender ended the task
		case err != nil:
			r.failf("emit: %v", err)
			return
		}
		r.appended.Store(max(r.appended.Load(), ev.Seq))
		r.progress.advance()
	}
}

// expiredOK checks an ErrEventsExpired against the store: retention only
// moves forward, so events after the cursor must be gone now too. A
// stream held at cursor 0 is owed event 1.
func (r *stressRound) expiredOK(cursor int64, who string) {
	evs, err := r.store.Read(context.Background(), r.task, cursor, 1)
	switch {
	case cursor >= 1 && errors.Is(err, taskbridge.ErrEventsExpired):
	case cursor == 0 && err == nil && (len(evs) == 0 || evs[0].Seq > 1):
	default:
		r.failf("%s: ErrEventsExpired after %d, but the store reads %d events (%v)", who, cursor, len(evs), err)
	}
}

// pickCursor returns a random cursor: from the start, the newest event,
// or anything in between.
func (r *stressRound) pickCursor(rng *rand.Rand, last int64) int64 {
	n := r.appended.Load()
	switch rng.IntN(5) {
	case 0:
		return 0
	case 1:
		return n
	case 2:
		if last >= 0 {
			return last
		}
	}
	return rng.Int64N(n + 1)
}

// subscriber runs streams one after another: it subscribes, reads with
// pauses, and sometimes drops the stream and resumes from its last event
// (or another cursor), until a stream ends with the terminal event or the
// service shuts down.
func (r *stressRound) subscriber(rng *rand.Rand) {
	last := int64(-1) // last Seq delivered by any stream; -1: none yet
	for stream := 0; r.ctx.Err() == nil; stream++ {
		cursor := r.pickCursor(rng, last)
		if stream == 0 && rng.IntN(2) == 0 {
			cursor = 0
		}
		who := fmt.Sprintf("stream %d from %d", stream, cursor)
		oldest := r.oldest()
		var hb time.Duration
		if rng.IntN(4) == 0 {
			hb = time.Duration(1+rng.IntN(5)) * time.Millisecond
		}
		opts := fanout.SubscribeOpts{Transport: "ws", HeartbeatInterval: hb}
		var inl *inlineSink
		if rng.IntN(2) == 0 {
			// Take events on the appenders' goroutines too (memstore reads
			// inline), refusing some.
			inl = &inlineSink{refuse: 1 + rng.IntN(4), wake: make(chan struct{}, 1)}
			opts.Deliver = inl.deliver
		}
		sub, err := hooks.Subscribe(r.ctx, r.svc, alice, r.task, taskbridge.FormatEventID(cursor), opts)
		switch {
		case errors.Is(err, taskbridge.ErrClosed) && r.closing.Load():
			return
		case errors.Is(err, taskbridge.ErrEventsExpired):
			r.expiredOK(cursor, who)
			continue
		case err != nil:
			r.failf("%s: Subscribe: %v", who, err)
			return
		}
		next, end := r.read(rng, sub, inl, cursor, oldest, who)
		sub.Lock()
		sub.Close()
		sub.Unlock()
		if next >= 0 {
			last = next
		}
		if end {
			return
		}
	}
}

// inlineSink is a subscriber's SubscribeOpts.Deliver: it keeps what the
// appenders deliver for the subscriber's next read, and reports every
// refuse-th delivery as not sent, as a transport does when the socket is
// full. Called with the subscription locked, like every use of frames.
type inlineSink struct {
	refuse int
	calls  int
	frames []*fanout.Frame
	wake   chan struct{}
}

// inlineCalls counts the inline deliveries of every round, for the log.
var inlineCalls atomic.Int64

func (s *inlineSink) deliver(frames []*fanout.Frame) bool {
	inlineCalls.Add(1)
	s.frames = append(s.frames, frames...)
	s.calls++
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return s.calls%s.refuse != 0
}

// readNext is sub.Next, preceded by what inl took inline (nil: sub has no
// Deliver).
func readNext(ctx context.Context, sub *fanout.Subscription, inl *inlineSink, buf []*fanout.Frame) ([]*fanout.Frame, error) {
	if inl == nil {
		return sub.Next(ctx, buf)
	}
	sub.Lock()
	defer sub.Unlock()
	buf = append(buf, inl.frames...)
	clear(inl.frames)
	inl.frames = inl.frames[:0]
	return sub.Next(ctx, buf)
}

// read reads sub until the stream ends or the subscriber drops it. It
// returns the last Seq delivered (-1 for none) and whether the subscriber
// is done.
func (r *stressRound) read(rng *rand.Rand, sub *fanout.Subscription, inl *inlineSink, cursor, oldest int64, who string) (int64, bool) {
	var buf []*fanout.Frame
	var inlineWake chan struct{}
	if inl != nil {
		inlineWake = inl.wake
	}
	prev, delivered := cursor, int64(-1)
	dropAfter := -1
	if rng.IntN(3) == 0 {
		dropAfter = rng.IntN(200)
	}
	for n := 0; ; n++ {
		frames, err := readNext(r.ctx, sub, inl, buf[:0])
		for _, f := range frames {
			seq := f.Seq
			switch {
			case prev == 0 && delivered < 0 && cursor == 0:
				// "From the start": the oldest event retained when the
				// stream began.
				if seq < max(oldest, 1) || seq > r.oldest() && seq != 1 {
					r.failf("%s: first event %d, oldest retained was %d", who, seq, oldest)
				}
			case seq != prev+1:
				r.failf("%s: event %d after %d", who, seq, prev)
				return delivered, true
			}
			if id := taskbridge.FormatEventID(seq); f.EventID != id || !bytes.Contains(f.JSON, []byte(`"eventId":"`+id+`"`)) {
				r.failf("%s: event %d has id %q and JSON %s", who, seq, f.EventID, f.JSON)
			}
			prev, delivered = seq, seq
		}
		// Done with them, as a transport is once it wrote them: recycled
		// or (TestFanOutStress) spoiled, which a later use would show.
		fanout.Release(frames)
		buf = frames
		switch {
		case errors.Is(err, io.EOF):
			if fin := r.terminal(); prev != fin {
				r.failf("%s: EOF after %d, terminal event is %d", who, prev, fin)
			}
			return delivered, true
		case errors.Is(err, taskbridge.ErrClosed):
			if !r.closing.Load() {
				r.failf("%s: ErrClosed without a shutdown", who)
			}
			return delivered, true
		case errors.Is(err, taskbridge.ErrEventsExpired):
			r.expiredOK(prev, who)
			return delivered, false
		case err != nil:
			if r.ctx.Err() == nil {
				r.failf("%s: Next after %d: %v", who, prev, err)
			}
			return delivered, true
		}
		if n == dropAfter {
			return delivered, false
		}
		if len(frames) > 0 {
			if rng.IntN(8) == 0 {
				r.pause(rng)
			}
			continue
		}
		sub.HeartbeatDue()
		select {
		case <-sub.Ready():
		case <-inlineWake:
		case <-r.ctx.Done():
			r.failf("%s: stranded after %d; the log has %d events, terminal %d", who, prev, r.appended.Load(), r.terminal())
			return delivered, true
		}
	}
}

// pause stops reading until a few more events have been appended (or the
// appenders are done), so that the subscriber falls behind.
func (r *stressRound) pause(rng *rand.Rand) {
	for range 1 + rng.IntN(64) {
		select {
		case <-r.progress.wait():
		case <-r.finished:
			return
		case <-r.ctx.Done():
			return
		}
	}
}

// terminal returns the Seq of the task's terminal event, 0 if it has none.
func (r *stressRound) terminal() int64 {
	task, err := r.store.GetTask(context.Background(), r.task)
	if err != nil || !task.Status.Terminal() {
		return 0
	}
	return task.LastSeq
}

// oldest returns the Seq of the oldest retained event (1 before the first
// event exists).
func (r *stressRound) oldest() int64 {
	evs, err := r.store.Read(context.Background(), r.task, 0, 1)
	if err != nil || len(evs) == 0 {
		return r.appended.Load() + 1
	}
	return evs[0].Seq
}

// poller long-polls from cursor to cursor until the terminal event or a
// shutdown.
func (r *stressRound) poller(rng *rand.Rand) {
	cursor := ""
	var prev int64
	for r.ctx.Err() == nil {
		resp, err := r.svc.PollEvents(r.ctx, alice, r.task, taskbridge.PollRequest{
			AfterEventID: cursor, MaxEvents: 1 + rng.IntN(50), WaitTimeout: time.Duration(1+rng.IntN(20)) * time.Millisecond,
		})
		switch {
		case errors.Is(err, taskbridge.ErrClosed) && r.closing.Load(), r.ctx.Err() != nil:
			return
		case errors.Is(err, taskbridge.ErrEventsExpired):
			r.expiredOK(prev, "poller")
			cursor, prev = "", 0
			continue
		case err != nil:
			r.failf("poll after %q: %v", cursor, err)
			return
		}
		for i, ev := range resp.Events {
			if (cursor != "" || i > 0) && ev.Seq != prev+1 {
				r.failf("poll after %q: event %d after %d", cursor, ev.Seq, prev)
				return
			}
			prev = ev.Seq
			if ev.Terminal() {
				return
			}
		}
		if resp.NextAfterEventID != nil {
			cursor = *resp.NextAfterEventID
		}
	}
}

// broadcast wakes every waiter each time it advances.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) advance() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}
