package taskbridge

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// logStore is the smallest store the fan-out needs: one task, an in-memory
// log and watchers. The other Store methods are not used here.
type logStore struct {
	Store // nil: calling anything else panics

	mu       sync.Mutex
	task     Task
	events   []TaskEvent
	watchers map[int]func()
	nextW    int
}

func (s *logStore) GetTask(context.Context, string) (Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.task, nil
}

func (s *logStore) Read(_ context.Context, _ string, after int64, limit int) ([]TaskEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if after > int64(len(s.events)) {
		return nil, ErrInvalidCursor
	}
	out := s.events[after:]
	return append([]TaskEvent(nil), out[:min(limit, len(out))]...), nil
}

func (s *logStore) Watch(_ string, notify func()) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextW
	s.nextW++
	s.watchers[id] = notify
	return func() {
		s.mu.Lock()
		delete(s.watchers, id)
		s.mu.Unlock()
	}
}

func (s *logStore) append(et EventType) {
	s.mu.Lock()
	seq := int64(len(s.events) + 1)
	s.events = append(s.events, TaskEvent{Type: et, TaskID: s.task.ID, EventID: FormatEventID(seq), Seq: seq,
		CreatedAt: time.Unix(0, 0), Payload: json.RawMessage(`{"message":"m"}`)})
	var ws []func()
	for _, w := range s.watchers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w()
	}
}

// TestTopicWindowKeepsOnlyWhatSubscribersNeed checks that a topic whose
// subscribers keep up holds no more than the frames of the latest read,
// and one with a stalled subscriber holds at most topicWindow frames.
func TestTopicWindowKeepsOnlyWhatSubscribersNeed(t *testing.T) {
	store := &logStore{task: Task{ID: "t1", OwnerID: "alice", Status: StatusRunning}, watchers: map[int]func(){}}
	svc, err := New(Config{Store: store, Executor: nopExecutor{}, ReplayBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(context.Background())
	ctx := context.Background()
	auth := AuthContext{Subject: "alice"}
	windowLen := func() int {
		svc.hub.mu.Lock()
		tp := svc.hub.topics["t1"]
		svc.hub.mu.Unlock()
		tp.mu.Lock()
		defer tp.mu.Unlock()
		return len(tp.window)
	}

	live, err := svc.Subscribe(ctx, auth, "t1", "", SubscribeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Next(ctx, nil); err != nil { // joins the topic
		t.Fatal(err)
	}
	got := 0
	for i := range 3000 {
		store.append(EventTaskMessage)
		for got < i+1 { // keep up
			frames, err := live.Next(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			got += len(frames)
			if len(frames) == 0 {
				<-live.Ready()
			}
		}
	}
	if n := windowLen(); n > 16 {
		t.Fatalf("window holds %d frames although its subscriber took them all", n)
	}

	stalled, err := svc.Subscribe(ctx, auth, "t1", "3000", SubscribeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Next(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 * topicWindow {
		store.append(EventTaskMessage)
	}
	store.append(EventTaskCompleted)
	for { // the live one drains
		frames, err := live.Next(ctx, nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 {
			<-live.Ready()
		}
	}
	if n := windowLen(); n > topicWindow {
		t.Fatalf("window holds %d frames, more than %d", n, topicWindow)
	}
	// The stalled one still gets everything, partly from the store.
	var seqs []int64
	for {
		frames, err := stalled.Next(ctx, nil)
		for _, f := range frames {
			seqs = append(seqs, f.Event.Seq)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 {
			<-stalled.Ready()
		}
	}
	if len(seqs) != 3*topicWindow+1 || seqs[0] != 3001 || seqs[len(seqs)-1] != int64(3001+3*topicWindow) {
		t.Fatalf("stalled subscriber got %d events", len(seqs))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("gap or repeat at %d: %d after %d", i, seqs[i], seqs[i-1])
		}
	}
}

type nopExecutor struct{}

func (nopExecutor) Submit(context.Context, Task, Emitter) error { return nil }
func (nopExecutor) Cancel(context.Context, Task) error          { return nil }

func TestTopicTrim(t *testing.T) {
	frame := func(seq int64, size int) *Frame {
		return &Frame{Event: TaskEvent{Seq: seq}, JSON: make([]byte, size)}
	}
	tp := &topic{base: 10}
	for i := range int64(10) {
		f := frame(11+i, 1<<20) // 1 MiB each: 10 MiB in all
		tp.window = append(tp.window, f)
		tp.bytes += len(f.JSON)
	}
	tp.trim(10) // nothing taken yet: only the byte cap applies
	if tp.bytes > topicWindowBytes || len(tp.window) != 8 || tp.base != 12 || tp.window[0].Event.Seq != 13 {
		t.Fatalf("after byte cap: base %d, %d frames, %d bytes", tp.base, len(tp.window), tp.bytes)
	}
	tp.trim(15) // every subscriber took up to 15
	if tp.base != 15 || len(tp.window) != 5 || tp.window[0].Event.Seq != 16 || tp.bytes != 5<<20 {
		t.Fatalf("after consumption: base %d, %d frames, %d bytes", tp.base, len(tp.window), tp.bytes)
	}
	tp.trim(99) // beyond the window: everything goes
	if tp.base != 20 || len(tp.window) != 0 || tp.bytes != 0 {
		t.Fatalf("after full consumption: base %d, %d frames, %d bytes", tp.base, len(tp.window), tp.bytes)
	}
}

// A published view must stay intact however the fetcher trims and appends
// afterwards: a subscriber may be reading it without a lock. (Trimming used
// to clear dropped slots in place, so a subscriber lagging past the window's
// caps could read nil frames.)
func TestTopicViewSurvivesTrim(t *testing.T) {
	frame := func(seq int64) *Frame { return &Frame{Event: TaskEvent{Seq: seq}, JSON: []byte("{}")} }
	tp := &topic{}
	for i := range int64(64) {
		tp.window = append(tp.window, frame(i+1))
		tp.bytes += 2
	}
	tp.publish()
	held := tp.view.Load()
	sub := &Subscription{last: 0, batch: 1024, ready: make(chan struct{}, 1)}

	// The fetcher moves on: everything taken, then more appended and
	// trimmed in steps (exercising both re-slicing and compaction).
	for range 20 {
		tp.trim(tp.base + 3)
		for range 5 {
			tp.window = append(tp.window, frame(tp.base+int64(len(tp.window))+1))
		}
		tp.publish()
	}
	for i, f := range held.frames {
		if f == nil || f.Event.Seq != int64(i+1) {
			t.Fatalf("held view slot %d changed to %v", i, f)
		}
	}
	// A subscriber reading the current view sees dense Seqs from its base.
	sub.last = tp.view.Load().base
	got, ok := tp.frames(sub, nil)
	if !ok || len(got) != len(tp.window) {
		t.Fatalf("frames: ok=%v, %d frames, window %d", ok, len(got), len(tp.window))
	}
	for i, f := range got {
		if f.Event.Seq != tp.base+int64(i)+1 {
			t.Fatalf("frame %d has Seq %d, want %d", i, f.Event.Seq, tp.base+int64(i)+1)
		}
	}
	// Compaction bounds what the window's array keeps reachable.
	if c, n := cap(tp.window), len(tp.window); c > 2*n+64 {
		t.Fatalf("window keeps cap %d for %d live frames", c, n)
	}
}

// newFrame sizes its buffer so that the fast path never grows it, even for
// the longest timestamps.
func TestNewFrameFitsItsBuffer(t *testing.T) {
	for _, ev := range []TaskEvent{
		{Type: EventTaskCompleted, TaskID: "a", EventID: "1", CreatedAt: time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), Payload: json.RawMessage(`{"result":null}`)},
		{Type: EventTaskProgress, TaskID: strings.Repeat("x", 255), EventID: "18446744073709551615",
			CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 123456789, time.FixedZone("", 3600)), Payload: json.RawMessage(`{"progress":1}`)},
		{Type: EventTaskMessage, TaskID: "t", EventID: "2", CreatedAt: time.Unix(0, 0), Payload: json.RawMessage(`{}`)},
	} {
		f := newFrame(ev)
		want := frameOverhead + len(ev.Type) + len(ev.TaskID) + len(ev.EventID) + len(ev.Payload)
		if cap(f.JSON) != want || !json.Valid(f.JSON) {
			t.Fatalf("frame of %d bytes in a buffer of %d, sized %d: %s", len(f.JSON), cap(f.JSON), want, f.JSON)
		}
	}
}
