package fanout

import (
	"sync"
	"sync/atomic"
)

// Frames a subscription reads from the Source for itself are handed to
// exactly one transport, which may give them back with Release once it has
// written them (or copied their bytes): a Source that makes its frames with
// NewFrame then reuses their memory, and a stream that is its task's only
// subscriber delivers without allocating a frame. A transport that does not
// call Release is correct all the same; its frames are garbage collected.

// maxPooledJSON is the largest JSON buffer a recycled frame keeps: a frame
// of a larger event is left to the garbage collector, so that a replay of
// large events does not fill the pool with large buffers.
const maxPooledJSON = 16 << 10

var framePool = sync.Pool{New: func() any { return new(Frame) }}

// poison, set by PoisonReleased, makes Release spoil frames instead of
// recycling them.
var poison atomic.Bool

// NewFrame returns a frame for a Source to fill, recycled when one was
// released: its JSON is empty, with room for at least size bytes.
func NewFrame(size int) *Frame {
	f := framePool.Get().(*Frame)
	if cap(f.JSON) < size {
		f.JSON = make([]byte, 0, size)
	}
	f.JSON = f.JSON[:0]
	return f
}

// Single returns a slice holding just f, without allocating one (its
// backing array is part of f).
func (f *Frame) Single() []*Frame {
	f.one[0] = f
	return f.one[:]
}

// Release gives back frames a transport got from Next or Deliver and has
// done with: it must not touch them, nor their JSON, afterwards. Frames a
// topic shares are left alone, so a transport may pass everything it got.
func Release(frames []*Frame) {
	for _, f := range frames {
		if f == nil || !f.own {
			continue
		}
		f.own = false
		if poison.Load() {
			spoil(f)
			continue
		}
		if cap(f.JSON) > maxPooledJSON {
			continue
		}
		*f = Frame{JSON: f.JSON[:0]}
		framePool.Put(f)
	}
}

// spoil makes a released frame unusable, for tests: its bytes are
// overwritten, so a transport that writes a frame after releasing it sends
// garbage that the tests' checks of every delivered event catch.
func spoil(f *Frame) {
	for i := range f.JSON {
		f.JSON[i] = '#'
	}
	f.Seq, f.EventID, f.Terminal = -1, "released", false
}

// PoisonReleased makes Release spoil the frames it is given instead of
// recycling them (true), or recycle them again (false). Tests of transports
// turn it on so that a use after Release shows up as garbage on the wire.
func PoisonReleased(on bool) { poison.Store(on) }

// owned marks frames the calling subscription read from the Source for
// itself.
func owned(frames []*Frame) {
	for _, f := range frames {
		f.own = true
	}
}
