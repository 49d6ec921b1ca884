package fanout

import (
	"errors"
	"log/slog"
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

	mu       sync.Mutex
	window   []*Frame // events with Seq in (base, base+len(window)]
	bytes    int      // JSON bytes in window
	base     int64
	subs     map[*Subscription]struct{}
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
		t = &topic{h: h, taskID: sub.taskID, base: sub.last, subs: map[*Subscription]struct{}{}}
		t.publish()
		h.topics[sub.taskID] = t
	}
	t.mu.Lock()
	t.subs[sub] = struct{}{}
	if t.err != nil {
		sub.fail(t.err)
	}
	t.mu.Unlock()
	h.mu.Unlock()
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
	delete(t.subs, sub)
	var stop func()
	if len(t.subs) == 0 && !t.dead {
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

// notify is the Source's watch callback: it starts a fetch, or marks the
// running one dirty so it reads again.
func (t *topic) notify() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead || t.err != nil {
		return
	}
	if t.fetching {
		t.dirty = true
		return
	}
	t.fetching = true
	t.h.wg.Add(1)
	go t.fetch()
}

// fetch reads new events until the topic is caught up with the Source.
func (t *topic) fetch() {
	defer t.h.wg.Done()
	cfg := &t.h.cfg
	backoff := t.h.retryMin
	for {
		t.mu.Lock()
		if t.dead {
			t.fetching = false
			t.mu.Unlock()
			return
		}
		after := t.base + int64(len(t.window))
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
			if t.dead || t.h.ctx.Err() != nil {
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
		if t.dead {
			t.fetching = false
			t.mu.Unlock()
			return
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
			for sub := range t.subs {
				consumed = min(consumed, sub.pos.Load())
			}
			t.trim(consumed)
			// Publish before signalling: a woken subscriber must find the
			// new frames, or it would wait again and miss them.
			t.publish()
			for sub := range t.subs {
				sub.signal()
			}
		}
		if len(frames) < cfg.Batch && !t.dirty {
			t.fetching = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

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
	for sub := range t.subs {
		sub.fail(err)
	}
}

// frames appends to dst the window frames after sub's cursor. ok is false
// when sub is behind the window and must read the Source. It takes no lock:
// a thousand subscribers woken by one append read the same view at once.
func (t *topic) frames(sub *Subscription, dst []*Frame) ([]*Frame, bool) {
	v := t.view.Load()
	if sub.last < v.base {
		return dst, false
	}
	i := sub.last - v.base
	var out []*Frame
	if i < int64(len(v.frames)) {
		out = v.frames[i:]
		if len(out) > maxFramesPerNext {
			out = out[:maxFramesPerNext]
			sub.signal()
		}
	}
	return sub.take(dst, out, false), true
}
