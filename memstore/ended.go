package memstore

import (
	"cmp"
	"strings"
	"time"
)

// endedTask is a terminal task waiting for retention to remove it.
type endedTask struct {
	at time.Time // the terminal event's CreatedAt
	id string
	ts *taskState
}

// endedHeap orders the store's terminal tasks oldest first, by (at, id):
// the order in which PruneTerminalTasks removes them, so that a batch of
// retention costs the batch, not a scan of every task.
type endedHeap []endedTask

func (h endedHeap) less(i, j int) bool {
	return cmp.Or(h[i].at.Compare(h[j].at), strings.Compare(h[i].id, h[j].id)) < 0
}

// push adds e.
func (h *endedHeap) push(e endedTask) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

// pop removes and returns the oldest task; h must not be empty.
func (h *endedHeap) pop() endedTask {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = endedTask{}
	q = q[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}
