package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// recordingResponseWriter hands out hijacked connections that record every
// write made to the socket.
type recordingResponseWriter struct {
	http.ResponseWriter
	recorded chan<- *wireRecorder
}

func (w *recordingResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	rec := &wireRecorder{}
	w.recorded <- rec
	return &recordingConn{Conn: c, rec: rec}, brw, nil
}

// wireLog is what a server sent on one connection, frame by frame.
type wireLog struct {
	head         *http.Response
	texts        [][]byte // text message payloads, in order
	pings, pongs int
	closeCode    websocket.StatusCode // 0: no close frame
	closeReason  string
	// interleaved counts the pings and pongs sent between two text
	// messages.
	interleaved int
}

// checkWire checks the writes a server made to one socket: the first is
// the whole 101 response head and nothing else; every later one is whole
// frames only, each a frame a server may send (FIN, no RSV bits, no mask,
// text or control, control payloads of at most 125 bytes); nothing follows
// a close frame.
func checkWire(t *testing.T, writes [][]byte) wireLog {
	t.Helper()
	require.NotEmpty(t, writes)
	var log wireLog
	first := writes[0]
	require.True(t, bytes.HasPrefix(first, []byte("HTTP/1.1 101 ")), "first write %q", first)
	require.Equal(t, len(first)-4, bytes.Index(first, []byte("\r\n\r\n")), "the first write is the head, whole and alone: %q", first)
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(first)), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Empty(t, resp.Header.Values("Sec-WebSocket-Extensions"), "no extension (compression) negotiated")
	log.head = resp

	controlSince := 0 // pings and pongs since the last text message
	for i, w := range writes[1:] {
		require.Zero(t, log.closeCode, "write %d follows the close frame", i+1)
		require.NotEmpty(t, w, "write %d is empty", i+1)
		for len(w) > 0 {
			h, ok := wsframe.ParseHeader(w)
			require.True(t, ok, "write %d ends in a partial frame header: %x", i+1, w)
			require.True(t, h.Fin, "write %d: fragmented frame", i+1)
			require.Zero(t, h.RSV, "write %d: RSV bits", i+1)
			require.False(t, h.Masked, "write %d: masked server frame", i+1)
			require.LessOrEqual(t, uint64(h.Size)+h.Length, uint64(len(w)), "write %d ends in a partial frame", i+1)
			payload := w[h.Size : h.Size+int(h.Length)]
			if h.IsControl() {
				require.LessOrEqual(t, h.Length, uint64(wsframe.MaxControlPayload))
			}
			w = w[h.Size+int(h.Length):]
			switch h.Opcode {
			case wsframe.OpText:
				if len(log.texts) > 0 {
					log.interleaved += controlSince
				}
				controlSince = 0
				log.texts = append(log.texts, payload)
			case wsframe.OpPing:
				log.pings++
				controlSince++
			case wsframe.OpPong:
				log.pongs++
				controlSince++
			case wsframe.OpClose:
				require.GreaterOrEqual(t, len(payload), 2, "close frame without a code")
				log.closeCode = websocket.StatusCode(binary.BigEndian.Uint16(payload))
				log.closeReason = string(payload[2:])
				require.Empty(t, w, "bytes after the close frame in write %d", i+1)
			default:
				require.Failf(t, "unexpected opcode", "write %d: opcode %#x", i+1, h.Opcode)
			}
		}
	}
	return log
}

// readAll reads messages from c until it fails, and returns them and the
// error.
func readAll(c *websocket.Conn) ([][]byte, error) {
	var msgs [][]byte
	for {
		typ, b, err := c.Read(context.Background())
		if err != nil {
			return msgs, err
		}
		if typ != websocket.MessageText {
			return msgs, fmt.Errorf("unexpected message type %v", typ)
		}
		msgs = append(msgs, b)
	}
}

// testMessageSize draws a message size that exercises every payload-length
// encoding, mostly small.
func testMessageSize(rng *rand.Rand) int {
	switch r := rng.IntN(100); {
	case r < 2:
		return []int{65535, 65536, 70000, chunkSize + 1}[rng.IntN(4)]
	case r < 20:
		return 120 + rng.IntN(10) // around the 7-bit/16-bit boundary
	default:
		return rng.IntN(300)
	}
}

// TestLibraryWritesThroughTheSeam drives the real websocket library, on
// both ends, through netConn: handshake, pings each way, data batches from
// several goroutines racing the control frames, then the close handshake
// started by the server, the client or both at once. Every write that
// reached the server's socket is recorded and checked (checkWire), and the
// client must have read every data message in the order it was sent, up to
// the close. Rerun it (with -race -count) when upgrading
// github.com/coder/websocket: netConn depends on what the library writes.
func TestLibraryWritesThroughTheSeam(t *testing.T) {
	t.Parallel()
	for _, closer := range []string{"server", "client", "both"} {
		t.Run(closer+" closes", func(t *testing.T) {
			t.Parallel()
			runSeamScenario(t, closer)
		})
	}
}

func runSeamScenario(t *testing.T, closer string) {
	const (
		writers = 4
		pings   = 20 // each way
	)
	env := streamtest.New(t, streamtest.Options{})
	h, err := NewHandler(env.Svc, Config{Auth: streamtest.Auth})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })

	type accepted struct {
		wc  *websocket.Conn
		nc  *netConn
		rec *wireRecorder
	}
	acceptc := make(chan accepted, 1)
	// A small socket send buffer, so that a control frame waits behind
	// little data and the data writers often block mid-batch.
	srv := streamtest.SmallBufferServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recorded := make(chan *wireRecorder, 1)
		uw := &upgradeWriter{ResponseWriter: &recordingResponseWriter{ResponseWriter: w, recorded: recorded}, wire: &h.wire}
		wc, err := websocket.Accept(uw, r, &h.accept) // the Handler's options
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		acceptc <- accepted{wc, uw.conn, <-recorded}
	}))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The client offers compression; the server must not take it up.
	cc, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		CompressionMode: websocket.CompressionContextTakeover,
	})
	require.NoError(t, err)
	require.Empty(t, resp.Header.Get("Sec-WebSocket-Extensions"))
	defer cc.CloseNow()
	cc.SetReadLimit(1 << 20)
	var a accepted
	select {
	case a = <-acceptc:
	case <-ctx.Done():
		require.FailNow(t, "no connection accepted")
	}
	defer a.wc.CloseNow()
	t.Cleanup(a.nc.release) // before h.Shutdown, which waits for the watchdog

	var wg sync.WaitGroup
	// Both ends keep reading, so pings are answered and closes seen.
	var clientMsgs [][]byte
	var clientErr error
	wg.Go(func() { clientMsgs, clientErr = readAll(cc) })
	serverRead := make(chan error, 1)
	wg.Go(func() {
		_, _, err := a.wc.Read(context.Background())
		serverRead <- err
	})

	// Data: each writer sends batches of numbered messages until the
	// connection refuses them.
	acked := make([]int, writers) // messages whose batch was accepted
	writerErrs := make([]error, writers)
	started := make(chan struct{}, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			seq := 0
			for round := 0; ; round++ {
				if round == 10 {
					started <- struct{}{}
				}
				batch := make([][]byte, 1+rng.IntN(8))
				for i := range batch {
					m := fmt.Appendf(nil, "%d %d ", w, seq+i)
					batch[i] = append(m, bytes.Repeat([]byte{'a' + byte(w)}, testMessageSize(rng))...)
				}
				if err := a.nc.writeMessages(batch); err != nil {
					writerErrs[w] = err
					if round < 10 {
						started <- struct{}{}
					}
					return
				}
				seq += len(batch)
				acked[w] = seq
			}
		})
	}
	for range writers {
		<-started
	}

	// Pings each way, racing the data.
	pingErrs := make(chan error, 2)
	for _, c := range []*websocket.Conn{a.wc, cc} {
		wg.Go(func() {
			for range pings {
				if err := c.Ping(ctx); err != nil {
					pingErrs <- err
					return
				}
			}
			pingErrs <- nil
		})
	}
	require.NoError(t, <-pingErrs)
	require.NoError(t, <-pingErrs)

	// The close handshake, with the writers still going. The reasons make
	// close frames longer than the library's write buffer, so it writes
	// them in two pieces.
	serverReason := "server done " + strings.Repeat("s", 100)
	clientReason := "client done " + strings.Repeat("c", wsframe.MaxControlPayload-2-12)
	var closeWG sync.WaitGroup
	if closer != "client" {
		closeWG.Go(func() { _ = a.wc.Close(websocket.StatusNormalClosure, serverReason) })
	}
	if closer != "server" {
		closeWG.Go(func() { _ = cc.Close(websocket.StatusGoingAway, clientReason) })
	}
	closeWG.Wait()
	wg.Wait()

	log := checkWire(t, a.rec.Writes())
	require.Equal(t, pings, log.pings)
	require.Equal(t, pings, log.pongs)
	require.NotZero(t, log.interleaved, "no control frame went out between data messages")
	switch closer {
	case "server":
		require.Equal(t, websocket.StatusNormalClosure, log.closeCode)
		require.Equal(t, serverReason, log.closeReason)
		require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(clientErr), "%v", clientErr)
	case "client":
		// The server echoes the client's close.
		require.Equal(t, websocket.StatusGoingAway, log.closeCode)
		require.Equal(t, clientReason, log.closeReason)
	default:
		require.NotZero(t, log.closeCode)
	}
	for w, err := range writerErrs {
		require.ErrorIs(t, err, net.ErrClosed, "writer %d", w)
	}
	require.Error(t, <-serverRead)

	// Every writer's messages went out in order, each batch whole, and
	// every accepted batch went out before the close frame.
	next := make([]int, writers)
	for _, m := range log.texts {
		var w, seq int
		_, err := fmt.Sscan(string(m), &w, &seq)
		require.NoError(t, err)
		require.Equal(t, next[w], seq, "writer %d", w)
		next[w]++
	}
	for w := range writers {
		require.GreaterOrEqual(t, next[w], acked[w], "writer %d: accepted messages missing", w)
		require.Less(t, next[w]-acked[w], 8, "writer %d: more than one refused batch sent", w)
	}
	// The client read exactly what went out, up to where it stopped
	// reading: all of it when only the server closed.
	require.LessOrEqual(t, len(clientMsgs), len(log.texts))
	require.Equal(t, log.texts[:len(clientMsgs)], clientMsgs)
	if closer == "server" {
		require.Len(t, clientMsgs, len(log.texts))
	}
	t.Logf("%s: %d writes, %d data messages, %d pings, %d pongs (%d between data messages)",
		closer, len(a.rec.Writes()), len(log.texts), log.pings, log.pongs, log.interleaved)
}

// TestHandlerWritesThroughTheSeam records the writes of the real Handler
// while it streams events to a client that pings it, and checks them
// (checkWire): the task ends (the server closes with 1000), or the client
// closes in mid-stream.
func TestHandlerWritesThroughTheSeam(t *testing.T) {
	t.Parallel()
	for _, closer := range []string{"server", "client"} {
		t.Run(closer+" closes", func(t *testing.T) {
			t.Parallel()
			const events = 400
			env := streamtest.New(t, streamtest.Options{})
			h, err := NewHandler(env.Svc, Config{Auth: streamtest.Auth})
			require.NoError(t, err)
			recorded := make(chan *wireRecorder, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(&recordingResponseWriter{ResponseWriter: w, recorded: recorded}, r)
			}))
			t.Cleanup(srv.Close)

			task := env.CreateTask(t, "alice")
			started := env.Started(t, task)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
				HTTPHeader:      streamtest.Bearer("alice"),
				CompressionMode: websocket.CompressionContextTakeover,
			})
			require.NoError(t, err)
			defer cc.CloseNow()
			cc.SetReadLimit(1 << 20)
			rec := <-recorded
			sub, _ := json.Marshal(taskbridge.SubscribeFrame{Action: "subscribe", TaskID: task, LastEventID: &started.EventID})
			require.NoError(t, cc.Write(ctx, websocket.MessageText, sub))

			var wg sync.WaitGroup
			pinged := make(chan struct{})
			var pingErr error
			wg.Go(func() {
				defer close(pinged)
				for range 40 {
					if pingErr = cc.Ping(ctx); pingErr != nil {
						return
					}
				}
			})
			var emitted []string
			var emitErr error
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(7, 7))
				em := env.Svc.Emitter(task)
				for range events {
					ev, err := em.Emit(context.Background(), taskbridge.MessagePayload{Message: strings.Repeat("m", testMessageSize(rng))})
					if err != nil {
						emitErr = err
						return
					}
					emitted = append(emitted, ev.EventID)
				}
				if closer == "server" {
					<-pinged // the pings race the events, not the close
					ev, err := em.Emit(context.Background(), taskbridge.CompletedPayload{})
					emitted = append(emitted, ev.EventID)
					emitErr = err
				}
			})

			// The client reads until the connection closes: the server
			// closes it after the terminal event, or the client once it has
			// read half the events and its pings are answered.
			half := make(chan struct{})
			var closeErr error
			if closer == "client" {
				wg.Go(func() {
					<-half
					<-pinged
					closeErr = cc.Close(websocket.StatusNormalClosure, "")
				})
			}
			var got [][]byte
			var readErr error
			for {
				_, b, err := cc.Read(ctx)
				if err != nil {
					readErr = err
					break
				}
				got = append(got, b)
				if len(got) == events/2 {
					close(half)
				}
			}
			if len(got) < events/2 {
				close(half)
			}
			wg.Wait()
			require.NoError(t, emitErr)
			require.NoError(t, h.Shutdown(ctx)) // the connection's goroutines are done

			log := checkWire(t, rec.Writes())
			require.Equal(t, websocket.StatusNormalClosure, log.closeCode)
			require.NoError(t, pingErr)
			if closer == "server" {
				require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(readErr), "%v", readErr)
				require.Equal(t, "all subscribed tasks finished", log.closeReason)
				require.Equal(t, log.texts, got)
			} else {
				require.NoError(t, closeErr)
				// The client's Read ends with the close frame, or with the
				// connection its Close closed.
				require.True(t, websocket.CloseStatus(readErr) == websocket.StatusNormalClosure ||
					errors.Is(readErr, net.ErrClosed), "%v", readErr)
				require.LessOrEqual(t, len(got), len(log.texts))
				require.Equal(t, log.texts[:len(got)], got)
			}
			require.Equal(t, 40, log.pongs)
			require.Zero(t, log.pings)
			require.Contains(t, string(log.texts[0]), "SUBSCRIPTION_CONFIRMED")
			for i, b := range log.texts[1:] {
				var ev taskbridge.TaskEvent
				require.NoError(t, json.Unmarshal(b, &ev))
				require.Equal(t, emitted[i], ev.EventID)
			}
			if closer == "server" {
				require.Len(t, log.texts, 1+len(emitted))
			}
		})
	}
}

// TestHijackRefusesCompression: should the library ever negotiate
// permessage-deflate (here it is asked to), the upgrade fails before the
// connection is taken over, so no compressed frame can reach netConn.
func TestHijackRefusesCompression(t *testing.T) {
	t.Parallel()
	acceptErr := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uw := &upgradeWriter{ResponseWriter: w, wire: testWire(t)}
		_, err := websocket.Accept(uw, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover})
		if uw.conn != nil {
			err = errors.New("hijacked")
		}
		acceptErr <- err
		http.Error(w, "refused", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"),
		&websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
	require.Error(t, err)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.ErrorContains(t, <-acceptErr, "compression must stay off")
}
