//go:build unix

package rawwrite

import (
	"net"
	"sync"
	"syscall"
)

// Conn returns c's raw connection when c is a socket, else nil.
func Conn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// Try writes b to rc's socket without waiting for it to become
// writable (Go keeps sockets non-blocking) and returns how many bytes went
// out: all of b, a prefix when the socket buffer filled up, or none when it
// was full or the connection failed (the caller's next blocking write
// reports that error). The caller must be the connection's only writer
// while it runs. It allocates nothing: the callback RawConn.Write takes is
// a pooled writer's method value, not a closure made per call.
func Try(rc syscall.RawConn, b []byte) int {
	w := writers.Get().(*writer)
	w.b, w.n = b, 0
	_ = rc.Write(w.fn)
	n := w.n
	w.b = nil
	writers.Put(w)
	return n
}

// writer is Try's callback with its state.
type writer struct {
	b  []byte
	n  int
	fn func(fd uintptr) bool // write, bound once
}

var writers = sync.Pool{New: func() any {
	w := &writer{}
	w.fn = w.write
	return w
}}

func (w *writer) write(fd uintptr) bool {
	for w.n < len(w.b) {
		m, err := syscall.Write(int(fd), w.b[w.n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			break
		}
		w.n += m
	}
	return true // done: never wait for the socket
}
