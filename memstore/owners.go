package memstore

import (
	"cmp"
	"container/heap"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// ownerTasks indexes one owner's tasks for listing and counts those that
// have not ended, for quotas.
type ownerTasks struct {
	// live counts the owner's tasks that are not terminal: incremented by
	// create (under keyMu), decremented by the terminal append (under the
	// task's lock).
	live atomic.Int64
	// byAge holds the owner's tasks ordered by (createdAt, id) ascending.
	// Listing reads a snapshot of it without the lock, so the elements
	// of a published slice never change: a task newer than every other
	// (the common case) is appended, which only writes past the end of
	// every snapshot; anything else builds a new slice.
	byAge []indexEntry
}

// indexEntry is one task in an owner's index. createdAt and id are the
// task's, kept here because they never change while ts.task is guarded
// by ts.mu.
type indexEntry struct {
	createdAt time.Time
	id        string
	ts        *taskState
}

// compareEntries orders entries by (createdAt, id) ascending.
func compareEntries(a, b indexEntry) int {
	return cmp.Or(a.createdAt.Compare(b.createdAt), strings.Compare(a.id, b.id))
}

// index adds a new task to its owner's index and counts it live; ts must
// not be published yet. keyMu must be held.
func (s *Store) index(ts *taskState, t taskbridge.Task) {
	e := indexEntry{createdAt: t.CreatedAt, id: t.ID, ts: ts}
	s.ownersMu.Lock()
	defer s.ownersMu.Unlock()
	o := s.owners[t.OwnerID]
	if o == nil {
		o = &ownerTasks{}
		s.owners[t.OwnerID] = o
	}
	ts.owner = o
	o.live.Add(1)
	n := len(o.byAge)
	if n == 0 || compareEntries(o.byAge[n-1], e) < 0 {
		o.byAge = append(o.byAge, e)
		return
	}
	i, _ := slices.BinarySearchFunc(o.byAge, e, compareEntries)
	o.byAge = slices.Concat(o.byAge[:i], []indexEntry{e}, o.byAge[i:])
}

// liveTasks returns how many of owner's tasks have not ended.
func (s *Store) liveTasks(owner string) int64 {
	s.ownersMu.RLock()
	defer s.ownersMu.RUnlock()
	if o := s.owners[owner]; o != nil {
		return o.live.Load()
	}
	return 0
}

// unindex removes deleted tasks from their owners' indexes. keyMu must be
// held.
func (s *Store) unindex(deleted []taskbridge.Task) {
	if len(deleted) == 0 {
		return
	}
	gone := make(map[string]map[string]bool)
	for _, t := range deleted {
		if gone[t.OwnerID] == nil {
			gone[t.OwnerID] = make(map[string]bool)
		}
		gone[t.OwnerID][t.ID] = true
	}
	s.ownersMu.Lock()
	defer s.ownersMu.Unlock()
	for owner, ids := range gone {
		o := s.owners[owner]
		if o == nil {
			continue
		}
		kept := make([]indexEntry, 0, len(o.byAge)-len(ids))
		for _, e := range o.byAge {
			if !ids[e.id] {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			delete(s.owners, owner)
			continue
		}
		o.byAge = kept
	}
}

// ownerCursor walks a snapshot of one owner's index from newest to
// oldest: the next entry is entries[next-1].
type ownerCursor struct {
	entries []indexEntry
	next    int
}

// cursor returns a cursor over o's tasks strictly older than before (all
// of them when before is nil). ownersMu must be held (read).
func (o *ownerTasks) cursor(before *taskbridge.TaskPosition) ownerCursor {
	c := ownerCursor{entries: o.byAge, next: len(o.byAge)}
	if before != nil {
		c.next, _ = slices.BinarySearchFunc(c.entries, indexEntry{createdAt: before.CreatedAt, id: before.ID}, compareEntries)
	}
	return c
}

func (c *ownerCursor) peek() indexEntry { return c.entries[c.next-1] }

// newestFirst calls fn for the tasks of every cursor, newest first across
// them, until fn returns false or the cursors are exhausted.
func newestFirst(cursors []ownerCursor, fn func(ts *taskState) bool) {
	if len(cursors) == 1 {
		c := cursors[0]
		for ; c.next > 0; c.next-- {
			if !fn(c.peek().ts) {
				return
			}
		}
		return
	}
	h := make(cursorHeap, 0, len(cursors))
	for _, c := range cursors {
		if c.next > 0 {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		if !fn(h[0].peek().ts) {
			return
		}
		if h[0].next--; h[0].next == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
}

// cursorHeap orders cursors by their next entry, newest on top.
type cursorHeap []ownerCursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return compareEntries(h[i].peek(), h[j].peek()) > 0 }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(ownerCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
