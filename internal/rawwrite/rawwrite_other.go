//go:build !unix

package rawwrite

import (
	"net"
	"syscall"
)

// Conn returns nil: without non-blocking socket writes, inline deliveries
// are kept for the stream's goroutine.
func Conn(net.Conn) syscall.RawConn { return nil }

// Try is never called without a raw connection.
func Try(syscall.RawConn, []byte) int { return 0 }
