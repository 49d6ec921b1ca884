//go:build !unix

package ws

// waitReadable returns at once: without a peek at the socket, the reading
// goroutine waits inside the library's read.
func (c *netConn) waitReadable() {}
