//go:build unix

package rawwrite

import (
	"net"
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
// while it runs.
func Try(rc syscall.RawConn, b []byte) int {
	n := 0
	_ = rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := syscall.Write(int(fd), b[n:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil || m <= 0 {
				break
			}
			n += m
		}
		return true // done: never wait for the socket
	})
	return n
}
