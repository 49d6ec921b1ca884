package goroutinetest

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
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

// Goroutine is one goroutine of a dump (see Find).
type Goroutine struct {
	ID    uint64
	State string   // as the dump gives it: "chan receive", "select", "IO wait"...
	Funcs []string // its frames' functions, innermost first; "created by" not included
}

// Find returns the goroutines that have a frame whose function's name
// contains fn (a goroutine started with a go statement in fn, and not yet
// run, has one too: "fn.gowrap1").
func Find(fn string) []Goroutine {
	var found []Goroutine
	for g := range bytes.SplitSeq(All(), []byte("\n\n")) {
		lines := bytes.Split(g, []byte("\n"))
		head, ok := bytes.CutPrefix(lines[0], []byte("goroutine "))
		if !ok {
			continue
		}
		idText, state, _ := bytes.Cut(head, []byte(" ["))
		id, err := strconv.ParseUint(string(idText), 10, 64)
		if err != nil {
			continue
		}
		state, _, _ = bytes.Cut(state, []byte("]"))
		state, _, _ = bytes.Cut(state, []byte(",")) // "chan receive, 2 minutes"
		gr := Goroutine{ID: id, State: string(state)}
		match := false
		for _, l := range lines[1:] {
			if len(l) == 0 || l[0] == '\t' || bytes.HasPrefix(l, []byte("created by ")) || bytes.HasPrefix(l, []byte("...")) {
				continue
			}
			// "pkg.(*T).m(0x1, ...)": the arguments follow the last '('.
			name := l
			if i := bytes.LastIndexByte(l, '('); i > 0 {
				name = l[:i]
			}
			gr.Funcs = append(gr.Funcs, string(name))
			match = match || bytes.Contains(name, []byte(fn))
		}
		if match {
			found = append(found, gr)
		}
	}
	return found
}

// WaitsIn reports whether g is parked with fn as its innermost frame
// outside the runtime (not in a call fn makes), in one of states.
func (g Goroutine) WaitsIn(fn string, states ...string) bool {
	for _, f := range g.Funcs {
		if strings.HasPrefix(f, "runtime.") {
			continue
		}
		return strings.Contains(f, fn) && slices.Contains(states, g.State)
	}
	return false
}

// StackInuse returns the bytes of goroutine stacks, after two garbage
// collections, which shrink the stacks that can shrink.
func StackInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.StackInuse
}
