package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The listener is the store's one LISTEN connection. Appends notify the
// events channel with the task id (pg_notify in the appending transaction,
// delivered on commit), control changes notify the control channel. The
// listener calls the watchers of the notified task; watchers never poll.
//
// When the connection is (re)established, after LISTEN, every watcher is
// called (control watchers with ""): whatever was appended while the
// connection was down, or before it came up, is then re-read.

const (
	maxReconnectDelay = 5 * time.Second
	// pingAfter is how long the connection may stay silent before the
	// listener checks it with a ping, so that a dead peer is noticed.
	pingAfter   = 30 * time.Second
	pingTimeout = 10 * time.Second
)

// firstListenWait bounds how long the first Watch waits for the LISTEN
// connection to come up.
const firstListenWait = 10 * time.Second

// A watcher is pending while it may have missed a notification: it was
// registered, or the connection dropped, while the store was not
// listening. Pending watchers are called once LISTEN is (re)established.
type eventWatcher struct {
	fn      func()
	pending bool
}

type controlWatcher struct {
	fn      func(taskID string)
	pending bool
}

type listener struct {
	s *Store

	// mu guards the watcher sets and is read-locked while watchers are
	// called, so that no call starts after a stop returns.
	mu        sync.RWMutex
	events    map[string]map[*eventWatcher]struct{}
	controls  map[*controlWatcher]struct{}
	listening bool
	closed    bool

	// stateMu guards the connection state, for readiness.
	stateMu sync.Mutex
	started bool
	up      bool
	lastErr error

	cancel   context.CancelFunc
	done     chan struct{}
	firstTry chan struct{} // closed by tried after the first connection attempt
	tryOnce  sync.Once
}

// tried marks the first connection attempt as done.
func (l *listener) tried() { l.tryOnce.Do(func() { close(l.firstTry) }) }

func newListener(s *Store) *listener {
	return &listener{
		s:        s,
		events:   map[string]map[*eventWatcher]struct{}{},
		controls: map[*controlWatcher]struct{}{},
		done:     make(chan struct{}),
		firstTry: make(chan struct{}),
	}
}

// await starts the listener if needed and, before it first tried to
// connect, waits for that (bounded by firstListenWait), so that a Watch
// made on a healthy database returns with the store listening.
func (l *listener) await() {
	l.start()
	select {
	case <-l.firstTry:
		return
	default:
	}
	t := time.NewTimer(firstListenWait)
	defer t.Stop()
	select {
	case <-l.firstTry:
	case <-t.C:
	}
}

// Watch implements [taskbridge.EventStore]. The first call opens the
// store's LISTEN connection and waits for it (at most 10s; if the database
// cannot be reached by then, the watcher is called once the connection is
// up). notify is called by the listener goroutine; it must not block and
// must not call back into the store. After [Store.Close], Watch returns a
// stop that does nothing.
func (s *Store) Watch(taskID string, notify func()) (stop func()) {
	l := s.lis
	l.await()
	w := &eventWatcher{fn: notify}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return func() {}
	}
	w.pending = !l.listening
	set := l.events[taskID]
	if set == nil {
		set = map[*eventWatcher]struct{}{}
		l.events[taskID] = set
	}
	set[w] = struct{}{}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if set := l.events[taskID]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(l.events, taskID)
			}
		}
	}
}

// WatchControl implements [taskbridge.ControlFeed]: notify is called with
// the task id after a first cancel request or an accepted action recorded
// by any process using the same database and schema, and with "" after the
// LISTEN connection was (re)established. The first call opens the LISTEN
// connection.
func (s *Store) WatchControl(notify func(taskID string)) (stop func()) {
	l := s.lis
	l.await()
	w := &controlWatcher{fn: notify}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return func() {}
	}
	w.pending = !l.listening
	l.controls[w] = struct{}{}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.controls, w)
	}
}

// start starts the listener goroutine once.
func (l *listener) start() {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.started || l.s.closed.Load() {
		return
	}

	l.started = true
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.run(ctx)
}

// ready reports an error while a started listener is not connected.
func (l *listener) ready() error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if !l.started || l.up {
		return nil
	}
	if l.lastErr != nil {
		return fmt.Errorf("pgstore: LISTEN connection down: %w", l.lastErr)
	}
	return errors.New("pgstore: LISTEN connection not established yet")
}

func (l *listener) setState(up bool, err error) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	l.up = up
	if err != nil {
		l.lastErr = err
	}
}

// close stops the goroutine, waits for it, then calls every watcher one
// last time and drops them all.
func (l *listener) close() {
	l.stateMu.Lock()
	started := l.started
	l.started = true // no start after close
	l.stateMu.Unlock()
	if started {
		l.cancel()
		<-l.done
	}
	l.tried()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, set := range l.events {
		for w := range set {
			w.fn()
		}
	}
	for w := range l.controls {
		w.fn("")
	}
	l.events = map[string]map[*eventWatcher]struct{}{}
	l.controls = map[*controlWatcher]struct{}{}
}

// run keeps a LISTEN connection up until ctx ends.
func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	delay := l.s.cfg.ReconnectDelay
	first := true
	for {
		connected, err := l.session(ctx, first)
		first = false
		l.lost(err)
		if ctx.Err() != nil {
			return
		}
		if connected {
			delay = l.s.cfg.ReconnectDelay
		}
		l.s.log.LogAttrs(ctx, slog.LevelWarn, "pgstore: LISTEN connection lost; reconnecting",
			slog.String("schema", l.s.cfg.Schema), slog.Duration("delay", delay), slog.Any("error", err))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, maxReconnectDelay)
	}
}

// session opens a connection, listens, wakes every watcher and then
// dispatches notifications until the connection fails or ctx ends.
// connected reports whether LISTEN succeeded.
func (l *listener) session(ctx context.Context, first bool) (connected bool, err error) {
	if first {
		defer l.tried()
	}
	cfg := l.s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = l.s.cfg.ListenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	listen := "LISTEN " + pgx.Identifier{l.s.eventsCh}.Sanitize() + "; LISTEN " + pgx.Identifier{l.s.controlCh}.Sanitize()
	if _, err := conn.Exec(ctx, listen); err != nil {
		return false, fmt.Errorf("LISTEN: %w", err)
	}
	l.listen()
	if first {
		l.tried()
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, pingAfter)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			l.dispatch(n.Channel, n.Payload)
			continue
		case ctx.Err() != nil:
			return true, nil
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return true, err
	}
}

// dispatch calls the watchers a notification concerns.
func (l *listener) dispatch(channel, taskID string) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch channel {
	case l.s.eventsCh:
		for w := range l.events[taskID] {
			w.fn()
		}
	case l.s.controlCh:
		for w := range l.controls {
			w.fn(taskID)
		}
	}
}

// listen records that the connection listens and calls the pending
// watchers: anything may have been appended while they were not covered.
// The calls are made under the write lock, so that no stop returns while
// one is running.
func (l *listener) listen() {
	l.setState(true, nil)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listening = true
	for _, set := range l.events {
		for w := range set {
			if w.pending {
				w.pending = false
				w.fn()
			}
		}
	}
	for w := range l.controls {
		if w.pending {
			w.pending = false
			w.fn("")
		}
	}
}

// lost records that the connection stopped listening: every watcher may
// miss notifications from now on until the next listen.
func (l *listener) lost(err error) {
	l.setState(false, err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listening = false
	for _, set := range l.events {
		for w := range set {
			w.pending = true
		}
	}
	for w := range l.controls {
		w.pending = true
	}
}
