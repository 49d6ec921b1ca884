package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

// diagServer is the full HTTP surface with diagnostics recorded.
type diagServer struct {
	env     *streamtest.Env
	rec     *streamtest.Recorder
	metrics *taskbridge.MemoryMetrics
	srv     *httptest.Server
	streams *sse.Handler
	sockets *ws.Handler
}

func setupDiag(t *testing.T, hb time.Duration, keep int) *diagServer {
	t.Helper()
	d := &diagServer{rec: &streamtest.Recorder{}, metrics: &taskbridge.MemoryMetrics{}}
	d.env = streamtest.New(t, streamtest.Options{Diagnostics: d.rec, Metrics: d.metrics, MaxEventsPerTask: keep})
	var err error
	d.streams, err = sse.NewHandler(d.env.Svc, sse.Config{Auth: streamtest.Auth, HeartbeatInterval: hb})
	require.NoError(t, err)
	d.sockets, err = ws.NewHandler(d.env.Svc, ws.Config{Auth: streamtest.Auth, HeartbeatInterval: hb})
	require.NoError(t, err)
	api, err := httpapi.New(d.env.Svc, httpapi.Config{Auth: streamtest.Auth, Stream: d.streams, WebSocket: d.sockets})
	require.NoError(t, err)
	d.srv = httptest.NewServer(api)
	t.Cleanup(d.srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.streams.Shutdown(ctx))
		require.NoError(t, d.sockets.Shutdown(ctx))
	})
	return d
}

func diagCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openSSE opens a stream from cursor; the caller reads it and cancels ctx
// to leave.
func (d *diagServer) openSSE(t *testing.T, ctx context.Context, task, cursor string) *bufio.Reader {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.URL+"/api/v1/tasks/"+task+"/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	resp, err := d.srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return bufio.NewReader(resp.Body)
}

// nextSSE returns the next event id of a stream, skipping heartbeats.
func nextSSE(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		f, err := streamtest.ReadSSE(br)
		require.NoError(t, err)
		if f.HasID {
			return f.ID
		}
	}
}

// openWS subscribes a socket from cursor and reads the confirmation.
func (d *diagServer) openWS(t *testing.T, ctx context.Context, task, cursor string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.srv.URL, "http")+ws.DefaultPath,
		&websocket.DialOptions{HTTPHeader: streamtest.Bearer("alice")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	f := taskbridge.SubscribeFrame{Action: taskbridge.FrameSubscribe, TaskID: task}
	if cursor != "" {
		f.LastEventID = &cursor
	}
	b, _ := json.Marshal(f)
	require.NoError(t, c.Write(ctx, websocket.MessageText, b))
	_, _, err = c.Read(ctx) // confirmation (or the close)
	if err != nil {
		return nil
	}
	return c
}

// nextWS returns the next event id of a socket, skipping heartbeats.
func nextWS(t *testing.T, ctx context.Context, c *websocket.Conn) string {
	t.Helper()
	for {
		_, b, err := c.Read(ctx)
		require.NoError(t, err)
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal(b, &ev))
		if ev.Type != taskbridge.FrameHeartbeat {
			return ev.EventID
		}
	}
}

func (d *diagServer) poll(t *testing.T, task, query string) (int, []string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.srv.URL+"/api/v1/tasks/"+task+"/events?"+query, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	resp, err := d.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var page taskbridge.PollResponse
	_ = json.NewDecoder(resp.Body).Decode(&page)
	var ids []string
	for _, ev := range page.Events {
		ids = append(ids, ev.EventID)
	}
	return resp.StatusCode, ids
}

// TestDiagnosticsPerTransport: over each transport, a client resuming from
// cursor 1 gets event 2 replayed and events 3 (live) and 4 (terminal); the
// hooks report the replay start with the cursor, each delivery, and, for
// streams, the end at the terminal event with the counts.
func TestDiagnosticsPerTransport(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"poll", "sse", "ws"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			d := setupDiag(t, 0, 0)
			ctx := diagCtx(t)
			task := d.env.CreateTask(t, "alice")
			d.env.Started(t, task)
			d.env.Progress(t, task, 0.5)
			var got []string
			switch transport {
			case "poll":
				_, ids := d.poll(t, task, "afterEventId=1")
				d.env.Progress(t, task, 0.7)
				d.env.Complete(t, task)
				_, more := d.poll(t, task, "afterEventId=2")
				got = append(ids, more...)
			case "sse":
				br := d.openSSE(t, ctx, task, "1")
				got = append(got, nextSSE(t, br))
				d.env.Progress(t, task, 0.7)
				got = append(got, nextSSE(t, br))
				d.env.Complete(t, task)
				got = append(got, nextSSE(t, br))
			case "ws":
				c := d.openWS(t, ctx, task, "1")
				got = append(got, nextWS(t, ctx, c))
				d.env.Progress(t, task, 0.7)
				got = append(got, nextWS(t, ctx, c))
				d.env.Complete(t, task)
				got = append(got, nextWS(t, ctx, c))
			}
			require.Equal(t, []string{"2", "3", "4"}, got)

			replays := d.rec.Replays()
			require.NotEmpty(t, replays)
			require.Equal(t, transport, replays[0].Transport)
			require.Equal(t, task, replays[0].TaskID)
			require.Equal(t, "1", replays[0].Cursor)
			var ids []string
			var replayed []bool
			for _, dl := range d.rec.Deliveries() {
				require.Equal(t, transport, dl.Transport)
				require.False(t, dl.CreatedAt.IsZero())
				ids = append(ids, dl.EventID)
				replayed = append(replayed, dl.Replayed)
			}
			require.Equal(t, []string{"2", "3", "4"}, ids)
			if transport == "poll" {
				require.Equal(t, []bool{true, true, true}, replayed) // every poll had a cursor
				require.Empty(t, d.rec.Disconnects())
				return
			}
			require.Equal(t, []bool{true, false, false}, replayed)
			end := d.rec.WaitDisconnect(t, task)
			require.Equal(t, taskbridge.DisconnectTerminal, end.Reason)
			require.Equal(t, replays[0].StreamInfo, end.StreamInfo)
			require.NotZero(t, end.StreamID)
			require.EqualValues(t, 3, end.Delivered)
			require.EqualValues(t, 1, end.Replayed)
			require.Positive(t, end.Lifetime)
		})
	}
}

// TestDiagnosticsHeartbeat: an idle stream's heartbeats are reported.
func TestDiagnosticsHeartbeat(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"sse", "ws"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			d := setupDiag(t, 20*time.Millisecond, 0)
			ctx := diagCtx(t)
			task := d.env.CreateTask(t, "alice")
			if transport == "sse" {
				br := d.openSSE(t, ctx, task, "")
				f, err := streamtest.ReadSSE(br)
				require.NoError(t, err)
				require.Contains(t, f.Data, `"HEARTBEAT"`)
			} else {
				c := d.openWS(t, ctx, task, "")
				_, b, err := c.Read(ctx)
				require.NoError(t, err)
				require.Contains(t, string(b), `"HEARTBEAT"`)
			}
			hbs := d.rec.Heartbeats()
			require.NotEmpty(t, hbs)
			require.Equal(t, taskbridge.StreamInfo{Transport: transport, TaskID: task, StreamID: d.rec.Replays()[0].StreamID}, hbs[0])
		})
	}
}

// TestDiagnosticsDisconnectReasons: a client that leaves is "client gone",
// a handler shutdown is "shutdown".
func TestDiagnosticsDisconnectReasons(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"sse", "ws"} {
		for _, how := range []string{"client gone", "shutdown"} {
			t.Run(transport+"/"+how, func(t *testing.T) {
				t.Parallel()
				d := setupDiag(t, 0, 0)
				ctx, cancel := context.WithCancel(diagCtx(t))
				task := d.env.CreateTask(t, "alice")
				d.env.Started(t, task)
				var c *websocket.Conn
				if transport == "sse" {
					require.Equal(t, "1", nextSSE(t, d.openSSE(t, ctx, task, "")))
				} else {
					c = d.openWS(t, ctx, task, "")
					require.Equal(t, "1", nextWS(t, ctx, c))
				}
				want := taskbridge.DisconnectClientGone
				switch {
				case how == "shutdown":
					want = taskbridge.DisconnectShutdown
					d.streams.Close()
					d.sockets.Close()
				case c != nil:
					require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
				default:
					cancel()
				}
				end := d.rec.WaitDisconnect(t, task)
				require.Equal(t, want, end.Reason)
				require.Equal(t, transport, end.Transport)
				require.EqualValues(t, 1, end.Delivered)
				cancel()
			})
		}
	}
}

// TestDiagnosticsEventsExpired: a cursor behind retention is reported on
// every transport, and counted.
func TestDiagnosticsEventsExpired(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"poll", "sse", "ws"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			d := setupDiag(t, 0, 2)
			ctx := diagCtx(t)
			task := d.env.CreateTask(t, "alice")
			d.env.Started(t, task)
			for range 3 {
				d.env.Progress(t, task, 0.5)
			}
			switch transport {
			case "poll":
				status, _ := d.poll(t, task, "afterEventId=1")
				require.Equal(t, http.StatusGone, status)
			case "sse":
				require.Nil(t, d.openSSE(t, ctx, task, "1"))
			case "ws":
				require.Nil(t, d.openWS(t, ctx, task, "1"))
			}
			require.Equal(t, []taskbridge.StreamInfo{{Transport: transport, TaskID: task}}, d.rec.Expired())
			require.EqualValues(t, 1, d.metrics.Value(taskbridge.MetricEventsExpired, taskbridge.Label{Name: "transport", Value: transport}))
		})
	}
}
