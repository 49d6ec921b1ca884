package memstore

import (
	"cmp"
	"strings"
	"time"
)

// dueItem is a record that a maintenance operation will act on once its
// time comes: a terminal task for retention (PruneTerminalTasks), a receipt
// for deletion (DeleteReceipts), an open suspension for expiry
// (ExpireSuspensions). The store keeps them in heaps ordered by time, so a
// maintenance call costs the records it handles, not a scan of every task.
// An item leaves its heap when it comes up or when its record leaves the
// state it waits in (see dueHeap).
type dueItem struct {
	at     time.Time
	taskID string
	seq    int64  // the suspension's EventSeq (suspensions)
	key    string // the clientActionId (receipts) or suspendId (suspensions)
	ts     *taskState
}

// compareDue orders items by (at, taskID, seq, key): the order in which the
// maintenance operations handle them.
func compareDue(a, b dueItem) int {
	return cmp.Or(a.at.Compare(b.at), strings.Compare(a.taskID, b.taskID), cmp.Compare(a.seq, b.seq), strings.Compare(a.key, b.key))
}

// dueKey names a heap's item: a task, and within it the receipt's
// clientActionId or the suspension's suspendId ("" for a task).
type dueKey struct{ taskID, key string }

// dueHeap is a min-heap of items by compareDue that can also remove an
// item by its key, so that a record leaving the state it waits in (a
// suspension resolved before its deadline, a resume dispatched, a task
// deleted) leaves the heap at once instead of lingering until it comes up.
type dueHeap struct {
	items []dueItem
	// keyed makes push index items by key, for remove and replacement; a
	// heap whose items only leave by coming up (terminal tasks) saves the
	// index's memory and upkeep.
	keyed bool
	pos   map[dueKey]int // the index of each item in items, when keyed
}

func (h *dueHeap) less(i, j int) bool { return compareDue(h.items[i], h.items[j]) < 0 }

func (h *dueHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	if h.keyed {
		h.pos[dueKey{h.items[i].taskID, h.items[i].key}] = i
		h.pos[dueKey{h.items[j].taskID, h.items[j].key}] = j
	}
}

func (h *dueHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *dueHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// push adds d, replacing an item with d's key if h is keyed.
func (h *dueHeap) push(d dueItem) {
	if h.keyed {
		k := dueKey{d.taskID, d.key}
		if h.pos == nil {
			h.pos = make(map[dueKey]int)
		}
		if i, ok := h.pos[k]; ok {
			h.removeAt(i)
		}
		h.pos[k] = len(h.items)
	}
	h.items = append(h.items, d)
	h.up(len(h.items) - 1)
}

// removeAt removes and returns the item at index i.
func (h *dueHeap) removeAt(i int) dueItem {
	n := len(h.items) - 1
	if i != n {
		h.swap(i, n)
	}
	d := h.items[n]
	h.items[n] = dueItem{}
	h.items = h.items[:n]
	if h.keyed {
		delete(h.pos, dueKey{d.taskID, d.key})
	}
	if i != n {
		h.down(i)
		h.up(i)
	}
	return d
}

// reset empties h, keeping whether it is keyed.
func (h *dueHeap) reset() { h.items, h.pos = nil, nil }

// remove removes the item with key k, if there is one; h is keyed.
func (h *dueHeap) remove(k dueKey) {
	if i, ok := h.pos[k]; ok {
		h.removeAt(i)
	}
}

// popDue removes and returns h's first item if due reports true for its
// time. dueMu must not be held.
func (s *Store) popDue(h *dueHeap, due func(at time.Time) bool) (dueItem, bool) {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	if len(h.items) == 0 || !due(h.items[0].at) {
		return dueItem{}, false
	}
	return h.removeAt(0), true
}

// pushDue adds d to h. Callers may hold a task's lock.
func (s *Store) pushDue(h *dueHeap, d dueItem) {
	s.dueMu.Lock()
	h.push(d)
	s.dueMu.Unlock()
}

// dropDue removes the item of (taskID, key) from h, if it is there.
// Callers may hold a task's lock.
func (s *Store) dropDue(h *dueHeap, taskID, key string) {
	s.dueMu.Lock()
	h.remove(dueKey{taskID, key})
	s.dueMu.Unlock()
}

// requeue puts back items that a call took out of h to look at and that
// still wait (listed leases and pending resumes, receipts kept for their
// pending resume). Each goes back only if waits(d) still holds under its
// task's lock and h has no item of its key: between the take and now, its
// record may have moved on (a lease renewed, which pushed a newer item, or
// released; a resume dispatched), and a stale item must not replace a
// newer one or outlive its record.
func (s *Store) requeue(h *dueHeap, items []dueItem, waits func(d dueItem) bool) {
	for _, d := range items {
		d.ts.mu.RLock()
		if !d.ts.deleted && waits(d) {
			s.dueMu.Lock()
			if _, ok := h.pos[dueKey{d.taskID, d.key}]; !ok {
				h.push(d)
			}
			s.dueMu.Unlock()
		}
		d.ts.mu.RUnlock()
	}
}
