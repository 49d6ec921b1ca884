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
	byAge ageIndex
}

// ageIndex is a sorted index of one owner's tasks, read through snapshots
// (copies of the struct, taken under ownersMu) without the lock: the
// elements of a published slice, sealed's and every chunk's, never change.
//
// The entries are split into sealed chunks and a tail holding the newest.
// A task newer than every other (the common case) is appended to the tail,
// which only writes past the end of every snapshot; a full tail has its
// older half sealed, appended to sealed, which does the same. A task that
// sorts before the newest ones (several tasks created in one millisecond,
// as CreatedAt is kept to the millisecond, ordered by their random ids)
// gets a new copy of the tail: O(ageChunk), not a copy of the whole index
// per task. One older than the tail's oldest (rare) gets a new copy of one
// sealed chunk and of sealed: O(ageChunk + tasks / ageChunk).
type ageIndex struct {
	sealed [][]indexEntry // each sorted, non-empty, at most 2*ageChunk
	tail   []indexEntry   // sorted, after every sealed entry, below 2*ageChunk
	n      int
}

// ageChunk is how many entries a sealed chunk starts with.
const ageChunk = 64

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

// insert adds e, which is not in x yet. ownersMu is held.
func (x *ageIndex) insert(e indexEntry) {
	x.n++
	if k := len(x.sealed); k == 0 || compareEntries(e, last(x.sealed[k-1])) > 0 {
		if n := len(x.tail); n == 0 || compareEntries(e, x.tail[n-1]) > 0 {
			x.tail = append(x.tail, e)
		} else {
			x.tail = insertCopy(x.tail, e)
		}
		if len(x.tail) >= 2*ageChunk {
			// Seal the older half: tasks still being created in the
			// newest entries' millisecond then land in the tail.
			x.sealed = append(x.sealed, x.tail[:ageChunk:ageChunk])
			x.tail = append(make([]indexEntry, 0, 2*ageChunk), x.tail[ageChunk:]...)
		}
		return
	}
	// e sorts before the last sealed entry: into the first chunk whose
	// last entry is after e.
	k, _ := slices.BinarySearchFunc(x.sealed, e, func(c []indexEntry, e indexEntry) int {
		return compareEntries(last(c), e)
	})
	c := insertCopy(x.sealed[k], e)
	var repl [][]indexEntry
	if len(c) > 2*ageChunk {
		h := len(c) / 2
		repl = [][]indexEntry{c[:h:h], c[h:]}
	} else {
		repl = [][]indexEntry{c}
	}
	sealed := make([][]indexEntry, 0, len(x.sealed)+len(repl))
	sealed = append(append(append(sealed, x.sealed[:k]...), repl...), x.sealed[k+1:]...)
	x.sealed = sealed
}

// last returns the last of the non-empty entries.
func last(entries []indexEntry) indexEntry { return entries[len(entries)-1] }

// insertCopy returns a new sorted slice of entries and e.
func insertCopy(entries []indexEntry, e indexEntry) []indexEntry {
	i, _ := slices.BinarySearchFunc(entries, e, compareEntries)
	out := make([]indexEntry, 0, len(entries)+1)
	return append(append(append(out, entries[:i]...), e), entries[i:]...)
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
	o.byAge.insert(e)
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
	gone := make(map[string][]indexEntry)
	for _, t := range deleted {
		gone[t.OwnerID] = append(gone[t.OwnerID], indexEntry{createdAt: t.CreatedAt, id: t.ID})
	}
	s.ownersMu.Lock()
	defer s.ownersMu.Unlock()
	for owner, entries := range gone {
		o := s.owners[owner]
		if o == nil {
			continue
		}
		if o.byAge.remove(entries); o.byAge.n == 0 {
			delete(s.owners, owner)
		}
	}
}

// remove removes the entries matching gone's (createdAt, id). Only the
// chunks that held them are copied, and sealed once if any of them was
// sealed: O(removed × log n + tasks / ageChunk), not a copy of the index.
// ownersMu is held.
func (x *ageIndex) remove(gone []indexEntry) {
	drop := make(map[int][]indexEntry) // chunk (len(sealed): the tail) → its entries to drop
	for _, e := range gone {
		if k, ok := x.find(e); ok {
			drop[k] = append(drop[k], e)
		}
	}
	if len(drop) == 0 {
		return
	}
	// filter returns a copy of c without d's entries.
	filter := func(c, d []indexEntry) []indexEntry {
		slices.SortFunc(d, compareEntries)
		out := make([]indexEntry, 0, len(c)-len(d))
		for _, e := range c {
			if len(d) > 0 && compareEntries(e, d[0]) == 0 {
				d = d[1:]
				continue
			}
			out = append(out, e)
		}
		return out
	}
	for k, d := range drop {
		x.n -= len(d)
		if k == len(x.sealed) {
			x.tail = filter(x.tail, d)
			if len(x.tail) == 0 {
				x.tail = nil
			}
			delete(drop, k)
		}
	}
	if len(drop) == 0 {
		return
	}
	sealed := make([][]indexEntry, 0, len(x.sealed))
	for k, c := range x.sealed {
		if d := drop[k]; d != nil {
			if c = filter(c, d); len(c) == 0 {
				continue
			}
			c = c[:len(c):len(c)]
		}
		sealed = append(sealed, c)
	}
	x.sealed = sealed
}

// find returns the chunk holding e's (createdAt, id): an index of sealed,
// or len(sealed) for the tail.
func (x *ageIndex) find(e indexEntry) (int, bool) {
	if n := len(x.tail); n > 0 && compareEntries(e, x.tail[0]) >= 0 {
		_, ok := slices.BinarySearchFunc(x.tail, e, compareEntries)
		return len(x.sealed), ok
	}
	k, _ := slices.BinarySearchFunc(x.sealed, e, func(c []indexEntry, e indexEntry) int {
		return compareEntries(last(c), e)
	})
	if k == len(x.sealed) {
		return 0, false
	}
	_, ok := slices.BinarySearchFunc(x.sealed[k], e, compareEntries)
	return k, ok
}

// ownerCursor walks a snapshot of one owner's index from newest to
// oldest: the next entry is chunk(k)[next-1], where chunks 0 to
// len(x.sealed)-1 are the sealed ones and chunk len(x.sealed) is the tail.
type ownerCursor struct {
	x    ageIndex
	k    int
	cur  []indexEntry // chunk(k)
	next int          // 0: exhausted
}

// cursor returns a cursor over o's tasks strictly older than before (all
// of them when before is nil). ownersMu must be held (read).
func (o *ownerTasks) cursor(before *taskbridge.TaskPosition) ownerCursor {
	c := ownerCursor{x: o.byAge}
	chunks := len(c.x.sealed)
	if len(c.x.tail) > 0 {
		chunks++
	}
	if before == nil {
		c.k = chunks - 1
		if c.k >= 0 {
			c.cur = c.chunk(c.k)
			c.next = len(c.cur)
		}
		return c
	}
	b := indexEntry{createdAt: before.CreatedAt, id: before.ID}
	// The last chunk that starts before b holds the newest entry before b.
	// (Searched by hand: a closure over c for sort.Search moves c to the
	// heap, one allocation per listing.)
	lo, hi := 0, chunks
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if compareEntries(c.chunk(m)[0], b) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	c.k = lo - 1
	if c.k >= 0 {
		c.cur = c.chunk(c.k)
		c.next, _ = slices.BinarySearchFunc(c.cur, b, compareEntries)
	}
	return c
}

// chunk returns the cursor's k-th chunk.
func (c *ownerCursor) chunk(k int) []indexEntry {
	if k == len(c.x.sealed) {
		return c.x.tail
	}
	return c.x.sealed[k]
}

// more reports that the cursor has an entry.
func (c *ownerCursor) more() bool { return c.next > 0 }

func (c *ownerCursor) peek() indexEntry { return c.cur[c.next-1] }

// advance moves the cursor to the next older entry.
func (c *ownerCursor) advance() {
	if c.next--; c.next == 0 && c.k > 0 {
		c.k--
		c.cur = c.chunk(c.k)
		c.next = len(c.cur)
	}
}

// newestFirst calls fn for the tasks of every cursor, newest first across
// them, until fn returns false or the cursors are exhausted.
func newestFirst(cursors []ownerCursor, fn func(ts *taskState) bool) {
	if len(cursors) == 1 {
		c := cursors[0]
		for ; c.more(); c.advance() {
			if !fn(c.peek().ts) {
				return
			}
		}
		return
	}
	h := make(cursorHeap, 0, len(cursors))
	for _, c := range cursors {
		if c.more() {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		if !fn(h[0].peek().ts) {
			return
		}
		if h[0].advance(); !h[0].more() {
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
