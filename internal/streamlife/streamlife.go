package streamlife

import (
	"context"
	"sync"
)

// Group keeps the books of one handler's streams. Create it with [New]; it
// is safe for concurrent use.
type Group struct {
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	active   int  // streams entered and not yet left
	closed   bool // Close has run
	aborting bool // a Shutdown ran out of time
	idle     chan struct{}
	idleDone bool // idle is closed

	// linked lists the streams with an abort or a wake function (a doubly
	// linked list through Stream.prev and Stream.next, so that leaving
	// costs no search and no map); abortable counts those with an abort
	// function.
	linked    *Stream
	abortable int
	gone      *sync.Cond // signalled when abortable drops to 0
}

// Stream is one stream counted in by [Group.Enter]. Its owner must call
// [Stream.Leave] exactly when the stream has finished: its goroutines have
// exited or are about to, having released everything.
type Stream struct {
	g          *Group
	abort      func()
	wake       Waker
	prev, next *Stream
	linked     bool
	aborted    bool
	left       bool
}

// New returns an open Group with no streams.
func New() *Group {
	g := &Group{idle: make(chan struct{})}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.gone = sync.NewCond(&g.mu)
	return g
}

// Done returns a channel that is closed when the group is closed: streams
// watching it end themselves.
func (g *Group) Done() <-chan struct{} { return g.ctx.Done() }

// Context returns a context that is cancelled when the group is closed, for
// context.AfterFunc and blocking calls that should end with the handler.
func (g *Group) Context() context.Context { return g.ctx }

// Active reports how many streams have entered and not yet left.
func (g *Group) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

// ReleaseIfIdle calls r.Release when no stream is active: for resources
// only the streams need, such as a handler's pool of goroutines (see
// package internal/gopool), released by the last stream to leave. A
// stream entering later starts them again.
func (g *Group) ReleaseIfIdle(r interface{ Release() }) {
	if g.Active() == 0 {
		r.Release()
	}
}

// Enter counts a new stream in. Once the group is closed it returns nil and
// false: the handler refuses the request (503 SERVICE_UNAVAILABLE).
func (g *Group) Enter() (*Stream, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, false
	}
	g.active++
	return &Stream{g: g}, true
}

// OnAbort registers how to force the stream to end when a [Group.Shutdown]
// runs out of time, typically by closing its connection. abort must make
// the stream's goroutines exit promptly and call Leave; it may run
// concurrently with the stream and after Leave, so it must be safe then
// (closing a net.Conn is). When a Shutdown has already run out of time,
// abort is called at once. OnAbort is called at most once per stream, from
// the goroutine that owns it, before Leave.
func (s *Stream) OnAbort(abort func()) {
	g := s.g
	g.mu.Lock()
	if s.left || s.abort != nil {
		g.mu.Unlock()
		return
	}
	s.abort = abort
	g.abortable++
	g.linkLocked(s)
	now := g.aborting
	s.aborted = now
	g.mu.Unlock()
	if now {
		abort()
	}
}

// Waker is what [Stream.OnClose] wakes.
type Waker interface {
	// Wake must not block.
	Wake()
}

// OnClose registers how to wake the stream when the group closes, for a
// stream that waits on something else than [Group.Done] (a channel it
// already waits on: one channel fewer in its select, one sudog less per
// parked stream). Wake is called once, by Close, or at once when the
// group is already closed; the woken stream checks Done. Call OnClose at
// most once per stream, from the goroutine that owns it, before Leave.
func (s *Stream) OnClose(wake Waker) {
	g := s.g
	g.mu.Lock()
	if s.left || s.wake != nil {
		g.mu.Unlock()
		return
	}
	s.wake = wake
	g.linkLocked(s)
	now := g.closed
	g.mu.Unlock()
	if now {
		wake.Wake()
	}
}

// linkLocked adds s to the linked streams unless it is there. g.mu is
// held.
func (g *Group) linkLocked(s *Stream) {
	if s.linked {
		return
	}
	s.linked = true
	s.next = g.linked
	if g.linked != nil {
		g.linked.prev = s
	}
	g.linked = s
}

// Leave counts the stream out. Calls after the first do nothing.
func (s *Stream) Leave() {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.left {
		return
	}
	s.left = true
	if s.linked {
		if s.prev != nil {
			s.prev.next = s.next
		} else {
			g.linked = s.next
		}
		if s.next != nil {
			s.next.prev = s.prev
		}
		s.prev, s.next, s.wake = nil, nil, nil
		if s.abort != nil {
			s.abort = nil
			if g.abortable--; g.abortable == 0 {
				g.gone.Broadcast()
			}
		}
	}
	g.active--
	g.signalIdle()
}

// signalIdle closes idle once the group is closed and empty. g.mu is held.
func (g *Group) signalIdle() {
	if g.closed && g.active == 0 && !g.idleDone {
		g.idleDone = true
		close(g.idle)
	}
}

// Close closes the group: Enter refuses new streams and Done is closed, so
// open streams end themselves. It does not wait. Safe to call more than
// once and concurrently with Shutdown.
func (g *Group) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	g.cancel()
	g.signalIdle()
	for st := g.linked; st != nil; st = st.next {
		if st.wake != nil {
			st.wake.Wake()
		}
	}
}

// Shutdown closes the group and waits until every stream has left. If ctx
// ends first, it aborts the streams that registered an abort function
// ([Stream.OnAbort]), waits until those have left, and returns ctx's
// error; streams without one (those still inside a server's ServeHTTP,
// which the server itself can close) are not waited for then. Safe to call
// more than once, also concurrently.
func (g *Group) Shutdown(ctx context.Context) error {
	g.Close()
	select {
	case <-g.idle:
		return nil
	default:
	}
	select {
	case <-g.idle:
		return nil
	case <-ctx.Done():
	}
	g.abortAll()
	return ctx.Err()
}

// abortAll aborts every abortable stream not aborted yet, then waits until
// every abortable stream has left.
func (g *Group) abortAll() {
	g.mu.Lock()
	g.aborting = true
	var aborts []func()
	for s := g.linked; s != nil; s = s.next {
		if s.abort != nil && !s.aborted {
			s.aborted = true
			aborts = append(aborts, s.abort)
		}
	}
	g.mu.Unlock()
	for _, abort := range aborts {
		abort()
	}
	g.mu.Lock()
	for g.abortable > 0 {
		g.gone.Wait()
	}
	g.mu.Unlock()
}
