package fanout

import "sync"

// maxIdleFetchers is the most goroutines that wait for a fetch to run; a
// fetcher that finishes while that many wait exits.
const maxIdleFetchers = 64

// fetchers keeps the goroutines that ran topic fetches for the next ones.
//
// Each fetch runs on a goroutine of its own, so that a topic whose Source
// read is slow delays no other topic. At light load a shared topic
// fetches once per append, and a new goroutine for each cost more than the
// fetch: besides starting it, the runtime grew its stack (a read, an
// encode, inline writes) by copying it, every time. A goroutine that has
// finished a fetch therefore waits for the next one, its stack grown; a
// fetch starts on a new goroutine only when none waits. Waiting fetchers
// are not kept without subscriptions: when the hub's last subscription
// closes, and at Shutdown, they exit (so are those still fetching, when
// done), and the hub runs no goroutine again until a topic fetches.
type fetchers struct {
	mu   sync.Mutex
	idle []chan *topic // a waiting fetcher's channel; nil ends it
	keep bool          // finished fetchers wait (cleared by release)
	shut bool          // Shutdown: nothing waits any more
}

// startFetch runs t.fetch on a waiting fetcher, or on a new one.
func (h *Hub) startFetch(t *topic) {
	f := &h.fetchers
	f.mu.Lock()
	if n := len(f.idle); n > 0 {
		c := f.idle[n-1]
		f.idle[n-1] = nil
		f.idle = f.idle[:n-1]
		f.mu.Unlock()
		c <- t // buffered: never blocks
		return
	}
	f.keep = !f.shut
	f.mu.Unlock()
	h.wg.Add(1)
	go h.fetcher(t)
}

// fetcher runs fetches, from t on, until it is told to exit or no longer
// waits for more.
func (h *Hub) fetcher(t *topic) {
	defer h.wg.Done()
	c := make(chan *topic, 1)
	for t != nil {
		t.fetch()
		if !h.fetchers.wait(c) {
			return
		}
		t = <-c
	}
}

// wait adds a fetcher's channel to the idle ones, unless the fetcher should
// exit instead.
func (f *fetchers) wait(c chan *topic) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.keep || len(f.idle) >= maxIdleFetchers {
		return false
	}
	f.idle = append(f.idle, c)
	return true
}

// release ends the waiting fetchers, and has those still fetching exit when
// done, until the next fetch starts a fetcher (never again after shutdown).
func (f *fetchers) release(shutdown bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keep = false
	f.shut = f.shut || shutdown
	for i, c := range f.idle {
		c <- nil
		f.idle[i] = nil
	}
	f.idle = f.idle[:0]
}
