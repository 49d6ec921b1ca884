package fanout

import (
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// topic is the live state of one task with subscribers: its watch on the
// Source, the fetcher that reads each new event once, and the window of
// frames its members take from.
type topic struct {
	h      *Hub
	taskID string

	// view is what subscribers read, without taking mu: an immutable
	// snapshot of window and base, replaced under mu whenever either
	// changes. Slots inside a published view are never written again
	// (appends go past its end; trimming re-slices or copies), so a
	// subscriber may read its frames after the fetcher has moved on.
	view atomic.Pointer[windowView]

	// solo is the topic's one member while it reads the Source itself
	// (see soloLocked); nil while the topic's fetcher serves its members
	// through the window. Written under mu, read without it by notify and
	// the member's Next.
	solo atomic.Pointer[Subscription]

	mu     sync.Mutex
	window []*Frame // events with Seq in (base, base+len(window)]
	bytes  int      // JSON bytes in window
	base   int64
	// gen counts the window's restarts by membership changes (see
	// membersChangedLocked): a fetch that read across one drops what it
	// read and reads again from the new window's end.
	gen      uint64
	subs     members
	fetching bool
	dirty    bool
	dead     bool  // removed from the hub
	err      error // permanent read failure, delivered to subscribers
	stop     func()
	// died is closed when the topic dies, so that a fetcher waiting to
	// retry a failed read stops waiting. Made only for such a wait: an
	// idle topic does not pay for it.
	died chan struct{}
}

// windowView is a published snapshot of a topic's window: the frames with
// Seq in (base, base+len(frames)].
type windowView struct {
	base   int64
	frames []*Frame
}

// after returns the view's frames after cursor last; ok is false when last
// is behind the window (its next frames were dropped).
func (v *windowView) after(last int64) (frames []*Frame, ok bool) {
	if last < v.base {
		return nil, false
	}
	if i := last - v.base; i < int64(len(v.frames)) {
		return v.frames[i:], true
	}
	return nil, true
}

// publish makes the current window visible to subscribers. Callers hold mu.
func (t *topic) publish() {
	t.view.Store(&windowView{base: t.base, frames: t.window})
}

// join adds sub to its task's topic, creating the topic at sub's position
// if there is none.
func (h *Hub) join(sub *Subscription) *topic {
	h.mu.Lock()
	t := h.topics[sub.taskID]
	created := t == nil
	if created {
		t = &topic{h: h, taskID: sub.taskID, base: sub.last}
		t.publish()
		h.topics[sub.taskID] = t
	}
	t.mu.Lock()
	t.subs.add(sub)
	if t.err != nil {
		sub.fail(t.err)
	}
	fetch := t.membersChangedLocked()
	t.mu.Unlock()
	h.mu.Unlock()
	if fetch {
		t.notify()
	}
	if created {
		// Watch first, then read: an append between the subscriber's last
		// read and the watch is caught by this first fetch.
		stop := h.cfg.Source.Watch(t.taskID, t.notify)
		t.mu.Lock()
		dead := t.dead
		if !dead {
			t.stop = stop
		}
		t.mu.Unlock()
		if dead {
			stop()
		} else {
			t.notify()
		}
	}
	return t
}

// leave removes sub from t and drops t when it has no subscribers left.
func (h *Hub) leave(t *topic, sub *Subscription) {
	h.mu.Lock()
	t.mu.Lock()
	t.subs.remove(sub)
	var stop func()
	if t.subs.len() > 0 && !t.dead {
		// Leaving never makes the fetcher read: a topic left with one
		// member goes solo, one left with several was not solo.
		t.membersChangedLocked()
	}
	if t.subs.len() == 0 && !t.dead {
		t.solo.Store(nil)
		t.dead = true
		stop = t.stop
		t.window, t.bytes = nil, 0
		t.publish()
		if h.topics[t.taskID] == t {
			delete(h.topics, t.taskID)
		}
		if t.died != nil {
			close(t.died)
		}
	}
	t.mu.Unlock()
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// membersChangedLocked switches the topic between its two ways of serving
// its members after one joined or left; t.mu is held. It reports that the
// fetcher must read (the topic stopped serving a solo member).
//
// A topic with one member (the shape of most deployments: one app watching
// its task) is solo: the watch callback only signals the member, whose
// Next reads the new events from the Source itself, like a replaying
// subscriber, straight into the transport's buffer. No fetcher goroutine
// is started per append, no window is kept, nothing is allocated beyond
// the Source's read. With more members the topic's fetcher reads each
// event once for all of them, through the window.
//
// Switching to the window starts it at the slowest member's cursor, empty,
// so every member finds what it has yet to take; a member still reading
// the Source as the solo one moves its cursor ahead of the window, which
// is fine. Switching to solo drops the window and signals the member: its
// next Next reads the Source after its cursor, whatever the fetcher had or
// had not read. The notify callback signals the solo member first and then
// checks that the topic is still solo (see notify), so an append is never
// missed across a switch.
func (t *topic) membersChangedLocked() (fetch bool) {
	if t.subs.len() != 1 {
		if t.solo.Load() == nil {
			return false
		}
		t.solo.Store(nil)
		base := t.base + int64(len(t.window))
		for sub := range t.subs.all() {
			base = min(base, sub.pos.Load())
		}
		t.window, t.bytes, t.base = nil, 0, base
		t.gen++
		t.publish()
		// A member that has just joined may have found the window empty:
		// wake every member, so none waits for a fetch that finds
		// nothing new.
		for sub := range t.subs.all() {
			sub.signal()
		}
		return true
	}
	if t.err != nil {
		return false
	}
	for sub := range t.subs.all() {
		if t.solo.Load() != sub {
			t.solo.Store(sub)
			t.window, t.bytes = nil, 0
			t.base = sub.pos.Load()
			t.gen++
			t.publish()
			sub.stale.Store(true)
			sub.signal()
		}
	}
	return false
}

// share makes the fetcher serve sub, the topic's solo member, after sub's
// own read of the Source failed with an error worth retrying: the fetcher
// retries with backoff while sub waits, as any member does. The topic stays
// so until its membership changes.
func (t *topic) share(sub *Subscription) {
	t.mu.Lock()
	if t.dead || t.solo.Load() != sub {
		t.mu.Unlock()
		return
	}
	t.solo.Store(nil)
	t.window, t.bytes, t.base = nil, 0, sub.pos.Load()
	t.gen++
	t.publish()
	t.mu.Unlock()
	t.notify()
}

// notify is the Source's watch callback. A solo topic delivers to its
// member inline (see Subscription.deliverInline) or signals it; otherwise
// it starts a fetch, or marks the running one dirty so it reads again. The
// signalling path takes no lock and allocates nothing.
func (t *topic) notify() {
	if s := t.solo.Load(); s != nil {
		r := inlineRefused
		if s.inline != nil {
			r = s.deliverInline(t)
		}
		if r == inlineRefused {
			s.stale.Store(true)
			s.signal()
		}
		if r != inlineSent {
			// Paced after the member's lock is released, so the woken
			// member does not find it held.
			t.h.woke()
		}
		// Still solo after the signal: the member reads the append. A
		// topic that stopped being solo meanwhile may have started its
		// fetch before the append: go on to make it read again.
		if t.solo.Load() == s {
			return
		}
	}
	t.mu.Lock()
	if t.dead || t.err != nil {
		t.mu.Unlock()
		return
	}
	if s := t.solo.Load(); s != nil {
		s.stale.Store(true)
		s.signal()
		t.mu.Unlock()
		return
	}
	if t.fetching {
		t.dirty = true
		t.mu.Unlock()
		return
	}
	t.fetching = true
	t.mu.Unlock()
	t.h.fetchers.Go((*fetchJob)(t))
}

// fetchJob is a topic as the fetchers' job: its Run is the topic's fetch.
type fetchJob topic

func (j *fetchJob) Run() { (*topic)(j).fetch() }

// fetch reads new events until the topic is caught up with the Source.
func (t *topic) fetch() {
	cfg := &t.h.cfg
	backoff := t.h.retryMin
	// The members to deliver to and to wake after the unlock; pooled, as a
	// fetch (and so these lists) is made per append at light load.
	sc := scratchSubs.Get().(*fetchScratch)
	defer scratchSubs.Put(sc)
	for {
		t.mu.Lock()
		if t.dead || t.solo.Load() != nil {
			t.fetching = false
			t.mu.Unlock()
			return
		}
		after := t.base + int64(len(t.window))
		gen := t.gen
		t.dirty = false
		t.mu.Unlock()

		frames, err := cfg.Source.Read(t.h.ctx, t.taskID, after, cfg.Batch)
		if errors.Is(err, cfg.ErrExpired) {
			// The topic fell behind retention: restart the window at the
			// oldest retained event. Members behind it read the Source
			// and get ErrExpired themselves.
			frames, err = cfg.Source.Read(t.h.ctx, t.taskID, 0, cfg.Batch)
			if err == nil && len(frames) > 0 {
				t.mu.Lock()
				if t.gen != gen {
					t.mu.Unlock()
					continue
				}
				t.window, t.bytes = nil, 0
				t.base = frames[0].Seq - 1
				t.publish()
				t.mu.Unlock()
			}
		}
		if errors.Is(err, cfg.ErrNotFound) || errors.Is(err, cfg.ErrInvalidCursor) {
			t.failAll(err)
			return
		}
		if err != nil {
			t.mu.Lock()
			if t.dead || t.solo.Load() != nil || t.h.ctx.Err() != nil {
				t.fetching = false
				t.mu.Unlock()
				return
			}
			if t.died == nil {
				t.died = make(chan struct{})
			}
			died := t.died
			t.mu.Unlock()
			cfg.Logger.Warn("taskbridge: reading events for fan-out failed; retrying",
				slog.String("taskId", t.taskID), slog.Any("error", err))
			timer := time.NewTimer(backoff)
			select {
			case <-timer.C:
			case <-died:
				timer.Stop()
			case <-t.h.ctx.Done():
				timer.Stop()
			}
			backoff = min(2*backoff, max(retryMax, t.h.retryMin))
			continue
		}
		backoff = t.h.retryMin

		t.mu.Lock()
		if t.dead || t.solo.Load() != nil {
			// Solo now: the member reads what this read found itself.
			t.fetching = false
			t.mu.Unlock()
			return
		}
		if t.gen != gen {
			// The window restarted during the read: read again from
			// its end.
			t.mu.Unlock()
			continue
		}
		if len(frames) > 0 {
			end := t.base + int64(len(t.window))
			if err := t.h.checkDense(end, frames); errors.Is(err, cfg.ErrExpired) {
				// The topic read from the start of a log that has lost
				// its first events: start the window at the oldest
				// retained one. Members behind it read the Source and
				// get ErrExpired themselves.
				t.base = frames[0].Seq - 1
			} else if err != nil {
				t.mu.Unlock()
				t.failAll(err)
				return
			}
			t.window = append(t.window, frames...)
			for _, f := range frames {
				t.bytes += len(f.JSON)
			}
			consumed := t.base + int64(len(t.window))
			for sub := range t.subs.all() {
				consumed = min(consumed, sub.pos.Load())
			}
			t.trim(consumed)
			// Publish before signalling: a woken subscriber must find the
			// new frames, or it would wait again and miss them. Members
			// are woken, or get inline deliveries, after the unlock.
			t.publish()
			for sub := range t.subs.all() {
				if sub.inline != nil {
					sc.inline = append(sc.inline, sub)
				} else {
					sc.wake = append(sc.wake, sub)
				}
			}
		}
		done := len(frames) < cfg.Batch && !t.dirty
		if done {
			t.fetching = false
		}
		t.mu.Unlock()
		for _, sub := range sc.wake {
			sub.signal()
			t.h.woke()
		}
		if len(sc.inline) > 0 {
			t.deliverAll(sc.inline)
		}
		sc.reset()
		if done {
			return
		}
	}
}

// inlineChunk is the fewest members a goroutine of deliverAll serves.
const inlineChunk = 64

// deliverAll hands the new frames to members taking inline deliveries
// (see Subscription.deliverShared), signalling those it cannot: one write
// per member, made by the fetcher rather than by a thousand woken
// goroutines. With several Ps, members are split among up to GOMAXPROCS
// goroutines (at least inlineChunk members each), so the writes still run
// in parallel; it returns when all are done.
func (t *topic) deliverAll(subs []*Subscription) {
	parts := min(runtime.GOMAXPROCS(0), (len(subs)+inlineChunk-1)/inlineChunk)
	if parts <= 1 {
		deliverEach(t, subs)
		return
	}
	size := (len(subs) + parts - 1) / parts
	var wg sync.WaitGroup
	for i := size; i < len(subs); i += size {
		part := subs[i:min(i+size, len(subs))]
		wg.Go(func() { deliverEach(t, part) })
	}
	deliverEach(t, subs[:size])
	wg.Wait()
}

// deliverEach delivers inline to each of subs, or signals it.
func deliverEach(t *topic, subs []*Subscription) {
	fp := scratchFrames.Get().(*[]*Frame)
	for _, sub := range subs {
		r := sub.deliverShared(t, fp)
		if r == inlineRefused {
			sub.signal()
		}
		if r != inlineSent {
			t.h.woke()
		}
	}
	scratchFrames.Put(fp)
}

// scratchFrames holds deliverEach's slices.
var scratchFrames = sync.Pool{New: func() any { return new([]*Frame) }}

// fetchScratch is a fetch's lists of the members it hands new frames to.
type fetchScratch struct {
	inline []*Subscription // members taking inline deliveries
	wake   []*Subscription // the others, to be signalled
}

// reset empties the lists, keeping their arrays.
func (sc *fetchScratch) reset() {
	clear(sc.inline)
	clear(sc.wake)
	sc.inline, sc.wake = sc.inline[:0], sc.wake[:0]
}

// scratchSubs holds fetch's lists.
var scratchSubs = sync.Pool{New: func() any { return new(fetchScratch) }}

// trim drops the window's frames every subscriber has taken (Seq <=
// consumed), and the oldest beyond topicWindow and topicWindowBytes: a
// subscriber that still needs those reads them from the Source. Slots are
// never cleared in place, since published views may still be reading them;
// instead the window is copied to a fresh array once the dropped prefix
// outweighs what remains, so the frames it held can be collected and no
// more than about twice the live window stays reachable.
func (t *topic) trim(consumed int64) {
	k := min(int(max(consumed-t.base, 0)), len(t.window))
	k = max(k, len(t.window)-topicWindow)
	bytes := t.bytes
	for _, f := range t.window[:k] {
		bytes -= len(f.JSON)
	}
	for ; bytes > topicWindowBytes && k < len(t.window); k++ {
		bytes -= len(t.window[k].JSON)
	}
	if k == 0 {
		return
	}
	rest := t.window[k:]
	switch {
	case len(rest) == 0:
		rest = nil
	case cap(t.window)-cap(rest) > len(rest):
		rest = append([]*Frame(nil), rest...)
	}
	t.window = rest
	t.base += int64(k)
	t.bytes = bytes
}

// failAll ends the topic's reads with a permanent error, which every
// member and later joiner gets from Next.
func (t *topic) failAll(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetching = false
	t.err = err
	for sub := range t.subs.all() {
		sub.fail(err)
	}
}

// frames appends to dst the window frames after sub's cursor. ok is false
// when sub is behind the window and must read the Source. It takes no lock:
// a thousand subscribers woken by one append read the same view at once.
func (t *topic) frames(sub *Subscription, dst []*Frame) ([]*Frame, bool) {
	out, ok := t.view.Load().after(sub.last)
	if !ok {
		return dst, false
	}
	if len(out) > maxFramesPerNext {
		out = out[:maxFramesPerNext]
		sub.signal()
	}
	return sub.take(dst, out, false), true
}
