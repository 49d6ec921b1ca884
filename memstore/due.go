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
// An item whose record changed meanwhile (a suspension resolved before its
// deadline, a receipt deleted with its task) is dropped when it comes up.
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

// dueHeap is a min-heap of items by compareDue.
type dueHeap []dueItem

// push adds d.
func (h *dueHeap) push(d dueItem) {
	*h = append(*h, d)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if compareDue(q[i], q[p]) >= 0 {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

// pop removes and returns the first item; h must not be empty.
func (h *dueHeap) pop() dueItem {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = dueItem{}
	q = q[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && compareDue(q[r], q[l]) < 0 {
			m = r
		}
		if compareDue(q[m], q[i]) >= 0 {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// popDue removes and returns h's first item if due reports true for its
// time. dueMu must not be held.
func (s *Store) popDue(h *dueHeap, due func(at time.Time) bool) (dueItem, bool) {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	if len(*h) == 0 || !due((*h)[0].at) {
		return dueItem{}, false
	}
	return h.pop(), true
}

// pushDue adds d to h. Callers may hold a task's lock.
func (s *Store) pushDue(h *dueHeap, d dueItem) {
	s.dueMu.Lock()
	h.push(d)
	s.dueMu.Unlock()
}
