package memstore

import (
	"sync"
)

// controlSet holds the control watchers. mu is read-locked while they are
// called and write-locked to change the set, so that a removed watcher is
// never called after its stop returns.
type controlSet struct {
	mu       sync.RWMutex
	watchers map[*controlWatcher]struct{}
	closed   bool
}

type controlWatcher struct {
	fn func(taskID string)
}

// WatchControl implements [taskbridge.ControlFeed] for the processes'
// goroutines sharing this store: notify is called synchronously by the
// goroutine whose RequestCancel (first=true) or AcceptAction (ACCEPTED)
// succeeded, after the task's lock is released. Nothing is ever missed, so
// notify is never called with "". After [Store.Close], WatchControl returns
// a stop that does nothing.
func (s *Store) WatchControl(notify func(taskID string)) (stop func()) {
	c := &s.control
	w := &controlWatcher{fn: notify}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return func() {}
	}
	if c.watchers == nil {
		c.watchers = make(map[*controlWatcher]struct{})
	}
	c.watchers[w] = struct{}{}
	return func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}
}

// notify calls every control watcher with taskID.
func (c *controlSet) notify(taskID string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for w := range c.watchers {
		w.fn(taskID)
	}
}

// close releases every watcher; later watches do nothing.
func (c *controlSet) close() {
	c.mu.Lock()
	c.watchers = nil
	c.closed = true
	c.mu.Unlock()
}
