package offstack

import "sync"

// Run runs f on a new goroutine and waits for it. A panic in f is raised
// again in the caller, with its value.
func Run(f func()) {
	var (
		wg sync.WaitGroup
		p  any
	)
	wg.Go(func() {
		defer func() { p = recover() }()
		f()
	})
	wg.Wait()
	if p != nil {
		panic(p)
	}
}
