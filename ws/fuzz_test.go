package ws_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/ws"
)

// fuzzServer serves a handler with cfg (and the test's authentication)
// for a fuzz target, until the target ends.
func fuzzServer(f *testing.F, env *streamtest.Env, cfg ws.Config) *httptest.Server {
	cfg.Auth = streamtest.Auth
	h, err := ws.NewHandler(env.Svc, cfg)
	require.NoError(f, err)
	mux := http.NewServeMux()
	mux.Handle("GET "+ws.DefaultPath, h)
	srv := httptest.NewServer(mux)
	f.Cleanup(func() {
		srv.Close()
		require.NoError(f, h.Shutdown(context.Background()))
	})
	return srv
}

// FuzzSubscribeFrame sends one client frame ("$T" stands for the id of a
// finished task of the caller) and reads until the server closes. Every
// frame must end in a close with a code the protocol gives a client's
// mistake or the normal end (1000, 1008, 1009, 4410), never an internal
// error (1011), a reset or a hang. Its seed corpus runs as a test.
func FuzzSubscribeFrame(f *testing.F) {
	env := streamtest.New(f, streamtest.Options{})
	task := env.CreateTask(f, "alice")
	env.Started(f, task)
	env.Complete(f, task)
	srv := fuzzServer(f, env, ws.Config{})
	url := wsURL(srv.URL)

	f.Add([]byte(`{"action":"subscribe","taskId":"$T","lastEventId":"1"}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		frame = bytes.ReplaceAll(frame, []byte("$T"), []byte(task))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer alice"}}})
		require.NoError(t, err)
		defer func() { _ = c.CloseNow() }()
		c.SetReadLimit(1 << 20)
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			return // the server closed before reading the frame
		}
		for {
			_, _, err := c.Read(ctx)
			if err == nil {
				continue
			}
			require.NoError(t, ctx.Err(), "the server neither answered nor closed: %q", frame)
			code := websocket.CloseStatus(err)
			switch code {
			case websocket.StatusNormalClosure, websocket.StatusPolicyViolation, websocket.StatusMessageTooBig, ws.CloseEventsExpired:
			default:
				require.Failf(t, "unexpected end", "frame %q ended with close %d: %v", frame, code, err)
			}
			if code == websocket.StatusNormalClosure {
				require.False(t, errors.Is(err, context.DeadlineExceeded))
			}
			return
		}
	})
}

// FuzzClientFrames sends a client's frames as a program in its input
// spells them, after a first subscribe frame that goes with the handshake.
// Each byte b is an instruction b%5 with an argument a = b/5: 0 a ping
// and 1 a pong, each with 5a%126 bytes of payload; 2 a subscribe frame for
// the next of four tasks; 3 the end of one write; 4 a cut inside the next
// frame, after its first 1+a%(size-1) bytes. However the frames are split over writes, and so over the
// websocket library's read buffer and the socket, the server answers every
// ping with a pong of its payload, in order, ignores pongs, confirms every
// subscription, and answers the client's closing handshake with a close
// frame. Its seed corpus runs as a test.
func FuzzClientFrames(f *testing.F) {
	env := streamtest.New(f, streamtest.Options{})
	tasks := make([]string, 4)
	for i := range tasks {
		tasks[i] = env.CreateTask(f, "alice")
	}
	srv := fuzzServer(f, env, ws.Config{DisableHeartbeats: true})

	for _, seed := range [][]byte{
		{},                                    // the first subscribe frame alone
		{0 + 5*4, 2, 0 + 5*25, 1 + 5*3, 2, 2}, // all in the handshake's write (a 125-byte ping)
		{3, 0 + 5*10, 3, 2, 3, 1, 0, 3},       // one frame per write
		{4 + 5*3, 0 + 5*20, 4 + 5*1, 2, 4 + 5*30, 0 + 5*5}, // frames cut inside
		{3, 0 + 5*8, 2, 2, 4 + 5*2, 0 + 5*20, 1 + 5*6, 2},  // a burst after the handshake, a ping cut short
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		var (
			writes  [][]byte
			cur     = subscribeFrames(t, tasks[0])
			cut     = -1 // where to cut the next frame, when >= 0
			pings   []string
			subs    = 1
			nframes int
		)
		add := func(frame []byte) {
			if cut >= 0 {
				at := 1 + cut%(len(frame)-1)
				cur = append(cur, frame[:at]...)
				writes, cur = append(writes, cur), append([]byte(nil), frame[at:]...)
				cut = -1
				return
			}
			cur = append(cur, frame...)
		}
		for _, b := range prog {
			if nframes == 64 {
				break
			}
			arg := int(b / 5)
			switch b % 5 {
			case 0:
				p := bytes.Repeat([]byte{byte('a' + len(pings)%26)}, 5*arg%(wsframe.MaxControlPayload+1))
				pings = append(pings, string(p))
				add(wsframe.AppendClientFrame(nil, wsframe.OpPing, p))
				nframes++
			case 1:
				add(wsframe.AppendClientFrame(nil, wsframe.OpPong, bytes.Repeat([]byte{'z'}, 5*arg%(wsframe.MaxControlPayload+1))))
				nframes++
			case 2:
				if subs < len(tasks) {
					add(subscribeFrames(t, tasks[subs]))
					subs++
					nframes++
				}
			case 3:
				if len(cur) > 0 {
					writes, cur = append(writes, cur), nil
				}
			case 4:
				cut = arg
			}
		}
		if len(cur) > 0 {
			writes = append(writes, cur)
		}

		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		hs := streamtest.HandshakeRequest(srv.Listener.Addr().String(), ws.DefaultPath, streamtest.Bearer("alice"))
		for i, w := range writes {
			if i == 0 {
				w = append(hs, w...)
			} else {
				time.Sleep(100 * time.Microsecond) // apart, most of the time
			}
			_, err := conn.Write(w)
			require.NoError(t, err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		var pongs []string
		confirmed := 0
		for len(pongs) < len(pings) || confirmed < subs {
			op, payload, err := streamtest.ReadServerFrame(br)
			require.NoError(t, err, "after %d of %d pongs, %d of %d confirmations", len(pongs), len(pings), confirmed, subs)
			switch op {
			case wsframe.OpPong:
				pongs = append(pongs, string(payload))
			case wsframe.OpText:
				protocoltest.ValidateSubscriptionConfirmed(t, payload)
				confirmed++
			default:
				t.Fatalf("unexpected frame %#x %q", op, payload)
			}
		}
		require.Equal(t, pings, pongs)

		_, err = conn.Write(wsframe.AppendClientFrame(nil, wsframe.OpClose, binary.BigEndian.AppendUint16(nil, 1000)))
		require.NoError(t, err)
		op, payload, err := streamtest.ReadServerFrame(br)
		require.NoError(t, err)
		require.Equal(t, byte(wsframe.OpClose), op, "%q", payload)
		require.GreaterOrEqual(t, len(payload), 2)
		require.Equal(t, uint16(1000), binary.BigEndian.Uint16(payload))
	})
}
