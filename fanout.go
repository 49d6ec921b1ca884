package taskbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The fan-out.
//
// One hub per Service serves polling, SSE and WebSocket alike. For every task
// with at least one live subscriber the hub keeps a topic: it watches the
// store, reads each new event once, encodes it once into a shared Frame and
// keeps the newest frames in a window. Subscribers do not own queues: each
// remembers the Seq of the last event it delivered and takes the frames after
// it from the window (events have dense Seqs, so that is an index). A
// subscriber that falls behind the window, or that is still replaying
// history, reads the store itself with its own cursor; it rejoins the window
// when it has caught up. Nothing is ever dropped, and a slow subscriber costs
// nobody else anything: transports disconnect it through write deadlines and
// it resumes by cursor.
//
// Heartbeats come from one scheduler goroutine per distinct interval, not a
// ticker per connection.

const (
	// A topic keeps the frames its slowest live subscriber has yet to take,
	// up to topicWindow frames and topicWindowBytes of JSON; a subscriber
	// further behind reads the store until it catches up. Frames every
	// subscriber has taken are dropped at once.
	topicWindow      = 16384
	topicWindowBytes = 8 << 20
	// maxFramesPerNext bounds the frames one Next call returns, so one
	// write stays bounded.
	maxFramesPerNext = 512
)

// SubscribeOpts configures [Service.Subscribe].
type SubscribeOpts struct {
	// Transport names the transport ("sse", "ws") in the streams_active
	// gauge and in logs. Empty means an internal subscription that is not
	// counted as a stream.
	Transport string
	// HeartbeatInterval is the idle time after which HeartbeatDue reports
	// true. Zero disables heartbeats.
	HeartbeatInterval time.Duration
	// Signal, when set, is used as the subscription's Ready channel, so one
	// connection can wait on several subscriptions. It must have a capacity
	// of at least 1.
	Signal chan struct{}
}

// Frame is one event as delivered to subscribers: the event and its compact
// JSON encoding, made once and shared by every subscriber. Both are
// read-only.
type Frame struct {
	Event TaskEvent
	JSON  []byte
}

// frameOverhead is what AppendEventJSON adds to an event's strings and
// payload on its fast path: the envelope's keys and punctuation (62 bytes)
// and an RFC 3339 UTC time with nanoseconds (at most 30).
const frameOverhead = len(`{"type":"","taskId":"","eventId":"","createdAt":"","payload":}`) + len("2006-01-02T15:04:05.999999999Z")

// newFrame encodes ev into a buffer sized for it, so that the common case
// allocates the JSON once.
func newFrame(ev TaskEvent) *Frame {
	n := frameOverhead + len(ev.Type) + len(ev.TaskID) + len(ev.EventID) + len(ev.Payload)
	return &Frame{Event: ev, JSON: AppendEventJSON(make([]byte, 0, n), ev)}
}

// AppendEventJSON appends the compact JSON encoding of ev to dst. It is the
// encoding used on every transport, identical in content to json.Marshal but
// without reflection. The payload is compacted if it contains whitespace
// (SSE data lines must not contain line breaks).
func AppendEventJSON(dst []byte, ev TaskEvent) []byte {
	if !jsonSafeString(string(ev.Type)) || !jsonSafeString(ev.TaskID) || !jsonSafeString(ev.EventID) ||
		!json.Valid(ev.Payload) {
		ev.CreatedAt = ev.CreatedAt.UTC()
		b, err := json.Marshal(ev)
		if err != nil {
			// Only an invalid payload gets here; keep the envelope valid.
			ev.Payload = json.RawMessage(`{}`)
			b, _ = json.Marshal(ev)
		}
		return append(dst, b...)
	}
	dst = append(dst, `{"type":"`...)
	dst = append(dst, ev.Type...)
	dst = append(dst, `","taskId":"`...)
	dst = append(dst, ev.TaskID...)
	dst = append(dst, `","eventId":"`...)
	dst = append(dst, ev.EventID...)
	dst = append(dst, `","createdAt":"`...)
	dst = ev.CreatedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","payload":`...)
	if bytes.ContainsAny(ev.Payload, " \t\r\n") {
		var buf bytes.Buffer
		_ = json.Compact(&buf, ev.Payload)
		dst = append(dst, buf.Bytes()...)
	} else {
		dst = append(dst, ev.Payload...)
	}
	return append(dst, '}')
}

// jsonSafeString reports whether s can be written between JSON quotes as is.
func jsonSafeString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// hub is the event fan-out shared by polling, SSE and WebSocket.
type hub struct {
	s      *Service
	ctx    context.Context // cancelled by shutdown; used by topic reads
	cancel context.CancelFunc

	mu      sync.Mutex
	topics  map[string]*topic
	subs    map[*Subscription]struct{}
	closed  bool
	drained chan struct{} // closed when closed && len(subs) == 0
	hb      map[time.Duration]*hbGroup

	wg sync.WaitGroup // topic fetchers and heartbeat schedulers
}

func newHub(s *Service) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{
		s:       s,
		ctx:     ctx,
		cancel:  cancel,
		topics:  map[string]*topic{},
		subs:    map[*Subscription]struct{}{},
		drained: make(chan struct{}),
		hb:      map[time.Duration]*hbGroup{},
	}
}

// Subscription is a replay-then-live stream of one task's events. Next and
// Close must be called from one goroutine at a time (the transport's).
type Subscription struct {
	h         *hub
	taskID    string
	transport string
	ready     chan struct{}
	batch     int

	// Owned by the consumer goroutine.
	last    int64    // Seq of the last event handed out
	pending []*Frame // first replay batch, read by Subscribe
	t       *topic   // joined topic; nil while replaying from the store
	done    bool     // terminal frame handed out
	closed  bool

	// Shared with the hub, topics and the heartbeat scheduler.
	pos        atomic.Int64          // copy of last, read by the topic to trim its window
	failErr    atomic.Pointer[error] // ErrClosed on shutdown, ErrTaskNotFound on deletion
	hbInterval time.Duration
	lastActive atomic.Int64 // unix nanos of the last frame or heartbeat
	hbDue      atomic.Bool
}

// Subscribe checks that auth may see the task and that lastEventID is a
// valid, unexpired cursor, and returns a subscription that delivers every
// event strictly after it: first replayed from the store, then live. Errors
// are those of the checks ([ErrTaskNotFound], [ErrInvalidCursor],
// [ErrEventsExpired], [ErrClosed]), so a transport can answer them before it
// commits to a stream. The caller must Close the subscription.
func (s *Service) Subscribe(ctx context.Context, auth AuthContext, taskID, lastEventID string, opts SubscribeOpts) (*Subscription, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if opts.Signal != nil && cap(opts.Signal) < 1 {
		return nil, errors.New("taskbridge: SubscribeOpts.Signal must be buffered")
	}
	after, err := ParseEventID(lastEventID)
	if err != nil {
		return nil, err
	}
	task, err := s.ownedTask(ctx, auth, taskID)
	if err != nil {
		return nil, err
	}
	events, err := s.store.Read(ctx, taskID, after, s.cfg.ReplayBatch)
	if err != nil {
		return nil, err
	}
	if after == 0 && len(events) == 0 {
		// Nothing is retained: the stream starts after the task's last
		// event, and is held to that cursor from now on (see replay).
		after = task.LastSeq
	}
	sub := s.hub.newSubscription(taskID, after, opts)
	for _, ev := range events {
		sub.pending = append(sub.pending, newFrame(ev))
	}
	// The task was read before its log: if it was terminal then and nothing
	// follows the cursor, the cursor is at (or after) the terminal event.
	if task.Status.Terminal() && len(events) == 0 {
		sub.done = true
	}
	if err := s.hub.register(sub); err != nil {
		return nil, err
	}
	if lastEventID != "" {
		s.metrics.AddCounter(MetricReplays, 1)
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "taskbridge: subscribed",
		slog.String("taskId", taskID), slog.String("eventId", lastEventID),
		slog.String("userId", auth.Subject), slog.String("transport", opts.Transport),
		slog.String("outcome", "subscribed"))
	return sub, nil
}

func (h *hub) newSubscription(taskID string, after int64, opts SubscribeOpts) *Subscription {
	sub := &Subscription{
		h:          h,
		taskID:     taskID,
		transport:  opts.Transport,
		ready:      opts.Signal,
		batch:      h.s.cfg.ReplayBatch,
		last:       after,
		hbInterval: opts.HeartbeatInterval,
	}
	sub.pos.Store(after)
	if sub.ready == nil {
		sub.ready = make(chan struct{}, 1)
	}
	sub.lastActive.Store(time.Now().UnixNano())
	return sub
}

// register makes sub known to shutdown, the gauge and the heartbeat
// scheduler.
func (h *hub) register(sub *Subscription) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	h.subs[sub] = struct{}{}
	var g *hbGroup
	if sub.hbInterval > 0 {
		g = h.hb[sub.hbInterval]
		if g == nil {
			g = &hbGroup{h: h, interval: sub.hbInterval, members: map[*Subscription]struct{}{}}
			h.hb[sub.hbInterval] = g
		}
	}
	h.mu.Unlock()
	if g != nil {
		g.add(sub)
	}
	if sub.transport != "" {
		h.s.metrics.AddGauge(MetricStreamsActive, 1, Label{"transport", sub.transport})
	}
	return nil
}

// TaskID returns the subscribed task's id.
func (sub *Subscription) TaskID() string { return sub.taskID }

// Ready is signalled when Next may have frames, a heartbeat is due or the
// subscription ended. It is SubscribeOpts.Signal when that was set.
func (sub *Subscription) Ready() <-chan struct{} { return sub.ready }

func (sub *Subscription) signal() {
	select {
	case sub.ready <- struct{}{}:
	default:
	}
}

func (sub *Subscription) fail(err error) {
	sub.failErr.CompareAndSwap(nil, &err)
	sub.signal()
}

// Next appends the frames available now to dst and returns it. It reads the
// store while replaying but never waits for live events: with no frames and
// a nil error, wait on Ready. After returning a terminal event's frame, the
// next call returns io.EOF; it returns io.EOF at once if the stream started
// at or after the terminal event. It returns [ErrClosed] when the service
// shuts down or after Close, [ErrTaskNotFound] if the task was deleted, and
// [ErrEventsExpired] if retention removed events it had yet to deliver.
func (sub *Subscription) Next(ctx context.Context, dst []*Frame) ([]*Frame, error) {
	switch {
	case sub.closed:
		return dst, ErrClosed
	case sub.done:
		return dst, io.EOF
	}
	if p := sub.failErr.Load(); p != nil {
		return dst, *p
	}
	n := len(dst)
	var err error
	switch {
	case len(sub.pending) > 0:
		dst = sub.take(dst, sub.pending)
		sub.pending = nil
		if len(dst)-n < sub.batch {
			dst = sub.joinLive(dst)
		}
	case sub.t == nil:
		dst, err = sub.replay(ctx, dst)
	default:
		var ok bool
		if dst, ok = sub.t.frames(sub, dst); !ok {
			// Fell behind the window: read the store until caught up.
			sub.leave()
			dst, err = sub.replay(ctx, dst)
		}
	}
	if len(dst) > n {
		sub.lastActive.Store(time.Now().UnixNano())
	}
	return dst, err
}

// take appends frames to dst, tracking the cursor and the terminal event.
func (sub *Subscription) take(dst, frames []*Frame) []*Frame {
	for _, f := range frames {
		dst = append(dst, f)
		sub.last = f.Event.Seq
		sub.pos.Store(sub.last)
		if f.Event.Terminal() {
			sub.done = true
			break
		}
	}
	return dst
}

// replay reads one batch from the store; when the batch shows the
// subscriber caught up, it joins the task's topic.
//
// Every read but Subscribe's first is held to "strictly after the last
// delivered Seq", including at cursor 0: a stream that started before the
// task had events could have delivered event 1, so a log that no longer
// starts at 1 has lost events it owes (the store itself reads "after 0" as
// "from the oldest retained event").
func (sub *Subscription) replay(ctx context.Context, dst []*Frame) ([]*Frame, error) {
	events, err := sub.h.s.store.Read(ctx, sub.taskID, sub.last, sub.batch)
	if err != nil {
		return dst, err
	}
	if err := checkDense(sub.last, events); err != nil {
		return dst, err
	}
	frames := make([]*Frame, len(events))
	for i, ev := range events {
		frames[i] = newFrame(ev)
	}
	if dst = sub.take(dst, frames); sub.done {
		return dst, nil
	}
	if len(events) < sub.batch {
		dst = sub.joinLive(dst)
	}
	return dst, nil
}

// checkDense checks that events, read after cursor after, continue it
// without a gap. A gap after 0 means retention removed the log's first
// events; any other gap breaks the store's contract.
func checkDense(after int64, events []TaskEvent) error {
	if len(events) == 0 {
		return nil
	}
	first, last := events[0].Seq, events[len(events)-1].Seq
	switch {
	case first == after+1 && last == after+int64(len(events)):
		return nil
	case after == 0 && first > 1 && last == first+int64(len(events))-1:
		return fmt.Errorf("%w: events 1..%d were removed by retention", ErrEventsExpired, first-1)
	}
	return fmt.Errorf("taskbridge: store returned events %d..%d after %d; Seqs must be dense", first, last, after)
}

// joinLive joins the task's topic and takes what its window holds after
// the cursor: events may have reached the topic between the subscriber's
// last read and the join. If the window has moved past the cursor
// meanwhile (its other members took those frames and they were dropped),
// the subscriber leaves again and signals itself, so that the next Next
// reads them from the store: nothing else would wake it.
func (sub *Subscription) joinLive(dst []*Frame) []*Frame {
	if sub.t != nil || sub.done {
		return dst
	}
	sub.t = sub.h.join(sub)
	out, ok := sub.t.frames(sub, dst)
	if !ok {
		sub.leave()
		sub.signal()
		return dst
	}
	return out
}

func (sub *Subscription) leave() {
	if sub.t != nil {
		sub.h.leave(sub.t, sub)
		sub.t = nil
	}
}

// HeartbeatDue reports, and clears, that nothing was delivered for the
// heartbeat interval. The caller is expected to send a heartbeat.
func (sub *Subscription) HeartbeatDue() bool {
	if sub.hbDue.Swap(false) {
		sub.lastActive.Store(time.Now().UnixNano())
		return true
	}
	return false
}

// Close ends the subscription and releases its resources. Idempotent.
func (sub *Subscription) Close() {
	if sub.closed {
		return
	}
	sub.closed = true
	sub.leave()
	h := sub.h
	h.mu.Lock()
	delete(h.subs, sub)
	g := h.hb[sub.hbInterval]
	drained := h.closed && len(h.subs) == 0
	h.mu.Unlock()
	if g != nil {
		g.remove(sub)
	}
	if drained {
		h.closeDrained()
	}
	if sub.transport != "" {
		h.s.metrics.AddGauge(MetricStreamsActive, -1, Label{"transport", sub.transport})
	}
}

func (h *hub) closeDrained() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.drained:
	default:
		close(h.drained)
	}
}

// shutdown fails every subscription with ErrClosed and waits for the
// transports to close them, then for the hub's goroutines.
func (h *hub) shutdown(ctx context.Context) error {
	h.mu.Lock()
	first := !h.closed
	h.closed = true
	subs := make([]*Subscription, 0, len(h.subs))
	for sub := range h.subs {
		subs = append(subs, sub)
	}
	empty := len(h.subs) == 0
	h.mu.Unlock()
	if first {
		for _, sub := range subs {
			sub.fail(ErrClosed)
		}
		if empty {
			h.closeDrained()
		}
	}
	select {
	case <-h.drained:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitForEvent blocks until the task has an event with Seq > after, events
// after the cursor have expired, ctx ends or timeout passes. Either way the
// caller reads the store next: the store has the last word, and the topic
// may lag behind it (a slow or failing read).
func (h *hub) waitForEvent(ctx context.Context, taskID string, after int64, timeout time.Duration) error {
	sub := h.newSubscription(taskID, after, SubscribeOpts{})
	if err := h.register(sub); err != nil {
		return err
	}
	defer sub.Close()
	var buf [1]*Frame
	if frames := sub.joinLive(buf[:0]); len(frames) > 0 {
		return nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		frames, err := sub.Next(ctx, buf[:0])
		if len(frames) > 0 || errors.Is(err, ErrEventsExpired) {
			// Expired: the caller's read reports it, or (at cursor 0)
			// returns the oldest retained events.
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-sub.ready:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// topic is the live state of one task with subscribers.
type topic struct {
	h      *hub
	taskID string

	// view is what subscribers read, without taking mu: an immutable
	// snapshot of window and base, replaced under mu whenever either
	// changes. Slots inside a published view are never written again
	// (appends go past its end; trimming re-slices or copies), so a
	// subscriber may read its frames after the fetcher has moved on.
	view atomic.Pointer[windowView]

	mu       sync.Mutex
	window   []*Frame // events with Seq in (base, base+len(window)]
	bytes    int      // JSON bytes in window
	base     int64
	subs     map[*Subscription]struct{}
	fetching bool
	dirty    bool
	dead     bool  // removed from the hub
	err      error // permanent read failure, delivered to subscribers
	stop     func()
}

// windowView is a published snapshot of a topic's window: the frames with
// Seq in (base, base+len(frames)].
type windowView struct {
	base   int64
	frames []*Frame
}

// publish makes the current window visible to subscribers. Callers hold mu.
func (t *topic) publish() {
	t.view.Store(&windowView{base: t.base, frames: t.window})
}

// join adds sub to its task's topic, creating the topic at sub's position
// if there is none.
func (h *hub) join(sub *Subscription) *topic {
	h.mu.Lock()
	t := h.topics[sub.taskID]
	created := t == nil
	if created {
		t = &topic{h: h, taskID: sub.taskID, base: sub.last, subs: map[*Subscription]struct{}{}}
		t.publish()
		h.topics[sub.taskID] = t
	}
	t.mu.Lock()
	t.subs[sub] = struct{}{}
	if t.err != nil {
		sub.fail(t.err)
	}
	t.mu.Unlock()
	h.mu.Unlock()
	if created {
		// Watch first, then read: an append between the subscriber's last
		// read and the watch is caught by this first fetch.
		stop := h.s.store.Watch(t.taskID, t.notify)
		t.mu.Lock()
		dead := t.dead
		if !dead {
			t.stop = stop
		}
		t.mu.Unlock()
		if dead {
			stop()
		} else {
			t.notify()
		}
	}
	return t
}

// leave removes sub from t and drops t when it has no subscribers left.
func (h *hub) leave(t *topic, sub *Subscription) {
	h.mu.Lock()
	t.mu.Lock()
	delete(t.subs, sub)
	var stop func()
	if len(t.subs) == 0 && !t.dead {
		t.dead = true
		stop = t.stop
		t.window, t.bytes = nil, 0
		t.publish()
		if h.topics[t.taskID] == t {
			delete(h.topics, t.taskID)
		}
	}
	t.mu.Unlock()
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// notify is the store's watch callback: it starts a fetch, or marks the
// running one dirty so it reads again.
func (t *topic) notify() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead || t.err != nil {
		return
	}
	if t.fetching {
		t.dirty = true
		return
	}
	t.fetching = true
	t.h.wg.Add(1)
	go t.fetch()
}

// fetch reads new events until the topic is caught up with the store.
func (t *topic) fetch() {
	defer t.h.wg.Done()
	batch := t.h.s.cfg.ReplayBatch
	backoff := 10 * time.Millisecond
	for {
		t.mu.Lock()
		if t.dead {
			t.fetching = false
			t.mu.Unlock()
			return
		}
		after := t.base + int64(len(t.window))
		t.dirty = false
		t.mu.Unlock()

		events, err := t.h.s.store.Read(t.h.ctx, t.taskID, after, batch)
		switch {
		case errors.Is(err, ErrEventsExpired):
			// The topic fell behind retention: restart the window at the
			// oldest retained event. Subscribers behind it replay from the
			// store and get ErrEventsExpired themselves.
			events, err = t.h.s.store.Read(t.h.ctx, t.taskID, 0, batch)
			if err == nil && len(events) > 0 {
				t.mu.Lock()
				t.window, t.bytes = nil, 0
				t.base = events[0].Seq - 1
				t.publish()
				t.mu.Unlock()
			}
		case errors.Is(err, ErrTaskNotFound):
			t.failAll(err)
			return
		}
		if err != nil {
			if t.h.ctx.Err() != nil {
				t.mu.Lock()
				t.fetching = false
				t.mu.Unlock()
				return
			}
			t.h.s.log.Warn("taskbridge: reading events for fan-out failed; retrying",
				slog.String("taskId", t.taskID), slog.Any("error", err))
			select {
			case <-time.After(backoff):
			case <-t.h.ctx.Done():
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond

		frames := make([]*Frame, len(events))
		for i, ev := range events {
			frames[i] = newFrame(ev)
		}
		t.mu.Lock()
		if t.dead {
			t.fetching = false
			t.mu.Unlock()
			return
		}
		if len(frames) > 0 {
			end := t.base + int64(len(t.window))
			if err := checkDense(end, events); errors.Is(err, ErrEventsExpired) {
				// The topic read from the start of a log that has lost
				// its first events: start the window at the oldest
				// retained one. Members behind it read the store and get
				// ErrEventsExpired themselves.
				t.base = events[0].Seq - 1
			} else if err != nil {
				t.mu.Unlock()
				t.failAll(err)
				return
			}
			t.window = append(t.window, frames...)
			for _, f := range frames {
				t.bytes += len(f.JSON)
			}
			consumed := t.base + int64(len(t.window))
			for sub := range t.subs {
				consumed = min(consumed, sub.pos.Load())
			}
			t.trim(consumed)
			// Publish before signalling: a woken subscriber must find the
			// new frames, or it would wait again and miss them.
			t.publish()
			for sub := range t.subs {
				sub.signal()
			}
		}
		if len(events) < batch && !t.dirty {
			t.fetching = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

// trim drops the window's frames every subscriber has taken (Seq <=
// consumed), and the oldest beyond topicWindow: a subscriber that still
// needs those reads them from the store. Slots are never cleared in place,
// since published views may still be reading them; instead the window is
// copied to a fresh array once the dropped prefix outweighs what remains,
// so the frames it held can be collected and no more than about twice the
// live window stays reachable.
func (t *topic) trim(consumed int64) {
	k := min(int(max(consumed-t.base, 0)), len(t.window))
	k = max(k, len(t.window)-topicWindow)
	bytes := t.bytes
	for _, f := range t.window[:k] {
		bytes -= len(f.JSON)
	}
	for ; bytes > topicWindowBytes && k < len(t.window); k++ {
		bytes -= len(t.window[k].JSON)
	}
	if k == 0 {
		return
	}
	rest := t.window[k:]
	switch {
	case len(rest) == 0:
		rest = nil
	case cap(t.window)-cap(rest) > len(rest):
		rest = append([]*Frame(nil), rest...)
	}
	t.window = rest
	t.base += int64(k)
	t.bytes = bytes
}

func (t *topic) failAll(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetching = false
	t.err = err
	for sub := range t.subs {
		sub.fail(err)
	}
}

// frames appends to dst the window frames after sub's cursor. ok is false
// when sub is behind the window and must read the store. It takes no lock:
// a thousand subscribers woken by one append read the same view at once.
func (t *topic) frames(sub *Subscription, dst []*Frame) ([]*Frame, bool) {
	v := t.view.Load()
	if sub.last < v.base {
		return dst, false
	}
	i := sub.last - v.base
	var out []*Frame
	if i < int64(len(v.frames)) {
		out = v.frames[i:]
		if len(out) > maxFramesPerNext {
			out = out[:maxFramesPerNext]
			sub.signal()
		}
	}
	return sub.take(dst, out), true
}

// hbGroup schedules heartbeats for the subscriptions sharing one interval.
type hbGroup struct {
	h        *hub
	interval time.Duration

	mu      sync.Mutex
	members map[*Subscription]struct{}
	running bool
	empty   chan struct{} // signalled when the last member leaves
}

func (g *hbGroup) add(sub *Subscription) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members[sub] = struct{}{}
	if !g.running {
		g.running = true
		if g.empty == nil {
			g.empty = make(chan struct{}, 1)
		}
		g.h.wg.Add(1)
		go g.run()
	}
}

// remove drops sub; the scheduler goroutine exits at once when it was the
// last member, so no goroutine outlives the streams.
func (g *hbGroup) remove(sub *Subscription) {
	g.mu.Lock()
	delete(g.members, sub)
	if len(g.members) == 0 && g.running {
		select {
		case g.empty <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
}

// run ticks at a quarter of the interval, so an idle subscription gets its
// heartbeat between 1 and 1.25 intervals after its last frame. It exits when
// the group is empty.
func (g *hbGroup) run() {
	defer g.h.wg.Done()
	tick := max(g.interval/4, time.Millisecond)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
		case <-g.empty:
		case <-g.h.ctx.Done():
			g.mu.Lock()
			g.running = false
			g.mu.Unlock()
			return
		}
		now := time.Now().UnixNano()
		g.mu.Lock()
		if len(g.members) == 0 {
			g.running = false
			// Drop a stale signal so the next run does not exit at once.
			select {
			case <-g.empty:
			default:
			}
			g.mu.Unlock()
			return
		}
		for sub := range g.members {
			if now-sub.lastActive.Load() >= int64(g.interval) && !sub.hbDue.Load() {
				sub.hbDue.Store(true)
				sub.signal()
			}
		}
		g.mu.Unlock()
	}
}

// String describes the subscription for logs.
func (sub *Subscription) String() string {
	return fmt.Sprintf("subscription(task=%s, transport=%s, after=%d)", sub.taskID, sub.transport, sub.last)
}
