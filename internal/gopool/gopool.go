package gopool

import "sync"

// DefaultMaxIdle is MaxIdle when it is 0.
const DefaultMaxIdle = 16

// Pool runs functions on goroutines that wait for the next one. The zero
// Pool is ready to use; its fields must be set before the first call.
type Pool struct {
	// MaxIdle is the most goroutines that wait for a function; one that
	// finishes while that many wait exits. 0 means DefaultMaxIdle.
	MaxIdle int
	// Group, when set, counts the pool's goroutines: Add(1) when one
	// starts, Done when it exits, so that a shutdown can wait for them.
	Group *sync.WaitGroup

	mu     sync.Mutex
	idle   []*worker
	keep   bool // finished workers wait (cleared by Release)
	closed bool // Close: no worker waits any more
}

// worker is a goroutine of a Pool: it runs the jobs it receives; an empty
// job ends it.
type worker struct {
	jobs chan job
	// done reports a Run's job finished: what it panicked with, or nil.
	// Unbuffered, so that the worker waits for its next job only once
	// the caller has the report; buffered, a second caller could take the
	// worker and receive the first caller's report as its own.
	done chan any
}

type job struct {
	j    Job    // for Go
	f    func() // for Run
	wait bool   // Run: recover a panic and report on done
}

// Job is what Go runs. A pointer whose type has the Run method goes into a
// Job without an allocation, where a method value (t.fetch) would be one
// per call.
type Job interface{ Run() }

// Go runs j on a waiting goroutine, or on a new one, and returns at once. A
// panic in j crashes the program, as in a goroutine of its own.
func (p *Pool) Go(j Job) {
	p.get().jobs <- job{j: j}
}

// Run runs f on another goroutine of the pool and waits for it. A panic in
// f is raised again in the caller, with its value; if f calls
// runtime.Goexit, Run returns.
func (p *Pool) Run(f func()) {
	w := p.get()
	w.jobs <- job{f: f, wait: true}
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
	p.keep = !p.closed
	p.mu.Unlock()
	w := &worker{jobs: make(chan job, 1), done: make(chan any)}
	if p.Group != nil {
		p.Group.Add(1)
	}
	go p.serve(w)
	return w
}

func (p *Pool) serve(w *worker) {
	waited := false // a Run's job is running
	defer func() {
		if waited { // its f called runtime.Goexit: the caller goes on
			w.done <- nil
		}
		if p.Group != nil {
			p.Group.Done()
		}
	}()
	for {
		j := <-w.jobs
		switch {
		case j.wait:
			waited = true
			v := recovered(j.f)
			waited = false
			w.done <- v
		case j.j != nil:
			j.j.Run()
		default:
			return
		}
		if !p.wait(w) {
			return
		}
	}
}

// recovered runs f and returns what it panicked with, or nil. (A panic(nil)
// arrives as a *runtime.PanicNilError, so nil means no panic.)
func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

// wait adds w to the waiting workers, or reports that it should exit.
func (p *Pool) wait(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	maxIdle := p.MaxIdle
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	if !p.keep || len(p.idle) >= maxIdle {
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

// Waiting returns how many goroutines wait for a function.
func (p *Pool) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Release ends the waiting goroutines; those running a function end when
// it returns. A later Go or Run starts goroutines again.
func (p *Pool) Release() { p.release(false) }

// Close is Release for good: goroutines the pool starts from now on (a
// function still comes) run their function and exit.
func (p *Pool) Close() { p.release(true) }

func (p *Pool) release(close bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keep = false
	p.closed = p.closed || close
	for i, w := range p.idle {
		w.jobs <- job{}
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
}
