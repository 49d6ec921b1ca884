package memstore

import (
	"encoding/json"
	"slices"
)

// Event payloads are copied into a buffer of their task's (taskState.buf)
// instead of a fresh allocation each: a stream of appends allocates about
// once per maxPayloadBlock bytes of payload. The buffer doubles from the
// first payload's size, so a task with few events holds about what exact
// copies would (at most twice its payload bytes), and a busy one holds
// blocks of maxPayloadBlock; a block is freed when retention or deletion
// has dropped every event in it. A payload larger than half a block gets a
// copy of its own.
const maxPayloadBlock = 4 << 10

// keepPayload returns the store's copy of p, in ts's payload buffer: its
// capacity ends with it, so appending to it cannot reach the next one.
// ts.mu must be held. nil stays nil.
func (ts *taskState) keepPayload(p json.RawMessage) json.RawMessage {
	if p == nil {
		return nil
	}
	n := len(p)
	if n > maxPayloadBlock/2 {
		return cloneBytes(p)
	}
	if cap(ts.buf)-len(ts.buf) < n {
		size := min(max(2*cap(ts.buf), n), maxPayloadBlock)
		ts.buf = slices.Grow([]byte(nil), size) // the whole size class
	}
	start := len(ts.buf)
	ts.buf = append(ts.buf, p...)
	return ts.buf[start:len(ts.buf):len(ts.buf)]
}
