package ws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/writewatch"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// wireRecorder keeps a copy of every write made to a connection.
type wireRecorder struct {
	mu     sync.Mutex
	writes [][]byte
}

func (r *wireRecorder) add(p []byte) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(p))
	r.mu.Unlock()
}

// Writes returns the writes recorded so far.
func (r *wireRecorder) Writes() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

// recordingConn records every Write before passing it on.
type recordingConn struct {
	net.Conn
	rec *wireRecorder
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.rec.add(p)
	return c.Conn.Write(p)
}

// sinkConn is a socket that takes every write, or fails them with err.
type sinkConn struct {
	net.Conn // nil: other methods are not used
	mu       sync.Mutex
	err      error
	closed   bool
}

var _ net.Conn = (*sinkConn)(nil)

func (c *sinkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

func (c *sinkConn) SetWriteDeadline(time.Time) error { return nil }

func (c *sinkConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *sinkConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// head is a stand-in for the handshake response head.
var head = []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")

// newSeam returns a netConn over a recorded sink, with the head written.
func newSeam(t *testing.T) (*netConn, *sinkConn, *wireRecorder) {
	t.Helper()
	sink := &sinkConn{}
	rec := &wireRecorder{}
	nc := newNetConn(&recordingConn{Conn: sink, rec: rec}, testWire(t))
	t.Cleanup(nc.release)
	require.NoError(t, nc.writeHead(head))
	return nc, sink, rec
}

// testWire is a wireConfig whose write watchdog's goroutine the test waits
// for; the test must release its netConns (cleanups run last-in first-out).
func testWire(t testing.TB) *wireConfig {
	w := &wireConfig{wd: writewatch.New(time.Second)}
	t.Cleanup(w.wd.Wait)
	return w
}

// serverFrame is an unmasked final frame.
func serverFrame(opcode byte, payload string) []byte {
	return append(wsframe.AppendHeader(nil, opcode, false, len(payload)), payload...)
}

func closeFrame(code uint16, reason string) []byte {
	return serverFrame(wsframe.OpClose, string(binary.BigEndian.AppendUint16(nil, code))+reason)
}

func textFrames(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, serverFrame(wsframe.OpText, m)...)
	}
	return b
}

func TestSeamWritesTheHeadFirst(t *testing.T) {
	t.Parallel()
	sink := &sinkConn{}
	rec := &wireRecorder{}
	nc := newNetConn(&recordingConn{Conn: sink, rec: rec}, testWire(t))
	t.Cleanup(nc.release)
	_, err := nc.Write(serverFrame(wsframe.OpPong, ""))
	require.ErrorIs(t, err, errNoHead)
	require.ErrorIs(t, nc.writeMessages([][]byte{[]byte("x")}), errNoHead)
	require.NoError(t, nc.writeHead(head))
	require.Error(t, nc.writeHead(head))
	require.Equal(t, [][]byte{head}, rec.Writes())
}

// TestSeamForwardsWholeFramesHoweverSplit writes a stream of library frames
// in two Writes split at every byte position, with a data batch between
// them. The rule: a library frame reaches the socket in one write, when its
// last byte has arrived; the batch goes out at once, after the frames
// completed before it and before the frame it interrupted.
func TestSeamForwardsWholeFramesHoweverSplit(t *testing.T) {
	t.Parallel()
	long := string(bytes.Repeat([]byte("p"), wsframe.MaxControlPayload))
	frames := [][]byte{
		serverFrame(wsframe.OpPong, ""),
		serverFrame(wsframe.OpPing, "1"),
		serverFrame(wsframe.OpPong, long),
		closeFrame(1000, "all subscribed tasks finished"),
	}
	stream := bytes.Join(frames, nil)
	batch := textFrames(`{"a":1}`, `{}`)
	// The close frame ends the stream, so its last byte is always in the
	// second Write (TestSeamSendsAFrameWrittenByteByByteInOneWrite checks
	// that nothing follows it).
	for split := range len(stream) {
		nc, _, rec := newSeam(t)
		n, err := nc.Write(stream[:split])
		require.NoError(t, err)
		require.Equal(t, split, n)
		require.NoError(t, nc.writeMessages([][]byte{[]byte(`{"a":1}`), []byte(`{}`)}))
		n, err = nc.Write(stream[split:])
		require.NoError(t, err)
		require.Equal(t, len(stream)-split, n)

		// The frames that ended by split, the batch, the rest.
		var before, after []byte
		for _, f := range frames {
			if len(before)+len(f) <= split {
				before = append(before, f...)
			} else {
				after = append(after, stream[len(before):]...)
				break
			}
		}
		want := [][]byte{head}
		if len(before) > 0 {
			want = append(want, before)
		}
		want = append(want, batch, after)
		require.Equal(t, want, rec.Writes(), "split at %d", split)

		// Nothing follows the close frame.
		require.ErrorIs(t, nc.writeMessages([][]byte{[]byte(`{}`)}), net.ErrClosed)
		_, err = nc.Write(serverFrame(wsframe.OpPong, ""))
		require.ErrorIs(t, err, net.ErrClosed)
		require.Len(t, rec.Writes(), len(want))
	}
}

// TestSeamSendsAFrameWrittenByteByByteInOneWrite: a close frame written one
// byte at a time reaches the socket as one write, after a data batch that
// went out while it was incomplete, and no data follows it.
func TestSeamSendsAFrameWrittenByteByByteInOneWrite(t *testing.T) {
	t.Parallel()
	nc, _, rec := newSeam(t)
	cf := closeFrame(1001, "server shutting down")
	for i, c := range cf {
		n, err := nc.Write([]byte{c})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		if i == 0 {
			require.NoError(t, nc.writeMessages([][]byte{[]byte(`{"b":2}`)}))
		}
	}
	require.Equal(t, [][]byte{head, textFrames(`{"b":2}`), cf}, rec.Writes())
	require.ErrorIs(t, nc.writeMessages([][]byte{[]byte(`{}`)}), net.ErrClosed)
	require.NoError(t, nc.writeMessages(nil))
}

// TestSeamSendsEveryCompleteFrameOfAWriteAtOnce: frames completed by one
// Write leave in one socket write, the held-back start of the first
// included; an incomplete last frame stays behind.
func TestSeamSendsEveryCompleteFrameOfAWriteAtOnce(t *testing.T) {
	t.Parallel()
	nc, _, rec := newSeam(t)
	a, b, c := serverFrame(wsframe.OpPing, "a"), serverFrame(wsframe.OpPong, "bb"), serverFrame(wsframe.OpPing, "ccc")
	stream := bytes.Join([][]byte{a, b, c}, nil)
	_, err := nc.Write(stream[:1])
	require.NoError(t, err)
	_, err = nc.Write(stream[1 : len(stream)-1])
	require.NoError(t, err)
	require.Equal(t, [][]byte{head, append(a, b...)}, rec.Writes())
	_, err = nc.Write(stream[len(stream)-1:])
	require.NoError(t, err)
	require.Equal(t, [][]byte{head, append(a, b...), c}, rec.Writes())
}

// TestSeamFailsOnFramesTheLibraryMustNotWrite: anything but a whole, plain
// control frame fails the connection; nothing of the offending Write is
// sent, whether it came whole or in pieces.
func TestSeamFailsOnFramesTheLibraryMustNotWrite(t *testing.T) {
	t.Parallel()
	masked := wsframe.AppendClientFrame(nil, wsframe.OpPong, []byte("x"))
	compressedPing := serverFrame(wsframe.OpPing, "x")
	compressedPing[0] |= 0x40
	rsv3Close := closeFrame(1000, "")
	rsv3Close[0] |= 0x10
	fragmentedPing := serverFrame(wsframe.OpPing, "x")
	fragmentedPing[0] &^= 0x80
	longPong := serverFrame(wsframe.OpPong, string(bytes.Repeat([]byte("x"), 126)))
	cases := map[string][]byte{
		"text":               serverFrame(wsframe.OpText, `{}`),
		"binary":             serverFrame(wsframe.OpBinary, "x"),
		"continuation":       serverFrame(wsframe.OpContinuation, "x"),
		"compressed text":    append([]byte{0xC0 | wsframe.OpText}, serverFrame(wsframe.OpText, "x")[1:]...),
		"compressed ping":    compressedPing,
		"rsv3 close":         rsv3Close,
		"fragmented ping":    fragmentedPing,
		"masked pong":        masked,
		"long pong":          longPong,
		"unknown control":    serverFrame(0xB, ""),
		"reserved data":      serverFrame(0x3, ""),
		"after a close":      append(closeFrame(1000, ""), serverFrame(wsframe.OpPong, "")...),
		"huge text":          wsframe.AppendHeader(nil, wsframe.OpText, false, 1<<40),
		"pong then bad text": append(serverFrame(wsframe.OpPong, ""), serverFrame(wsframe.OpText, "x")...),
	}
	for name, bad := range cases {
		for _, pieces := range []int{1, 2} {
			nc, sink, rec := newSeam(t)
			var err error
			if pieces == 2 {
				_, err = nc.Write(bad[:1])
				require.NoError(t, err, name)
				_, err = nc.Write(bad[1:])
			} else {
				_, err = nc.Write(bad)
			}
			require.ErrorIs(t, err, errLibraryFrames, name)
			require.True(t, sink.isClosed(), name)
			require.Equal(t, [][]byte{head}, rec.Writes(), name)
			require.ErrorIs(t, nc.writeMessages([][]byte{[]byte(`{}`)}), errLibraryFrames, name)
			_, err = nc.Write(serverFrame(wsframe.OpPong, ""))
			require.ErrorIs(t, err, errLibraryFrames, name)
		}
	}
}

// TestSeamStopsAfterAFailedWrite: a socket write that failed may have sent
// part of a frame, so nothing more is written.
func TestSeamStopsAfterAFailedWrite(t *testing.T) {
	t.Parallel()
	nc, sink, rec := newSeam(t)
	boom := errors.New("boom")
	sink.mu.Lock()
	sink.err = boom
	sink.mu.Unlock()
	require.ErrorIs(t, nc.writeMessages([][]byte{[]byte(`{}`)}), boom)
	sink.mu.Lock()
	sink.err = nil
	sink.mu.Unlock()
	_, err := nc.Write(serverFrame(wsframe.OpPong, ""))
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, nc.writeMessages([][]byte{[]byte(`{}`)}), boom)
	require.Len(t, rec.Writes(), 2) // the head and the failed batch
}

// TestSeamWritesLargeBatchesInWholeFrameChunks: a batch larger than
// chunkSize goes out in several writes, each of whole frames.
func TestSeamWritesLargeBatchesInWholeFrameChunks(t *testing.T) {
	t.Parallel()
	nc, _, rec := newSeam(t)
	var msgs [][]byte
	for i := range 40 {
		msgs = append(msgs, bytes.Repeat([]byte{'a' + byte(i%26)}, 5000+i))
	}
	require.NoError(t, nc.writeMessages(msgs))
	writes := rec.Writes()[1:]
	require.Greater(t, len(writes), 1)
	var got [][]byte
	for _, w := range writes {
		for len(w) > 0 {
			h, ok := wsframe.ParseHeader(w)
			require.True(t, ok)
			require.Equal(t, wsframe.Header{Fin: true, Opcode: wsframe.OpText, Length: h.Length, Size: h.Size}, h)
			end := h.Size + int(h.Length)
			require.LessOrEqual(t, end, len(w), "a frame spans two writes")
			got = append(got, w[h.Size:end])
			w = w[end:]
		}
	}
	require.Equal(t, msgs, got)
}

// TestSeamForwardsWholeFramesSplitInThree writes a stream of library frames
// in three Writes, split at every pair of positions: after each Write, the
// frames it completed leave in one socket write.
func TestSeamForwardsWholeFramesSplitInThree(t *testing.T) {
	t.Parallel()
	frames := [][]byte{
		serverFrame(wsframe.OpPong, "12"),
		serverFrame(wsframe.OpPing, ""),
		serverFrame(wsframe.OpPong, string(bytes.Repeat([]byte("p"), 40))),
		serverFrame(wsframe.OpPing, "x"),
		closeFrame(4410, "events expired"),
	}
	stream := bytes.Join(frames, nil)
	var ends []int // where each frame ends in stream
	for _, f := range frames {
		prev := 0
		if len(ends) > 0 {
			prev = ends[len(ends)-1]
		}
		ends = append(ends, prev+len(f))
	}
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j++ {
			nc, _, rec := newSeam(t)
			want := [][]byte{head}
			sent := 0
			for _, cut := range []int{i, j, len(stream)} {
				start := sent
				for _, e := range ends {
					if e > sent && e <= cut {
						sent = e
					}
				}
				if sent > start {
					want = append(want, stream[start:sent])
				}
			}
			for _, piece := range [][]byte{stream[:i], stream[i:j], stream[j:]} {
				if len(piece) == 0 {
					continue // the library never writes nothing
				}
				_, err := nc.Write(piece)
				require.NoError(t, err)
			}
			require.Equal(t, want, rec.Writes(), "split at %d and %d", i, j)
		}
	}
}
