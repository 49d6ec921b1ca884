//go:build unix

package ws_test

// canPeek reports that the reader looks at the socket's head itself (see
// readwait_unix.go).
const canPeek = true
