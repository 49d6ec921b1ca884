package memstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/storecheck"
)

// appendLocked appends ev to ts's log, with a copy of its payload (see
// keepPayload), applying the state machine and its side effects, and
// returns the stored event. ts.mu must be held.
func (s *Store) appendLocked(ts *taskState, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	next, err := taskbridge.NextStatus(ts.task.Status, ev.Type)
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	seq := ts.task.LastSeq + 1
	ev.Seq, ev.EventID = seq, ts.eventID(seq)
	if ev.IdempotencyKey != "" {
		// ts.keys keeps it for the task's life: copies of its own, not
		// shares of payload and id blocks that retention would free.
		ev.Payload, ev.EventID = cloneBytes(ev.Payload), strings.Clone(ev.EventID)
	} else {
		ev.Payload = ts.keepPayload(ev.Payload)
	}
	ev.TaskID = ts.task.ID
	ts.events = append(ts.events, ev)
	ts.task.Status = next
	ts.task.LastSeq = seq
	ts.task.UpdatedAt = ev.CreatedAt
	if ev.Type.Terminal() {
		s.pushDue(&s.ended, dueItem{at: ev.CreatedAt, taskID: ts.task.ID, ts: ts})
		if ts.lease.Holder != "" {
			ts.lease = taskbridge.Lease{} // a lease ends with its task
			s.dropDue(&s.leases, ts.task.ID, "")
		}
		if ts.owner != nil {
			ts.owner.live.Add(-1)
		}
		for _, sp := range ts.susps {
			if sp.Status == taskbridge.SuspensionOpen {
				sp.Status = taskbridge.SuspensionCancelled
				sp.ClosedAt = ev.CreatedAt
				s.unexpire(sp)
			}
		}
	}
	if s.maxEvents > 0 {
		ts.trim(s.maxEvents)
	}
	return ev, nil
}

// trim drops all but the newest keep events. ts.mu must be held. Dropped
// slots are cleared at once; the slice is compacted in place when the
// dropped prefix is as long as the retained part, so trimming on every
// append costs one element copy per append and no allocation.
func (ts *taskState) trim(keep int) {
	drop := len(ts.events) - ts.off - keep
	if drop <= 0 {
		return
	}
	clear(ts.events[ts.off : ts.off+drop]) // let the payloads go
	ts.off += drop
	ts.first += int64(drop)
	if live := len(ts.events) - ts.off; ts.off >= live {
		copy(ts.events, ts.events[ts.off:])
		clear(ts.events[live:])
		ts.events = ts.events[:live]
		ts.off = 0
	}
}

// Append implements [taskbridge.EventStore]. Watchers are called by the
// appending goroutine before Append returns. An event with an
// IdempotencyKey the task already used is returned as it was appended (a
// copy), even if retention has dropped it from the log since. A payload
// that is not valid JSON is refused with [taskbridge.ErrInvalidEvent], and
// one with whitespace outside its strings is stored compacted (see
// AppendVetted).
func (s *Store) Append(_ context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	var err error
	if ev.Payload, err = storecheck.Payload(ev.Payload); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	return s.append(ev)
}

// AppendVetted implements [taskbridge.VettedAppender]: it is Append for a
// payload that is valid, compact JSON, which it does not check. The store
// vouches for the payloads it lends (LendEvents), so the service's fan-out
// does not check them again.
func (s *Store) AppendVetted(_ context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	return s.append(ev)
}

// VettedStore implements [taskbridge.VettedAppender]: it returns s.
func (s *Store) VettedStore() taskbridge.EventStore { return s }

func (s *Store) append(ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	if err := storecheck.Appendable(ev); err != nil {
		return taskbridge.TaskEvent{}, err
	}
	ts, err := s.lookup(ev.TaskID)
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	ts.mu.Lock()
	if ts.deleted {
		ts.mu.Unlock()
		return taskbridge.TaskEvent{}, taskNotFound(ev.TaskID)
	}
	if prev, ok := ts.keys[ev.IdempotencyKey]; ok && ev.IdempotencyKey != "" {
		ts.mu.Unlock()
		prev.Payload = cloneBytes(prev.Payload)
		return prev, nil
	}
	stored, err := s.appendLocked(ts, ev)
	if err == nil && ev.IdempotencyKey != "" {
		if ts.keys == nil {
			ts.keys = make(map[string]taskbridge.TaskEvent)
		}
		ts.keys[ev.IdempotencyKey] = stored
	}
	ts.mu.Unlock()
	if err != nil {
		return taskbridge.TaskEvent{}, err
	}
	s.notifyTask(ts, ev.TaskID)
	// The caller's payload stays the caller's: the store keeps its own copy.
	ev.Seq, ev.EventID = stored.Seq, stored.EventID
	return ev, nil
}

// InlineReads implements [taskbridge.InlineReader]: Read takes only the
// task's read lock and may be called from inside a Watch callback, which
// the store calls after releasing the task's lock.
func (s *Store) InlineReads() bool { return true }

// Read implements [taskbridge.EventStore]. A limit below 1 fails with
// [taskbridge.ErrInvalidRequest].
func (s *Store) Read(ctx context.Context, taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	var out []taskbridge.TaskEvent
	err := s.LendEvents(ctx, taskID, after, limit, func(evs []taskbridge.TaskEvent) {
		out = make([]taskbridge.TaskEvent, len(evs))
		copy(out, evs)
	})
	if err != nil {
		return nil, err
	}
	clonePayloads(out) // outside the task's lock
	return out, nil
}

// LendEvents implements [taskbridge.EventLender]: fn runs under the task's
// read lock, so appends to the task wait for it.
func (s *Store) LendEvents(_ context.Context, taskID string, after int64, limit int, fn func([]taskbridge.TaskEvent)) error {
	if err := storecheck.Limit(limit); err != nil {
		return err
	}
	ts, err := s.lookup(taskID)
	if err != nil {
		return err
	}
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	evs, err := ts.span(taskID, after, limit)
	if err != nil {
		return err
	}
	fn(evs)
	return nil
}

// span returns the retained events a read of the task after after, up to
// limit, covers: the store's own, not a copy. ts.mu must be held.
func (ts *taskState) span(taskID string, after int64, limit int) ([]taskbridge.TaskEvent, error) {
	if ts.deleted {
		return nil, taskNotFound(taskID)
	}
	last, first := ts.task.LastSeq, ts.first
	switch {
	case after < 0 || after > last:
		return nil, fmt.Errorf("%w: %d is not a position in task %q (last event %d)", taskbridge.ErrInvalidCursor, after, taskID, last)
	case after > 0 && after < first-1:
		return nil, fmt.Errorf("%w: task %q keeps events from %d on", taskbridge.ErrEventsExpired, taskID, first)
	}
	live := ts.events[ts.off:]
	start := max(after+1, first) - first
	n := min(int64(limit), int64(len(live))-start)
	return live[start : start+n], nil
}

// TrimEvents applies retention to one task: it removes every event of the
// task except the newest keepLast (keepLast >= 0). Reads from a cursor
// older than the first kept event then fail with
// [taskbridge.ErrEventsExpired]; the task's LastSeq is unchanged and the
// next append continues the sequence. Trimming never adds events back: a
// keepLast larger than the retained log changes nothing.
func (s *Store) TrimEvents(taskID string, keepLast int) error {
	if keepLast < 0 {
		return invalidRequest("keepLast %d must not be negative", keepLast)
	}
	return s.update(taskID, func(ts *taskState) error {
		ts.trim(keepLast)
		return nil
	})
}

// watchSet holds the watchers of one task. mu is read-locked while the
// watchers are being called and write-locked to change list, so that a
// removed watcher is never called after its stop returns.
type watchSet struct {
	mu   sync.RWMutex
	list []*watcher
	dead bool // removed from Store.watches; register in a new set
}

type watcher struct {
	fn  func()
	idx int // position in list; -1 once removed
}

// Watch implements [taskbridge.EventStore]. Watching works for a task that
// does not exist yet. notify is called synchronously by the goroutine whose
// append succeeded, after the task's lock is released; it must not block
// and must not call back into the store (in particular not stop). After
// [Store.Close], Watch returns a stop that does nothing.
func (s *Store) Watch(taskID string, notify func()) (stop func()) {
	if s.closed.Load() {
		return func() {}
	}
	w := &watcher{fn: notify}
	var ws *watchSet
	for {
		var ok bool
		if ws, ok = s.watches.load(taskID); !ok {
			ws = s.watches.loadOrStore(taskID, &watchSet{})
		}
		ws.mu.Lock()
		if !ws.dead {
			w.idx = len(ws.list)
			ws.list = append(ws.list, w)
			ws.mu.Unlock()
			break
		}
		ws.mu.Unlock()
	}
	stop = func() { s.unwatch(taskID, ws, w) }
	// Close may have swept the sets before w was added.
	if s.closed.Load() {
		stop()
	}
	return stop
}

func (s *Store) unwatch(taskID string, ws *watchSet, w *watcher) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w.idx < 0 {
		return
	}
	last := len(ws.list) - 1
	moved := ws.list[last]
	ws.list[w.idx] = moved
	moved.idx = w.idx
	ws.list[last] = nil
	ws.list = ws.list[:last]
	w.idx = -1
	if len(ws.list) == 0 {
		ws.dead = true
		s.watches.compareAndDelete(taskID, ws)
	}
}

// notify calls the watchers of taskID.
func (s *Store) notify(taskID string) {
	if ws, ok := s.watches.load(taskID); ok {
		ws.call()
	}
}

// notifyTask calls the watchers of ts, whose id is taskID, through the set
// it cached the last time (an append then costs no lookup in
// Store.watches). A live set is always the task's current one: a set
// leaves Store.watches only once it is dead, and a new one is made only
// when there is none or the old one is dead. A dead or missing cache falls
// back to the lookup and caches what it finds.
func (s *Store) notifyTask(ts *taskState, taskID string) {
	if ws := ts.watched.Load(); ws != nil && ws.call() {
		return
	}
	ws, ok := s.watches.load(taskID)
	if !ok {
		return
	}
	ts.watched.Store(ws)
	ws.call()
}

// call calls the set's watchers, unless it is dead; it reports whether it
// was alive.
func (ws *watchSet) call() bool {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	if ws.dead {
		return false
	}
	for _, w := range ws.list {
		w.fn()
	}
	return true
}
