package streamlife_test

import (
	"context"
	"fmt"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/streamlife"
)

// A stream that ends itself when the group closes: Shutdown waits for it.
func Example() {
	g := streamlife.New()
	st, ok := g.Enter()
	fmt.Println("entered:", ok)
	finished := make(chan struct{})
	go func() { // the stream's goroutine
		defer close(finished)
		<-g.Done() // ... serve until the handler shuts down
		st.Leave()
	}()

	fmt.Println("shutdown:", g.Shutdown(context.Background()))
	_, ok = g.Enter()
	fmt.Println("entered after shutdown:", ok)
	<-finished
	// Output:
	// entered: true
	// shutdown: <nil>
	// entered after shutdown: false
}

// A stream stuck where it cannot see Done (a blocked write, say) is
// aborted when Shutdown's context ends; Shutdown returns once it has left.
func ExampleStream_OnAbort() {
	g := streamlife.New()
	st, _ := g.Enter()
	stuck := make(chan struct{}) // stands for a connection
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		<-stuck // a write that only fails when the connection is closed
		st.Leave()
	}()
	st.OnAbort(func() { close(stuck) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println("shutdown:", g.Shutdown(ctx))
	fmt.Println("active:", g.Active())
	<-finished
	// Output:
	// shutdown: context deadline exceeded
	// active: 0
}
