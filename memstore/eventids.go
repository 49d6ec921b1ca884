package memstore

import (
	"strconv"
	"strings"

	"github.com/taskbridge-go/taskbridge"
)

// idsPerBlock is how many event ids eventID formats at once.
const idsPerBlock = 64

// idBlock holds the ids of idsPerBlock consecutive events back to back in
// one string, so that each id is a substring of it: a task's long log
// costs one allocation per idsPerBlock ids instead of one per id (strconv
// formats ids below 100 without allocating). A string handed out stays
// valid when the block moves on: it keeps its own backing string.
type idBlock struct {
	first int64 // Seq of the first id in s
	s     string
	off   [idsPerBlock + 1]uint16 // id i is s[off[i]:off[i+1]]
}

// eventID returns taskbridge.FormatEventID(seq) for the task's next event.
// ts.mu must be held.
func (ts *taskState) eventID(seq int64) string {
	if seq < 100 {
		return taskbridge.FormatEventID(seq)
	}
	b := ts.ids
	if b == nil || seq < b.first || seq >= b.first+idsPerBlock {
		if b == nil {
			b = &idBlock{}
			ts.ids = b
		}
		b.fill(seq)
	}
	i := seq - b.first
	return b.s[b.off[i]:b.off[i+1]]
}

// fill formats the ids from first on, in one allocation.
func (b *idBlock) fill(first int64) {
	var sb strings.Builder
	sb.Grow(idsPerBlock * digits(first+idsPerBlock))
	var scratch [20]byte
	for i := range int64(idsPerBlock) {
		b.off[i] = uint16(sb.Len())
		sb.Write(strconv.AppendInt(scratch[:0], first+i, 10))
	}
	b.off[idsPerBlock] = uint16(sb.Len())
	b.first, b.s = first, sb.String()
}

// digits is the number of decimal digits of n >= 0.
func digits(n int64) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}
