package writewatch

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Watchdog watches the writes of many streams. Create it with [New]; it is
// safe for concurrent use.
type Watchdog struct {
	timeout time.Duration
	// now is the clock; tests drive check with their own.
	now func() time.Time

	mu      sync.Mutex
	writers map[*Writer]struct{}
	running bool
	empty   chan struct{} // signalled when the last writer is removed
	wg      sync.WaitGroup
}

// New returns a Watchdog that cuts off writes still in progress after
// (7/8 of) timeout, which must be positive.
func New(timeout time.Duration) *Watchdog {
	return &Watchdog{timeout: timeout, now: time.Now, writers: map[*Writer]struct{}{}, empty: make(chan struct{}, 1)}
}

// Writer is one stream's writes. Begin and End are called by the stream's
// writing goroutine, around each socket write.
type Writer struct {
	w     *Watchdog
	cut   func()
	since atomic.Int64 // when the write in progress began (Unix ns); 0: none
	fired atomic.Bool
}

// Add registers a stream; cut is called once, from the watchdog's
// goroutine, when one of its writes overruns. cut must not block nor call
// Remove. The caller must Remove the Writer when the stream ends.
func (w *Watchdog) Add(cut func()) *Writer {
	x := &Writer{w: w, cut: cut}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writers[x] = struct{}{}
	if !w.running {
		w.running = true
		w.wg.Add(1)
		go w.run()
	}
	return x
}

// Remove unregisters x; the watchdog's goroutine exits with its last
// writer. Idempotent.
func (x *Writer) Remove() {
	w := x.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.writers[x]; !ok {
		return
	}
	delete(w.writers, x)
	if len(w.writers) == 0 && w.running {
		select {
		case w.empty <- struct{}{}:
		default:
		}
	}
}

// Begin records that a write begins now.
func (x *Writer) Begin() { x.since.Store(x.w.now().UnixNano()) }

// ErrCut is the error of a write that the watchdog cut off. It wraps
// [os.ErrDeadlineExceeded], like a write deadline's, so callers tell a
// stuck client (a slow consumer) from a departed one the same way.
var ErrCut = fmt.Errorf("writewatch: write blocked longer than the write timeout: %w", os.ErrDeadlineExceeded)

// End records that the write has returned with err, and returns err; when
// the write failed and x was cut off, [ErrCut] joined with err.
func (x *Writer) End(err error) error {
	x.since.Store(0)
	if err != nil && x.fired.Load() {
		return errors.Join(ErrCut, err)
	}
	return err
}

// Cut reports whether x was cut off.
func (x *Writer) Cut() bool { return x.fired.Load() }

// Wait waits until the watchdog's goroutine has exited: call it once every
// Writer is removed.
func (w *Watchdog) Wait() { w.wg.Wait() }

// tick is how often the goroutine checks the writers.
func (w *Watchdog) tick() time.Duration { return max(w.timeout/8, time.Millisecond) }

func (w *Watchdog) run() {
	defer w.wg.Done()
	ticker := time.NewTicker(w.tick())
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if !w.check(w.now()) {
				return
			}
		case <-w.empty:
			if !w.check(w.now()) {
				return
			}
		}
	}
}

// check cuts off the writes that began at least timeout - tick before now,
// so that a stuck write is cut within the timeout. It returns false, and
// marks the goroutine stopped, when there are no writers left.
func (w *Watchdog) check(now time.Time) bool {
	limit := now.UnixNano() - int64(w.timeout-w.tick())
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.writers) == 0 {
		w.running = false
		// Drop a stale signal so the next run does not exit at once.
		select {
		case <-w.empty:
		default:
		}
		return false
	}
	for x := range w.writers {
		if s := x.since.Load(); s != 0 && s <= limit && !x.fired.Swap(true) {
			x.cut()
		}
	}
	return true
}
