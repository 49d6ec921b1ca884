package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watch implements [taskbridge.EventStore]. Every watcher of the store, for
// every task, is fed by one subscription connection: the first watcher of
// a task in this process subscribes to the task's wake-up channel, which
// every append PUBLISHes to from inside its script, and the last one's
// stop unsubscribes. That first Watch returns once Redis has confirmed the
// subscription (or after Config.WatchTimeout, in which case the watcher is
// called when it is confirmed). When the subscription connection drops and
// comes back, go-redis subscribes again and every watcher is called, so
// that it re-reads what it may have missed. After [Store.Close], Watch
// returns a stop that does nothing.
func (s *Store) Watch(taskID string, notify func()) (stop func()) {
	return s.n.watch(s.k.wake(taskID), func(string) { notify() })
}

// WatchControl implements [taskbridge.ControlFeed] over the control channel
// of the store's prefix, which RequestCancel (first request) and
// AcceptAction (ACCEPTED) publish the task id to from inside their
// scripts. It shares the subscription connection of [Store.Watch] and
// follows the same rules; after the connection dropped and came back,
// notify is called with "".
func (s *Store) WatchControl(notify func(taskID string)) (stop func()) {
	return s.n.watch(s.k.control(), notify)
}

// subscribeChunk bounds the channels of one SUBSCRIBE or UNSUBSCRIBE.
const subscribeChunk = 500

// errNotConnected is the state of a subscription connection that has not
// answered yet.
var errNotConnected = errors.New("not connected yet")

// notifier multiplexes the store's watchers onto one go-redis PubSub. Two
// goroutines own the connection: the reader receives messages and
// subscription confirmations, the writer sends SUBSCRIBE and UNSUBSCRIBE
// as watchers come and go, so that they reach Redis in the order the
// subscription decisions were taken.
//
// A subscription confirmation for a channel releases the watchers waiting
// in watch and calls every other watcher of the channel: such a
// confirmation means either that the connection came back (the watchers
// may have missed messages) or that a subscription was renewed after an
// unsubscribe (a watcher released early by an older confirmation may have
// missed messages in between). Calls are spurious at worst.
type notifier struct {
	ps           *redis.PubSub
	log          *slog.Logger
	watchTimeout time.Duration
	pingInterval time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{} // wakes the writer; capacity 1
	done   chan struct{} // closed by close
	wg     sync.WaitGroup

	mu     sync.Mutex
	chans  map[string]*channel
	dirty  map[string]struct{} // channels whose subscription may need a change
	closed bool
	down   error // why the connection is down; nil while it is up
}

// channel holds the watchers of one Redis channel in this process.
type channel struct {
	watchers []*watcher
	// ready is closed by the next subscription confirmation; nil when no
	// watcher waits for one.
	ready chan struct{}
}

type watcher struct {
	fn      func(payload string)
	idx     int  // position in channel.watchers; -1 once removed
	waiting bool // in watch, waiting for the subscription confirmation
}

func newNotifier(rdb redis.UniversalClient, control string, cfg Config) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	n := &notifier{
		ps:           rdb.Subscribe(ctx),
		log:          cfg.Logger,
		watchTimeout: cfg.WatchTimeout,
		pingInterval: cfg.PingInterval,
		ctx:          ctx,
		cancel:       cancel,
		kick:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		chans:        map[string]*channel{},
		dirty:        map[string]struct{}{},
		down:         errNotConnected,
	}
	n.wg.Go(n.read)
	n.wg.Go(n.write)
	return n
}

// watch registers fn for the messages of Redis channel name.
func (n *notifier) watch(name string, fn func(string)) (stop func()) {
	w := &watcher{fn: fn}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return func() {}
	}
	ch := n.chans[name]
	if ch == nil {
		ch = &channel{ready: make(chan struct{})}
		n.chans[name] = ch
		n.markDirty(name)
	}
	ready := ch.ready
	w.waiting = ready != nil
	w.idx = len(ch.watchers)
	ch.watchers = append(ch.watchers, w)
	n.mu.Unlock()

	if ready != nil {
		t := time.NewTimer(n.watchTimeout)
		select {
		case <-ready:
		case <-t.C:
		case <-n.done:
		}
		t.Stop()
		n.mu.Lock()
		w.waiting = false
		n.mu.Unlock()
	}
	return func() { n.unwatch(name, ch, w) }
}

func (n *notifier) unwatch(name string, ch *channel, w *watcher) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if w.idx < 0 {
		return
	}
	last := len(ch.watchers) - 1
	moved := ch.watchers[last]
	ch.watchers[w.idx] = moved
	moved.idx = w.idx
	ch.watchers[last] = nil
	ch.watchers = ch.watchers[:last]
	w.idx = -1
	if len(ch.watchers) == 0 && n.chans[name] == ch {
		delete(n.chans, name)
		n.markDirty(name)
	}
}

// markDirty queues name for the writer. n.mu must be held.
func (n *notifier) markDirty(name string) {
	n.dirty[name] = struct{}{}
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// write sends the subscription changes until the notifier is closed.
func (n *notifier) write() {
	sent := map[string]struct{}{} // channels this goroutine subscribed
	for {
		select {
		case <-n.kick:
		case <-n.done:
			return
		}
		var subs, unsubs []string
		n.mu.Lock()
		for name := range n.dirty {
			ch := n.chans[name]
			_, was := sent[name]
			switch {
			case ch != nil && (!was || ch.ready != nil):
				subs = append(subs, name)
				sent[name] = struct{}{}
			case ch == nil && was:
				unsubs = append(unsubs, name)
				delete(sent, name)
			}
		}
		clear(n.dirty)
		n.mu.Unlock()
		// A failed write leaves the channels in the PubSub's set, which
		// go-redis subscribes again when it reconnects.
		for len(subs) > 0 {
			c := subs[:min(len(subs), subscribeChunk)]
			subs = subs[len(c):]
			if err := n.ps.Subscribe(n.ctx, c...); err != nil {
				n.log.LogAttrs(n.ctx, slog.LevelDebug, "redisstore: subscribe failed", slog.Any("error", err))
			}
		}
		for len(unsubs) > 0 {
			c := unsubs[:min(len(unsubs), subscribeChunk)]
			unsubs = unsubs[len(c):]
			if err := n.ps.Unsubscribe(n.ctx, c...); err != nil {
				n.log.LogAttrs(n.ctx, slog.LevelDebug, "redisstore: unsubscribe failed", slog.Any("error", err))
			}
		}
	}
}

// read receives from the subscription connection until the notifier is
// closed. go-redis reconnects a broken connection on the next call and
// subscribes to every channel again; the confirmations then call the
// watchers (see subscribed).
func (n *notifier) read() {
	var backoff time.Duration
	ping := true
	for {
		var (
			msg any
			err error
		)
		if ping {
			// A PING is answered promptly even with no subscriptions, so
			// the connection is known to be up (or down) at once.
			err = n.ps.Ping(n.ctx)
		}
		if err == nil {
			ping = false
			msg, err = n.ps.ReceiveTimeout(n.ctx, n.pingInterval)
		}
		select {
		case <-n.done:
			return
		default:
		}
		if err != nil {
			ping = true
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // idle: ping
			}
			n.lost(err)
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-n.done:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		n.up()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				n.subscribed(m.Channel)
			}
		case *redis.Message:
			n.message(m.Channel, m.Payload)
		}
	}
}

// subscribed handles the confirmation of a subscription to name: waiting
// watchers are released, the others are called.
func (n *notifier) subscribed(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := n.chans[name]
	if ch == nil {
		return
	}
	n.call(ch, "", true)
	if ch.ready != nil {
		close(ch.ready)
		ch.ready = nil
	}
}

// message calls the watchers of name with a published payload.
func (n *notifier) message(name, payload string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch := n.chans[name]; ch != nil {
		n.call(ch, payload, false)
	}
}

// call calls ch's watchers that are not waiting in watch with payload;
// release also ends the wait of the others. n.mu must be held.
func (n *notifier) call(ch *channel, payload string, release bool) {
	for _, w := range ch.watchers {
		switch {
		case !w.waiting:
			w.fn(payload)
		case release:
			w.waiting = false
		}
	}
}

func (n *notifier) lost(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down == nil {
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "redisstore: subscription connection lost; reconnecting", slog.Any("error", err))
	}
	n.down = err
}

func (n *notifier) up() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down != nil && n.down != errNotConnected {
		n.log.LogAttrs(n.ctx, slog.LevelInfo, "redisstore: subscription connection restored; watchers re-read")
	}
	n.down = nil
}

// ready reports whether the subscription connection is up.
func (n *notifier) ready() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down != nil {
		return fmt.Errorf("redisstore: subscription connection is down: %w", n.down)
	}
	return nil
}

// close stops the goroutines, closes the connection and calls every
// watcher one last time.
func (n *notifier) close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	chans := n.chans
	n.chans = map[string]*channel{}
	n.mu.Unlock()
	close(n.done)
	n.cancel()
	_ = n.ps.Close()
	n.wg.Wait()

	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range chans {
		for _, w := range ch.watchers {
			w.idx = -1
			w.fn("")
		}
		ch.watchers = nil
	}
}
