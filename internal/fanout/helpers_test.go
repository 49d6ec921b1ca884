package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The errors the tests' hubs use, as a host package would supply them.
var (
	errClosed   = errors.New("test: closed")
	errExpired  = errors.New("test: expired")
	errNotFound = errors.New("test: not found")
	errInvalid  = errors.New("test: invalid cursor")
)

// memLog is a Source over in-memory task logs with retention, read like a
// store reads: after 0 from the oldest retained event, a cursor older than
// that fails with errExpired. It can pause chosen Read and Watch calls
// ([memLog.pause]) and fail reads ([memLog.failReads]).
type memLog struct {
	keep int // retention: the newest keep events of a task; 0 keeps all

	mu       sync.Mutex
	tasks    map[string]*taskLog
	watchers map[string]map[int]func()
	nextW    int
	gates    []*gate
	readErr  func(after int64) error
	nread    atomic.Int64 // Read calls (the engine's; tests call read)
}

var _ Source = (*memLog)(nil)

type taskLog struct {
	frames  []*Frame // retained
	last    int64    // Seq of the newest event
	deleted bool
}

func newMemLog(keep int, tasks ...string) *memLog {
	l := &memLog{keep: keep, tasks: map[string]*taskLog{}, watchers: map[string]map[int]func(){}}
	for _, id := range tasks {
		l.tasks[id] = &taskLog{}
	}
	return l
}

func (l *memLog) Read(ctx context.Context, taskID string, after int64, limit int) ([]*Frame, error) {
	l.nread.Add(1)
	l.stop(opRead, before, ctx, after)
	frames, err := l.read(taskID, after, limit)
	l.stop(opRead, late, ctx, after)
	return frames, err
}

// reads returns how many times the engine has read l.
func (l *memLog) reads() int64 { return l.nread.Load() }

func (l *memLog) read(taskID string, after int64, limit int) ([]*Frame, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readErr != nil {
		if err := l.readErr(after); err != nil {
			return nil, err
		}
	}
	tl := l.tasks[taskID]
	if tl == nil || tl.deleted {
		return nil, fmt.Errorf("%w: %s", errNotFound, taskID)
	}
	first := tl.last - int64(len(tl.frames)) + 1
	switch {
	case after < 0 || after > tl.last:
		return nil, errInvalid
	case after > 0 && after < first-1:
		return nil, fmt.Errorf("%w: %s keeps events from %d", errExpired, taskID, first)
	}
	rest := tl.frames[max(after+1, first)-first:]
	rest = rest[:min(limit, len(rest))]
	// Frames of its own for every read (see Source.Read): copies.
	out := make([]*Frame, len(rest))
	for i, f := range rest {
		c := *f
		out[i] = &c
	}
	return out, nil
}

func (l *memLog) Watch(taskID string, notify func()) func() {
	l.stop(opWatch, before, context.Background(), 0)
	l.mu.Lock()
	id := l.nextW
	l.nextW++
	if l.watchers[taskID] == nil {
		l.watchers[taskID] = map[int]func(){}
	}
	l.watchers[taskID][id] = notify
	l.mu.Unlock()
	l.stop(opWatch, late, context.Background(), 0)
	return func() {
		l.mu.Lock()
		delete(l.watchers[taskID], id)
		l.mu.Unlock()
	}
}

// append appends an event to taskID, the terminal one if terminal, applies
// retention and notifies the watchers. It returns the event's Seq.
func (l *memLog) append(taskID string, terminal bool) int64 {
	l.mu.Lock()
	tl := l.tasks[taskID]
	tl.last++
	seq := tl.last
	id := strconv.FormatInt(seq, 10)
	tl.frames = append(tl.frames, &Frame{Seq: seq, EventID: id, Terminal: terminal,
		JSON: []byte(`{"taskId":"` + taskID + `","eventId":"` + id + `"}`)})
	if l.keep > 0 && len(tl.frames) > l.keep {
		tl.frames = append([]*Frame(nil), tl.frames[len(tl.frames)-l.keep:]...)
	}
	l.mu.Unlock()
	l.notify(taskID)
	return seq
}

// appendN appends n events that do not end the task.
func (l *memLog) appendN(taskID string, n int) {
	for range n {
		l.append(taskID, false)
	}
}

// delete removes a task, as a retention sweep would, and notifies its
// watchers.
func (l *memLog) delete(taskID string) {
	l.mu.Lock()
	l.tasks[taskID].deleted = true
	l.mu.Unlock()
	l.notify(taskID)
}

// notify calls the watchers of taskID, as a store does after an append.
func (l *memLog) notify(taskID string) {
	l.mu.Lock()
	var ws []func()
	for _, w := range l.watchers[taskID] {
		ws = append(ws, w)
	}
	l.mu.Unlock()
	for _, w := range ws {
		w()
	}
}

// failReads makes reads fail with what f returns for their cursor (nil
// lets a read go on).
func (l *memLog) failReads(f func(after int64) error) {
	l.mu.Lock()
	l.readErr = f
	l.mu.Unlock()
}

// A gate pauses one Read or Watch call: a test pauses the call it cares
// about, arranges the world around it, then lets it go on. The fan-out's
// timing bugs are interleavings of a read with appends and with other
// subscribers; gates make them deterministic.
type gate struct {
	op      string // opRead or opWatch
	late    bool   // pause after the call's work, with its result in hand
	match   func(ctx context.Context, after int64) bool
	reached chan struct{} // closed when a call stops at the gate
	release chan struct{} // close to let it go on
}

// Arguments of memLog.pause.
const (
	opRead  = "read"
	opWatch = "watch"
	before  = false // pause before the call's work
	late    = true  // pause after it
)

// pause makes the next call of op for which match is true stop at a gate,
// before or after its work. Watch calls are matched with a background
// context and cursor 0.
func (l *memLog) pause(op string, when bool, match func(ctx context.Context, after int64) bool) *gate {
	g := &gate{op: op, late: when, match: match, reached: make(chan struct{}), release: make(chan struct{})}
	l.mu.Lock()
	l.gates = append(l.gates, g)
	l.mu.Unlock()
	return g
}

// stop waits at the first gate the call matches, if any, and removes it.
func (l *memLog) stop(op string, when bool, ctx context.Context, after int64) {
	l.mu.Lock()
	var hit *gate
	for i, g := range l.gates {
		if g.op == op && g.late == when && g.match(ctx, after) {
			hit = g
			l.gates = append(l.gates[:i], l.gates[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	if hit != nil {
		close(hit.reached)
		<-hit.release
	}
}

// Reads are told apart by a name in their context: subscribers read with
// their caller's context, topics with the hub's, which has none.
type readerKey struct{}

func named(name string) context.Context {
	return context.WithValue(context.Background(), readerKey{}, name)
}

// by matches the calls made with the named context (name "" matches the
// topics' reads) after cursor at.
func by(name string, at int64) func(context.Context, int64) bool {
	return func(ctx context.Context, after int64) bool {
		n, _ := ctx.Value(readerKey{}).(string)
		return n == name && after == at
	}
}

// gauge is a Config.StreamsActive that keeps the count per transport.
type gauge struct {
	mu sync.Mutex
	n  map[string]int64
}

func (g *gauge) add(transport string, delta int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = map[string]int64{}
	}
	g.n[transport] += delta
}

func (g *gauge) value(transport string) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n[transport]
}

// setup returns a hub over src with the tests' errors and a batch size; it
// is shut down when the test ends.
func setup(t *testing.T, src Source, batch int, mod ...func(*Config)) *Hub {
	t.Helper()
	cfg := Config{
		Source: src, Batch: batch, Logger: slog.New(slog.DiscardHandler),
		ErrClosed: errClosed, ErrExpired: errExpired, ErrNotFound: errNotFound, ErrInvalidCursor: errInvalid,
	}
	for _, m := range mod {
		m(&cfg)
	}
	h, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, h.Shutdown(ctx))
	})
	return h
}

// subscribe subscribes to taskID after cursor, knowing the task's state
// from l.
func subscribe(t *testing.T, h *Hub, l *memLog, ctx context.Context, taskID string, after int64, opts SubscribeOpts) *Subscription {
	t.Helper()
	sub, err := h.Subscribe(ctx, taskID, l.start(taskID, after), opts)
	require.NoError(t, err)
	t.Cleanup(sub.Close)
	return sub
}

// start is the Start a host would pass: the task's last Seq and whether it
// has ended, read before its log.
func (l *memLog) start(taskID string, after int64) Start {
	l.mu.Lock()
	defer l.mu.Unlock()
	tl := l.tasks[taskID]
	terminal := len(tl.frames) > 0 && tl.frames[len(tl.frames)-1].Terminal
	return Start{After: after, LastSeq: tl.last, Terminal: terminal}
}

func seqs(frames []*Frame) []int64 {
	out := make([]int64, len(frames))
	for i, f := range frames {
		out[i] = f.Seq
	}
	return out
}

// requireSeqs compares sequences without dumping thousands of numbers.
func requireSeqs(t *testing.T, want, got []int64, msgAndArgs ...any) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("%s: at index %d want %d, got %d", fmt.Sprint(msgAndArgs...), i, want[i], got[i])
		}
	}
	if len(want) != len(got) {
		t.Fatalf("%s: want %d events, got %d", fmt.Sprint(msgAndArgs...), len(want), len(got))
	}
}

func span(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// next calls Next until it returns at least one frame or an error.
func next(t *testing.T, sub *Subscription) ([]*Frame, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		frames, err := sub.Next(ctx, nil)
		if len(frames) > 0 || err != nil {
			return frames, err
		}
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			t.Fatal("no frames arrived")
		}
	}
}

// drain returns every frame until the subscription ends with io.EOF.
func drain(t *testing.T, sub *Subscription) []*Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*Frame
	for {
		n := len(out)
		var err error
		out, err = sub.Next(ctx, out)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		if len(out) > n {
			continue
		}
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			t.Fatalf("subscription did not end: %d frames", len(out))
		}
	}
}

// appendTaken appends an event and waits until sub, the task's only live
// subscriber, has taken it.
func (l *memLog) appendTaken(t *testing.T, sub *Subscription, terminal bool) {
	t.Helper()
	seq := l.append(sub.TaskID(), terminal)
	frames, err := next(t, sub)
	require.NoError(t, err)
	require.Equal(t, []int64{seq}, seqs(frames))
}

// nextResult is what a Next call run in another goroutine returned.
type nextResult struct {
	frames []*Frame
	err    error
}

func nextAsync(ctx context.Context, sub *Subscription) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		frames, err := sub.Next(ctx, nil)
		ch <- nextResult{frames, err}
	}()
	return ch
}

// requireNotStranded fails when Next returned no frames and nil although
// nothing is going to signal the subscription: the stream would hang. Use
// it only when no topic fetch is in flight.
func requireNotStranded(t *testing.T, sub *Subscription, r nextResult) {
	t.Helper()
	if len(r.frames) > 0 || r.err != nil {
		return
	}
	select {
	case <-sub.Ready():
	default:
		t.Fatal("Next returned no frames and nothing will signal the subscription")
	}
}

func drainReady(sub *Subscription) {
	select {
	case <-sub.Ready():
	default:
	}
}

// shareTopic subscribes a second member to taskID at cursor after and joins
// it, so that the topic's fetcher serves its members through the window
// (a topic with one member lets it read the Source itself). The member
// takes nothing, so the window keeps what the other members need.
func shareTopic(t *testing.T, h *Hub, l *memLog, taskID string, after int64) {
	t.Helper()
	w := subscribe(t, h, l, named("shared"), taskID, after, SubscribeOpts{})
	frames, err := w.Next(named("shared"), nil)
	require.NoError(t, err)
	require.Empty(t, frames)
	require.Nil(t, w.t.solo.Load(), "the topic is served by its fetcher")
}
