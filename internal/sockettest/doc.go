// Package sockettest gives tests real sockets: the two ends of a loopback
// TCP connection, for code that works on a socket's file descriptor
// (non-blocking writes, peeks), which net.Pipe has none of.
package sockettest
