package offstack

import "sync"

// maxIdle is the most goroutines a Pool keeps waiting for calls.
const maxIdle = 16

// Pool is [Run] on goroutines that, once a call is done, wait for the next
// one instead of exiting. A new goroutine's stack starts small and is grown
// by copying, frame by frame, to the depth of the call: for a stream's
// step (a store read, an encoding, a write through net/http) that copying
// cost about twice the step itself. A waiting goroutine's stack is grown
// already. Up to 16 wait; Release ends them. The zero Pool is ready to
// use; its owner must Release it when it has nothing more to run, so that
// no goroutine outlives it.
type Pool struct {
	mu   sync.Mutex
	idle []*worker
	keep bool // finished workers wait (cleared by Release)
}

// worker is a goroutine of a Pool: it runs the calls it receives, and a nil
// one ends it.
type worker struct {
	calls chan func()
	done  chan any // what a call's panic raised, or nil
}

// Run runs f on a goroutine of the pool and waits for it, as [Run] does. A
// panic in f is raised again in the caller, with its value.
func (p *Pool) Run(f func()) {
	w := p.get()
	w.calls <- f
	if v := <-w.done; v != nil {
		panic(v)
	}
}

// get takes a waiting worker, or starts one.
func (p *Pool) get() *worker {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w
	}
	p.keep = true
	p.mu.Unlock()
	w := &worker{calls: make(chan func(), 1), done: make(chan any, 1)}
	go p.serve(w)
	return w
}

func (p *Pool) serve(w *worker) {
	running := false
	defer func() {
		if running { // f called runtime.Goexit: its caller goes on, as with Run
			w.done <- nil
		}
	}()
	for {
		f := <-w.calls
		if f == nil {
			return
		}
		running = true
		v := call(f)
		running = false
		w.done <- v
		if !p.wait(w) {
			return
		}
	}
}

// call runs f and returns what it panicked with, or nil. (A panic(nil)
// arrives as a *runtime.PanicNilError, so nil means no panic.)
func call(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// wait adds w to the waiting workers, or reports that it should exit.
func (p *Pool) wait(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.keep || len(p.idle) >= maxIdle {
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

// Release ends the waiting workers; those still running a call end when
// it is done. A later Run starts workers again.
func (p *Pool) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keep = false
	for i, w := range p.idle {
		w.calls <- nil
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
}
