package bufpool

import (
	"sync"

	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// Pool is a pool of slices of T. The zero value is not usable; see [New].
type Pool[T any] struct {
	pool     sync.Pool
	maxCap   int
	clearOld bool
}

// New returns a pool of slices that start with capacity size. Slices that
// grew beyond maxCap are not kept. When clearOld is set, Put clears the
// elements of the slice it is given, so that the pool keeps nothing they
// point to alive.
func New[T any](size, maxCap int, clearOld bool) *Pool[T] {
	p := &Pool[T]{maxCap: maxCap, clearOld: clearOld}
	p.pool.New = func() any { s := make([]T, 0, size); return &s }
	return p
}

// Get returns an empty slice from the pool.
func (p *Pool[T]) Get() *[]T {
	s := p.pool.Get().(*[]T)
	*s = (*s)[:0]
	return s
}

// Put returns s to the pool; the caller must not use it afterwards. It
// takes the slice *s as it is (appending may have moved it).
func (p *Pool[T]) Put(s *[]T) {
	if cap(*s) > p.maxCap {
		return
	}
	if p.clearOld {
		clear(*s)
	}
	*s = (*s)[:0]
	p.pool.Put(s)
}

var (
	// Bytes holds write buffers: 4 KiB to start, up to 256 KiB kept.
	Bytes = New[byte](4096, 256<<10, false)
	// Frames holds the frame slices a transport passes to
	// fanout.Subscription.Next.
	Frames = New[*fanout.Frame](64, 4096, true)
	// Messages holds batches of WebSocket messages.
	Messages = New[[]byte](64, 4096, true)
)
