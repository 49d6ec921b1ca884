//go:build !unix

package ws

import "github.com/taskbridge-go/taskbridge/internal/wsframe"

// waitReadable returns at once: without a peek at the socket, the reading
// goroutine waits inside the library's read.
func (c *netConn) waitReadable() {}

// takeControl takes nothing: the library reads every frame, on the
// reading goroutine.
func (c *netConn) takeControl() (*socketHead, error) { return &socketHead{kind: headPartial}, nil }

// socketHead is what takeControl found: never a control frame here.
type socketHead struct {
	kind   headKind
	h      wsframe.Header
	broken bool
}

// payload returns nil.
func (f *socketHead) payload() []byte { return nil }
