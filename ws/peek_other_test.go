//go:build !unix

package ws_test

// canPeek reports that the reader looks at the socket's head itself: not
// on this system, where the library reads every frame.
const canPeek = false
