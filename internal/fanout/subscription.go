package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Subscription is a replay-then-live stream of one task's events. Next and
// Close must be called from one goroutine at a time (the transport's); with
// SubscribeOpts.Deliver, under Lock.
type Subscription struct {
	h         *Hub
	taskID    string
	transport string
	ready     chan struct{}
	batch     int

	// inline is set when the subscription takes inline deliveries (see
	// SubscribeOpts.Deliver); apart, so that the others do not pay for it.
	inline *inlineSub

	// Owned by the consumer goroutine.
	last    int64    // Seq of the last event handed out
	pending []*Frame // first batch, read by Subscribe
	t       *topic   // joined topic; nil while replaying from the Source
	done    bool     // terminal frame handed out
	closed  bool

	// Observation (see Observer); obs is nil when unobserved.
	obs                 *Observer
	id                  uint64
	started             time.Time
	replayed, delivered int64
	nextErr             error  // the last error Next returned, but io.EOF
	endReason           string // set by SetEnd
	endErr              error

	// Shared with the hub, topics and the heartbeat scheduler.
	pos        atomic.Int64          // copy of last, read by the topic to trim its window
	failErr    atomic.Pointer[error] // ErrClosed on shutdown, or a topic's permanent error
	hbInterval time.Duration
	// lastActive is the time (unix nanos) of the heartbeat scheduler's
	// first tick after the last frame or heartbeat, or 0 when there was one
	// since its last tick (see hbGroup.check).
	lastActive atomic.Int64
	hbDue      atomic.Bool
	// stale tells a solo topic's member that the Source may hold events it
	// has not read: set before every signal that asks it to read (an
	// append, the switch to solo) and after a read that filled its batch,
	// cleared before each read. Without it every Next of a solo member
	// reads the Source, also the one a transport makes right after sending
	// (more may follow) and the one woken by a signal whose read an
	// earlier Next already made: reads that find nothing, on the
	// transport's own goroutine, whose stack they grow for its whole life.
	stale atomic.Bool
}

// TaskID returns the subscribed task's id.
func (sub *Subscription) TaskID() string { return sub.taskID }

// Ready is signalled when Next may have frames, a heartbeat is due or the
// subscription ended. It is SubscribeOpts.Signal when that was set.
func (sub *Subscription) Ready() <-chan struct{} { return sub.ready }

// Wake makes Ready fire once without a new event, for a consumer that
// waits only on Ready and has something else to check (a handler shutting
// down). Next then returns what there is, possibly nothing.
func (sub *Subscription) Wake() { sub.signal() }

// inlineSub is what a subscription taking inline deliveries adds.
type inlineSub struct {
	// deliver is SubscribeOpts.Deliver.
	deliver func([]*Frame) bool
	// mu makes the watch callback's deliveries exclusive with the
	// consumer's Next, writes and Close (see Subscription.Lock).
	mu sync.Mutex
}

// Lock makes the caller the subscription's only consumer until Unlock. A
// subscription with SubscribeOpts.Deliver is shared with the goroutines
// that append to its task: its transport holds Lock around each Next
// together with the writes of what Next returned (so that an inline
// delivery cannot overtake them) and around Close, and writes nothing of
// its own while an inline delivery may run. Lock is cheap when
// uncontended (and does nothing for a subscription without Deliver); the
// watch callback only ever tries it.
func (sub *Subscription) Lock() {
	if sub.inline != nil {
		sub.inline.mu.Lock()
	}
}

// Unlock releases Lock.
func (sub *Subscription) Unlock() {
	if sub.inline != nil {
		sub.inline.mu.Unlock()
	}
}

// inlineResult is what an inline delivery to a member did.
type inlineResult uint8

const (
	// inlineRefused: nothing was delivered (the member busy, replaying,
	// behind the window or ended, or the read failed or filled a batch);
	// the caller signals the member, whose Next deals with it.
	inlineRefused inlineResult = iota
	// inlineSent: delivered; the member's goroutine need not wake.
	inlineSent
	// inlineWoken: delivered, and the member was signalled to take what
	// Deliver kept for it, or to see its stream's end.
	inlineWoken
)

// deliverInline is the watch callback's delivery to t's solo member sub:
// when sub's consumer is not using it (Lock is free), it reads the new
// events from the Source and hands them to Deliver on the calling
// goroutine.
func (sub *Subscription) deliverInline(t *topic) inlineResult {
	if !sub.h.cfg.InlineReads || !sub.lockInline(t) {
		return inlineRefused
	}
	defer sub.inline.mu.Unlock()
	sub.stale.Store(false)
	frames, err := sub.h.cfg.Source.Read(sub.h.ctx, sub.taskID, sub.last, sub.batch)
	if err == nil {
		owned(frames)
		err = sub.h.checkDense(sub.last, frames)
	}
	if err != nil || len(frames) >= sub.batch {
		sub.stale.Store(true)
		return inlineRefused
	}
	if len(frames) == 0 {
		return inlineSent
	}
	// Taken as take does, without copying: the Source's slice is not
	// written.
	out := frames[:sub.advance(frames)]
	if sub.obs != nil {
		sub.observeDeliveries(out, false)
	}
	return sub.handOver(out)
}

// lockInline takes sub's lock for an inline delivery from t. It reports
// false, without the lock, when the consumer holds it or sub cannot take
// one now (still replaying, ended, failed, or no longer t's member).
func (sub *Subscription) lockInline(t *topic) bool {
	if !sub.inline.mu.TryLock() {
		return false
	}
	if sub.closed || sub.done || sub.t != t || len(sub.pending) > 0 || sub.failErr.Load() != nil {
		sub.inline.mu.Unlock()
		return false
	}
	return true
}

// markActive records a delivery for the heartbeat scheduler, without
// reading the clock: a plain load when it is recorded already, as it is
// for all but the first delivery between two of its ticks.
func (sub *Subscription) markActive() {
	if sub.lastActive.Load() != 0 {
		sub.lastActive.Store(0)
	}
}

// handOver passes frames that sub has taken to its Deliver, and signals
// sub when Deliver kept some for the consumer or the stream is over.
func (sub *Subscription) handOver(frames []*Frame) inlineResult {
	sub.markActive()
	if !sub.inline.deliver(frames) || sub.done {
		sub.signal()
		return inlineWoken
	}
	return inlineSent
}

// deliverShared is a shared topic's inline delivery to its member sub,
// on the topic's fetcher (see topic.deliverAll): when sub's consumer is not
// using it, it takes the frames after sub's cursor from the window, as
// Next would, and hands them to Deliver, using scratch for the slice.
func (sub *Subscription) deliverShared(t *topic, scratch *[]*Frame) inlineResult {
	if !sub.lockInline(t) {
		return inlineRefused
	}
	defer sub.inline.mu.Unlock()
	out, ok := t.frames(sub, (*scratch)[:0])
	if !ok {
		return inlineRefused // behind the window: Next reads the Source
	}
	r := inlineSent
	if len(out) > 0 {
		r = sub.handOver(out)
	}
	clear(out)
	*scratch = out[:0]
	return r
}

func (sub *Subscription) signal() {
	select {
	case sub.ready <- struct{}{}:
	default:
	}
}

func (sub *Subscription) fail(err error) {
	sub.failErr.CompareAndSwap(nil, &err)
	sub.signal()
}

// Next appends the frames available now to dst and returns it. It reads the
// Source while replaying but never waits for live events: with no frames
// and a nil error, wait on Ready. After returning a terminal event's frame,
// the next call returns io.EOF; it returns io.EOF at once if the stream
// started at or after the terminal event. It returns ErrClosed when the hub
// shuts down or after Close, ErrExpired if retention removed events it had
// yet to deliver, and a topic's permanent read error (ErrNotFound when the
// task was deleted).
func (sub *Subscription) Next(ctx context.Context, dst []*Frame) ([]*Frame, error) {
	switch {
	case sub.closed:
		return dst, sub.h.cfg.ErrClosed
	case sub.done:
		return dst, io.EOF
	}
	if p := sub.failErr.Load(); p != nil {
		return dst, *p
	}
	n := len(dst)
	var err error
	switch {
	case len(sub.pending) > 0:
		dst = sub.take(dst, sub.pending, true)
		sub.pending = nil
		if len(dst)-n < sub.batch {
			dst, err = sub.joinLive(ctx, dst)
		}
	case sub.t == nil:
		dst, err = sub.replay(ctx, dst)
	case sub.t.solo.Load() == sub:
		dst, err = sub.readSolo(ctx, dst)
	default:
		var ok bool
		if dst, ok = sub.t.frames(sub, dst); !ok {
			// Fell behind the window: read the Source until caught up.
			sub.leave()
			dst, err = sub.replay(ctx, dst)
		}
	}
	if len(dst) > n {
		sub.markActive()
	}
	if err != nil {
		sub.nextErr = err
	}
	return dst, err
}

// More reports whether Next may have something for the caller now: frames,
// or the end of the stream. It is false only when the subscription is known
// to be caught up (a solo topic's member that nothing was appended to since
// its last read, a shared topic's member at the end of the published
// window), so that a transport that has just sent what Next returned can
// wait on Ready at once instead of calling Next for nothing: whatever comes
// later signals Ready. Call it from the consumer, as Next.
func (sub *Subscription) More() bool {
	switch {
	case sub.closed, sub.done, len(sub.pending) > 0, sub.t == nil, sub.failErr.Load() != nil:
		return true
	case sub.t.solo.Load() == sub:
		return sub.stale.Load()
	}
	out, ok := sub.t.view.Load().after(sub.last)
	return !ok || len(out) > 0
}

// take appends frames to dst, tracking the cursor and the terminal event;
// replayed reports frames read from the Source by this subscription.
func (sub *Subscription) take(dst, frames []*Frame, replayed bool) []*Frame {
	frames = frames[:sub.advance(frames)]
	if sub.obs != nil {
		sub.observeDeliveries(frames, replayed)
	}
	return append(dst, frames...)
}

// advance moves the cursor over frames, up to the terminal event, and
// returns how many it took.
func (sub *Subscription) advance(frames []*Frame) int {
	for i, f := range frames {
		sub.last = f.Seq
		sub.pos.Store(sub.last)
		if f.Terminal {
			sub.done = true
			return i + 1
		}
	}
	return len(frames)
}

// observeDeliveries counts frames handed out and reports them to the
// observer.
func (sub *Subscription) observeDeliveries(frames []*Frame, replayed bool) {
	k := int64(len(frames))
	sub.delivered += k
	if replayed {
		sub.replayed += k
	}
	if fn := sub.obs.Deliver; fn != nil {
		for _, f := range frames {
			fn(sub, f, replayed)
		}
	}
}

// replay reads one batch from the Source; when the batch shows the
// subscriber caught up, it joins the task's topic.
//
// Every read but Subscribe's first is held to "strictly after the last
// delivered Seq", including at cursor 0: a stream that started before the
// task had events could have delivered event 1, so a log that no longer
// starts at 1 has lost events it owes (the Source itself reads "after 0"
// as "from the oldest retained event").
func (sub *Subscription) replay(ctx context.Context, dst []*Frame) ([]*Frame, error) {
	n := len(dst)
	dst, err := sub.read(ctx, dst, true)
	if err != nil || sub.done {
		return dst, err
	}
	if len(dst)-n < sub.batch {
		return sub.joinLive(ctx, dst)
	}
	return dst, nil
}

// read reads one batch after the cursor from the Source and takes it.
// replayed is passed on to the observer: the Source is read for a replay
// or for the live events of a solo topic's member.
func (sub *Subscription) read(ctx context.Context, dst []*Frame, replayed bool) ([]*Frame, error) {
	frames, err := sub.h.cfg.Source.Read(ctx, sub.taskID, sub.last, sub.batch)
	if err != nil {
		return dst, err
	}
	owned(frames)
	if err := sub.h.checkDense(sub.last, frames); err != nil {
		return dst, err
	}
	return sub.take(dst, frames, replayed), nil
}

// readSolo reads the new events of a solo topic's member (see
// topic.membersChangedLocked) from the Source, as replay does. Errors that
// end the subscription (retention overtook it, the task was deleted, the
// log went backwards, a broken Source contract) are returned; any other
// read error hands the topic to its fetcher, which retries with backoff.
//
// It reads only when the member is stale: nothing was appended since its
// last read, which found less than a batch, is known without a read.
func (sub *Subscription) readSolo(ctx context.Context, dst []*Frame) ([]*Frame, error) {
	if !sub.stale.Swap(false) {
		return dst, nil
	}
	n := len(dst)
	dst, err := sub.read(ctx, dst, false)
	if err != nil || len(dst)-n >= sub.batch {
		// More may follow a full batch; a failed read is read again.
		sub.stale.Store(true)
	}
	cfg := &sub.h.cfg
	switch {
	case err == nil:
		return dst, nil
	case ctx.Err() != nil, errors.Is(err, cfg.ErrExpired), errors.Is(err, cfg.ErrNotFound),
		errors.Is(err, cfg.ErrInvalidCursor), errors.Is(err, errNotDense):
		return dst, err
	}
	sub.t.share(sub)
	return dst[:n], nil
}

// joinLive joins the task's topic and takes what its window holds after
// the cursor: events may have reached the topic between the subscriber's
// last read and the join. If the window has moved past the cursor
// meanwhile (its other members took those frames and they were dropped),
// the subscriber leaves again and signals itself, so that the next Next
// reads them from the Source: nothing else would wake it.
//
// A subscriber that joined as its topic's solo member reads the Source
// again at once, for what was appended between its last read and the
// join, instead of in a later Next woken by the switch to solo: this Next
// is typically a transport's first step, which runs on a short-lived
// goroutine, while a later one may run on the goroutine that holds the
// connection (see sse's offload), whose stack a Source read would grow for
// the stream's life. The signal the switch left makes a Next that reads
// nothing.
func (sub *Subscription) joinLive(ctx context.Context, dst []*Frame) ([]*Frame, error) {
	if sub.t != nil || sub.done {
		return dst, nil
	}
	sub.t = sub.h.join(sub)
	out, ok := sub.t.frames(sub, dst)
	if !ok {
		sub.leave()
		sub.signal()
		return dst, nil
	}
	if sub.t.solo.Load() == sub && !sub.done {
		return sub.readSolo(ctx, out)
	}
	return out, nil
}

func (sub *Subscription) leave() {
	if sub.t != nil {
		sub.h.leave(sub.t, sub)
		sub.t = nil
	}
}

// Close ends the subscription and releases its resources. Idempotent. It
// reports the end to the observer before the stream stops being counted
// (Config.StreamsActive) and before a shutting-down hub may return, so a
// gauge at zero means every end has been reported.
func (sub *Subscription) Close() {
	if sub.closed {
		return
	}
	sub.closed = true
	sub.leave()
	if sub.obs != nil {
		sub.observeEnd()
	}
	sub.h.unregister(sub)
}

// String describes the subscription for logs.
func (sub *Subscription) String() string {
	return fmt.Sprintf("subscription(task=%s, transport=%s, after=%d)", sub.taskID, sub.transport, sub.last)
}
