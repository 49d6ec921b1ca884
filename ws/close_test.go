package ws_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

// rawClient is a WebSocket client on a plain TCP connection, so a test
// controls exactly what is sent in which write and sees exactly what the
// server sends, down to how the TCP connection ends.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

// rawClient upgrades a TCP connection as alice; extra is sent in the same
// write as the handshake request.
func (f *fixture) rawClient(t *testing.T, extra []byte) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	hs := streamtest.HandshakeRequest(f.srv.Listener.Addr().String(), ws.DefaultPath, streamtest.Bearer("alice"))
	_, err = conn.Write(append(hs, extra...))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return &rawClient{conn: conn, br: br}
}

// write sends b in one write.
func (c *rawClient) write(t *testing.T, b []byte) {
	t.Helper()
	_, err := c.conn.Write(b)
	require.NoError(t, err)
}

// subscribeFrames returns one subscribe frame per task, back to back.
func subscribeFrames(t *testing.T, tasks ...string) []byte {
	t.Helper()
	var b []byte
	for _, task := range tasks {
		p, err := json.Marshal(taskbridge.SubscribeFrame{Action: "subscribe", TaskID: task})
		require.NoError(t, err)
		b = wsframe.AppendClientFrame(b, wsframe.OpText, p)
	}
	return b
}

// confirmedThen returns a function that reads a subscription confirmation
// and then sends b (if any) in one write.
func confirmedThen(t *testing.T, b []byte) func(*rawClient) {
	return func(c *rawClient) {
		op, payload, err := streamtest.ReadServerFrame(c.br)
		require.NoError(t, err)
		require.Equal(t, byte(wsframe.OpText), op)
		protocoltest.ValidateSubscriptionConfirmed(t, payload)
		if b != nil {
			c.write(t, b)
		}
	}
}

// zeroMasked returns a client frame with first as its first byte (FIN,
// RSV bits, opcode) and n zero bytes of payload, masked with the all-zero
// key: its payload is zeros on the wire, whatever the run, where a random
// key would make what a misreading server parses differ from run to run.
func zeroMasked(first byte, n int) []byte {
	b := wsframe.AppendHeader(nil, 0, true, n)
	b[0] = first
	return append(b, make([]byte, 4+n)...)
}

// ending is how the server ended a connection, as a rawClient saw it.
type ending struct {
	texts  [][]byte // text messages before the close frame
	code   int      // the close frame's code; 0 when none came
	reason string
	// err ended the reading before a close frame arrived (a reset, an
	// EOF), or is nil.
	err error
	// after is how the TCP connection ended once the client answered the
	// close frame: io.EOF for an orderly close, an error for a reset.
	after error
}

// end reads what the server sends until its close frame, answers it with a
// close frame of the same code, as a client does, and reads on until the
// TCP connection ends (after a pause, so that a server which closes
// without reading the answer is caught every time).
func (c *rawClient) end(t *testing.T) ending {
	t.Helper()
	var e ending
	for {
		op, payload, err := streamtest.ReadServerFrame(c.br)
		if err != nil {
			e.err = err
			return e
		}
		switch op {
		case wsframe.OpText:
			e.texts = append(e.texts, payload)
			continue
		case wsframe.OpClose:
		default:
			require.Failf(t, "unexpected frame", "opcode %#x", op)
		}
		require.GreaterOrEqual(t, len(payload), 2, "close frame without a code")
		e.code = int(binary.BigEndian.Uint16(payload))
		e.reason = string(payload[2:])
		break
	}
	// The server may have dropped the connection already; the answer is
	// best effort.
	_, _ = c.conn.Write(wsframe.AppendClientFrame(nil, wsframe.OpClose, binary.BigEndian.AppendUint16(nil, uint16(e.code))))
	// A server that closed its socket without reading the answer makes
	// the answer's arrival reset the connection; waiting before reading
	// lets that reset arrive first, every time.
	time.Sleep(50 * time.Millisecond)
	b, err := c.br.ReadByte()
	require.Error(t, err, "byte %#x after the close frame", b)
	e.after = err
	t.Logf("ending %s: %d texts, %d %q, err %v, after %v", c.conn.LocalAddr(), len(e.texts), e.code, e.reason, e.err, e.after)
	return e
}

// requireEnding checks that the server sent n text messages, then a close
// frame with code and reason, and closed the TCP connection in order (a
// FIN, no reset).
func requireEnding(t *testing.T, e ending, n int, code int, reason string) {
	t.Helper()
	require.NoError(t, e.err, "the connection ended without a close frame after %d messages", len(e.texts))
	require.Equal(t, code, e.code, "close reason %q", e.reason)
	require.Equal(t, reason, e.reason)
	require.Len(t, e.texts, n)
	require.True(t, errors.Is(e.after, io.EOF), "the TCP connection did not end with a FIN: %v", e.after)
}

// TestEveryEndSendsACloseFrame: however the server ends a connection,
// short of a vanished peer or a failed write, the client receives a close
// frame with a code and a reason, even when it had sent more than the server
// read (a burst of frames in one TCP write), and once it answers the close,
// the TCP connection ends in order (FIN), never with a reset that could
// destroy the close frame before the client reads it.
func TestEveryEndSendsACloseFrame(t *testing.T) {
	t.Parallel()
	text := func(s string) []byte { return wsframe.AppendClientFrame(nil, wsframe.OpText, []byte(s)) }
	repeat := func(task string, n int) []string {
		tasks := make([]string, n)
		for i := range tasks {
			tasks[i] = task
		}
		return tasks
	}
	cases := []struct {
		name string
		cfg  ws.Config
		opts streamtest.Options
		// send makes the client's writes (the first goes with the
		// handshake) and may read messages itself; it returns how many
		// more text messages the server sends before closing.
		send     func(t *testing.T, f *fixture) (first []byte, then func(*rawClient), texts int)
		upTo     bool // texts is a maximum
		shutdown bool // the handler shuts down once send is done
		// peek marks a case that needs the reader's look at the socket
		// (unix systems only; see canPeek).
		peek   bool
		code   int
		reason string
	}{
		{
			name: "burst beyond MaxSubscriptions",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				tasks := make([]string, 40)
				for i := range tasks {
					tasks[i] = f.env.CreateTask(t, "alice")
				}
				return subscribeFrames(t, tasks...), nil, ws.DefaultMaxSubscriptions
			},
			code: 1008, reason: "too many subscriptions",
		},
		{
			name: "burst after the handshake, beyond MaxSubscriptions",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				tasks := make([]string, 40)
				for i := range tasks {
					tasks[i] = f.env.CreateTask(t, "alice")
				}
				return nil, func(c *rawClient) { c.write(t, subscribeFrames(t, tasks...)) }, ws.DefaultMaxSubscriptions
			},
			code: 1008, reason: "too many subscriptions",
		},
		{
			// Repeated subscribe frames restart a task's stream: each is
			// served, however many come at once.
			name: "burst of repeated subscribes, then a task beyond MaxSubscriptions",
			cfg:  ws.Config{MaxSubscriptions: 2},
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				a, b, c := f.env.CreateTask(t, "alice"), f.env.CreateTask(t, "alice"), f.env.CreateTask(t, "alice")
				tasks := append(append(repeat(a, 20), repeat(b, 19)...), c, a, b)
				return nil, func(rc *rawClient) { rc.write(t, subscribeFrames(t, tasks...)) }, 39
			},
			code: 1008, reason: "too many subscriptions",
		},
		{
			name: "invalid frame in a burst",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				b := append(subscribeFrames(t, task), text("hello")...)
				return append(b, subscribeFrames(t, repeat(task, 30)...)...), nil, 1
			},
			code: 1008, reason: "expected a subscribe frame",
		},
		{
			name: "unknown task, more frames behind",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				return subscribeFrames(t, repeat("no-such-task", 30)...), nil, 0
			},
			code: 1008, reason: "task not found",
		},
		{
			name: "expired cursor",
			opts: streamtest.Options{MaxEventsPerTask: 2},
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				f.env.Started(t, task)
				for range 3 {
					f.env.Progress(t, task, 0.1)
				}
				return text(`{"action":"subscribe","taskId":"` + task + `","lastEventId":"1"}`), nil, 0
			},
			code: int(ws.CloseEventsExpired), reason: "events expired",
		},
		{
			name: "oversize first message",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				return text(strings.Repeat("x", 64<<10)), nil, 0
			},
			code: 1009, reason: "read limited at 4097 bytes",
		},
		{
			name: "oversize message after subscribing",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, text(strings.Repeat("x", 64<<10))), 0
			},
			code: 1009, reason: "read limited at 4097 bytes",
		},
		{
			// The library's 1009 may go out before the confirmation: the
			// handler's write then fails, and the close handshake must go
			// on all the same.
			name: "oversize message right behind a subscribe frame",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return append(subscribeFrames(t, task), text(strings.Repeat("x", 64<<10))...), nil, 1
			},
			upTo: true,
			code: 1009, reason: "read limited at 4097 bytes",
		},
		{
			name: "no subscribe frame within SubscribeTimeout",
			cfg:  ws.Config{SubscribeTimeout: 50 * time.Millisecond},
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) { return nil, nil, 0 },
			code: 1008, reason: "no subscribe frame in time",
		},
		{
			name: "unmasked client frame",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, wsframe.AppendHeader(nil, wsframe.OpText, false, 0)), 0
			},
			code: 1002, reason: "protocol error",
		},
		{
			name: "reserved opcode",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, wsframe.AppendClientFrame(nil, 0x3, nil)), 0
			},
			code: 1002, reason: "received unknown opcode opcode(3)",
		},
		{
			// Frames whose header alone breaks the protocol: the library
			// refuses each once it has read the header; its payload must
			// not be read as the frames that follow (zero-masked, so its
			// bytes are zeros on the wire: unmasked empty frames, were
			// they parsed as frames).
			name: "oversize ping",
			peek: true,
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, zeroMasked(0x80|wsframe.OpPing, 126)), 0
			},
			code: 1002, reason: "received control frame payload with invalid length: 126",
		},
		{
			name: "fragmented ping",
			peek: true,
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, zeroMasked(wsframe.OpPing, 10)), 0
			},
			code: 1002, reason: "received fragmented control frame",
		},
		{
			name: "unmasked ping",
			peek: true,
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, append(wsframe.AppendHeader(nil, wsframe.OpPing, false, 10), make([]byte, 10)...)), 0
			},
			code: 1002, reason: "protocol error",
		},
		{
			name: "ping with an RSV bit",
			peek: true,
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, zeroMasked(0xC0|wsframe.OpPing, 10)), 0
			},
			code: 1002, reason: "received header with unexpected rsv bits set: true:false:false",
		},
		{
			name: "text with an RSV bit",
			peek: true,
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, zeroMasked(0xA0|wsframe.OpText, 300)), 0
			},
			code: 1002, reason: "received header with unexpected rsv bits set: false:true:false",
		},
		{
			name: "reserved opcode with a payload",
			peek: true,
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, zeroMasked(0x80|0xB, 10)), 0
			},
			code: 1002, reason: "received unknown opcode opcode(11)",
		},
		{
			name: "all subscribed tasks finished",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				f.env.Started(t, task)
				f.env.Complete(t, task)
				return subscribeFrames(t, task), nil, 3
			},
			code: 1000, reason: "all subscribed tasks finished",
		},
		{
			name:     "shutdown before subscribing",
			cfg:      ws.Config{SubscribeTimeout: time.Minute},
			send:     func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) { return nil, nil, 0 },
			shutdown: true,
			code:     1001, reason: "server shutting down",
		},
		{
			name: "shutdown while subscribed",
			send: func(t *testing.T, f *fixture) ([]byte, func(*rawClient), int) {
				task := f.env.CreateTask(t, "alice")
				return subscribeFrames(t, task), confirmedThen(t, nil), 0
			},
			shutdown: true,
			code:     1001, reason: "server shutting down",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.peek && !canPeek {
				t.Skip("needs the reader's look at the socket, which this system does not have")
			}
			f := setupWith(t, tc.cfg, tc.opts)
			handshake := make(chan error, 1)
			ws.SetCloseHook(f.h, func(err error) { handshake <- err })
			first, then, texts := tc.send(t, f)
			c := f.rawClient(t, first)
			if then != nil {
				then(c)
			}
			shutdown := make(chan error, 1)
			if tc.shutdown {
				go func() { shutdown <- f.h.Shutdown(testCtx(t)) }()
			}
			e := c.end(t)
			if tc.upTo {
				require.LessOrEqual(t, len(e.texts), texts)
				texts = len(e.texts)
			}
			requireEnding(t, e, texts, tc.code, tc.reason)
			require.NoError(t, <-handshake, "the server's close handshake did not read the client's answer")
			if tc.shutdown {
				require.NoError(t, <-shutdown)
			}
			require.Eventually(t, func() bool { return f.active() == 0 }, 5*time.Second, time.Millisecond)
		})
	}
}

// readConfirmedAndPongs reads confirmations subscription confirmations and
// pongs pongs from c, in whatever order they come, and returns the pongs'
// payloads in order.
func readConfirmedAndPongs(t *testing.T, c *rawClient, confirmations, pongs int) []string {
	t.Helper()
	var got []string
	for range confirmations + pongs {
		op, payload, err := streamtest.ReadServerFrame(c.br)
		require.NoError(t, err)
		switch op {
		case wsframe.OpText:
			protocoltest.ValidateSubscriptionConfirmed(t, payload)
			confirmations--
		case wsframe.OpPong:
			got = append(got, string(payload))
		default:
			t.Fatalf("unexpected frame %#x %q", op, payload)
		}
	}
	require.Zero(t, confirmations, "confirmations")
	return got
}
