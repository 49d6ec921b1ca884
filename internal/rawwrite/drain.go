package rawwrite

import "syscall"

// Drain writes b to rc's socket as Try does and returns what the socket
// did not take, moved to the start of b (empty when it took everything).
func Drain(rc syscall.RawConn, b []byte) []byte {
	n := Try(rc, b)
	return b[:copy(b, b[n:])]
}
