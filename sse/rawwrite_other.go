//go:build !unix

package sse

import (
	"net"
	"syscall"
)

// rawConn returns nil: without non-blocking socket writes, deliver keeps
// every event for the stream's goroutine.
func rawConn(net.Conn) syscall.RawConn { return nil }

// tryWrite is never called without a raw connection.
func tryWrite(syscall.RawConn, []byte) int { return 0 }
