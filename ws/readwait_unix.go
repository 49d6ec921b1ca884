//go:build unix

package ws

import "syscall"

// waitReadable waits until the socket has bytes to read (or has failed,
// or reached EOF) in a shallow frame, so that the reading goroutine of an
// idle connection keeps a small stack; without a raw socket (TLS) it
// returns at once. An error is ignored: the read that follows reports it.
func (c *netConn) waitReadable() {
	if c.raw != nil {
		_ = c.raw.Read(peekReadable)
	}
}

// peekReadable is waitReadable's callback: true once the socket has bytes
// to read, or has failed or reached EOF.
func peekReadable(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}
