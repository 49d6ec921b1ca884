package goroutinetest

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
)

// ID returns the running goroutine's id, from its stack's header
// ("goroutine 42 [running]:").
func ID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		panic(fmt.Sprintf("goroutine id in %q: %v", buf, err))
	}
	return id
}

// Alive returns how many of the goroutines ids have not exited.
func Alive(ids ...uint64) int {
	stacks := All()
	live := 0
	for _, id := range ids {
		if bytes.Contains(stacks, fmt.Appendf(nil, "goroutine %d [", id)) {
			live++
		}
	}
	return live
}

// All returns the stacks of all goroutines, as runtime.Stack writes them.
func All() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}
