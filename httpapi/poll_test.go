package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

func eventIDs(evs []taskbridge.TaskEvent) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.EventID
	}
	return ids
}

func TestPollPaging(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")

	// No events yet: empty, nextAfterEventId null.
	resp := e.alice.get("/api/v1/tasks/" + id + "/events?waitTimeoutMs=0")
	require.Equal(t, http.StatusOK, resp.Status)
	require.JSONEq(t, `{"taskId":"`+id+`","events":[],"nextAfterEventId":null,"hasMore":false}`, string(resp.Body))

	e.emit(id, taskbridge.StartedPayload{Message: "go"})
	for p := range 4 {
		e.emit(id, taskbridge.ProgressPayload{Progress: float64(p * 10)})
	}

	pr := e.alice.poll(id, "waitTimeoutMs=0&maxEvents=2")
	require.Equal(t, []string{"1", "2"}, eventIDs(pr.Events))
	require.True(t, pr.HasMore)
	require.Equal(t, "2", *pr.NextAfterEventID)
	require.Equal(t, id, pr.TaskID)
	require.Equal(t, taskbridge.EventTaskStarted, pr.Events[0].Type)

	pr = e.alice.poll(id, "waitTimeoutMs=0&maxEvents=2&afterEventId=2")
	require.Equal(t, []string{"3", "4"}, eventIDs(pr.Events))
	require.True(t, pr.HasMore)

	pr = e.alice.poll(id, "waitTimeoutMs=0&maxEvents=2&afterEventId="+*pr.NextAfterEventID)
	require.Equal(t, []string{"5"}, eventIDs(pr.Events))
	require.False(t, pr.HasMore)
	require.Equal(t, "5", *pr.NextAfterEventID)

	// Caught up: the cursor is echoed.
	pr = e.alice.poll(id, "waitTimeoutMs=0&afterEventId=5")
	require.Empty(t, pr.Events)
	require.False(t, pr.HasMore)
	require.Equal(t, "5", *pr.NextAfterEventID)

	// Defaults: from the start (absent, empty or "0" cursor), 100 events;
	// with events available the default wait does not delay the answer.
	for _, q := range []string{"", "afterEventId=", "afterEventId=0"} {
		pr = e.alice.poll(id, q)
		require.Equal(t, []string{"1", "2", "3", "4", "5"}, eventIDs(pr.Events), q)
	}
	pr = e.alice.poll(id, "maxEvents=500&waitTimeoutMs=60000")
	require.Len(t, pr.Events, 5)
	pr = e.alice.poll(id, "maxEvents=1&waitTimeoutMs=0")
	require.Len(t, pr.Events, 1)
}

func TestPollParams(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	for _, tc := range []struct {
		query  string
		fields []string
	}{
		{"waitTimeoutMs=-1", []string{"waitTimeoutMs"}},
		{"waitTimeoutMs=60001", []string{"waitTimeoutMs"}},
		{"waitTimeoutMs=abc", []string{"waitTimeoutMs"}},
		{"waitTimeoutMs=", []string{"waitTimeoutMs"}},
		{"waitTimeoutMs=1.5", []string{"waitTimeoutMs"}},
		{"waitTimeoutMs=99999999999999999999999", []string{"waitTimeoutMs"}},
		{"maxEvents=0", []string{"maxEvents"}},
		{"maxEvents=501", []string{"maxEvents"}},
		{"maxEvents=ten&waitTimeoutMs=0", []string{"maxEvents"}},
		{"maxEvents=-5&waitTimeoutMs=70000", []string{"waitTimeoutMs", "maxEvents"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			require.Equal(t, tc.fields, e.alice.on(t).get("/api/v1/tasks/"+id+"/events?"+tc.query).fieldErrors())
		})
	}
}

func TestPollCursorErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	e.emit(id, taskbridge.StartedPayload{})
	for p := range 4 {
		e.emit(id, taskbridge.ProgressPayload{Progress: float64(p)})
	}
	for _, cursor := range []string{"abc", "-1", "01", "6", "1-0"} {
		e.alice.get("/api/v1/tasks/"+id+"/events?waitTimeoutMs=0&afterEventId="+cursor).
			errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	}

	// Retention dropped events 1..3: resuming after 1 would skip events.
	require.NoError(t, e.store.TrimEvents(id, 2))
	e.alice.get("/api/v1/tasks/"+id+"/events?waitTimeoutMs=0&afterEventId=1").
		errorEnvelope(http.StatusGone, taskbridge.CodeEventsExpired)
	pr := e.alice.poll(id, "waitTimeoutMs=0&afterEventId=3")
	require.Equal(t, []string{"4", "5"}, eventIDs(pr.Events))
}

type pollResult struct {
	status int
	header http.Header
	body   []byte
	err    error
	took   time.Duration
}

// startPoll runs a poll in the background.
func (c *client) startPoll(ctx context.Context, taskID, query string) (*http.Request, <-chan pollResult) {
	req := c.newRequest(ctx, http.MethodGet, "/api/v1/tasks/"+taskID+"/events?"+query, nil, "")
	ch := make(chan pollResult, 1)
	go func() {
		start := time.Now()
		var r pollResult
		r.status, r.header, r.body, r.err = send(req)
		r.took = time.Since(start)
		ch <- r
	}()
	return req, ch
}

func TestLongPollWokenByAppend(t *testing.T) {
	t.Parallel()
	for _, query := range []string{"waitTimeoutMs=60000", "" /* the default wait, 25s */} {
		t.Run(query, func(t *testing.T) {
			t.Parallel()
			var ws *watchStore
			e := setup(t, withWatchStore(&ws))
			id := e.createTask("req-1")
			req, done := e.alice.on(t).startPoll(context.Background(), id, query)
			ws.waitWatched(t, id)
			e.emit(id, taskbridge.StartedPayload{Message: "woken"})
			r := <-done
			require.NoError(t, r.err)
			resp := e.alice.on(t).check(req, r.status, r.header, r.body)
			var pr taskbridge.PollResponse
			resp.decode(&pr)
			require.Equal(t, []string{"1"}, eventIDs(pr.Events))
			require.Less(t, r.took, 20*time.Second)
		})
	}
}

func TestPollWaitTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	req, done := e.alice.startPoll(context.Background(), id, "waitTimeoutMs=300")
	r := <-done
	require.NoError(t, r.err)
	var pr taskbridge.PollResponse
	e.alice.check(req, r.status, r.header, r.body).decode(&pr)
	require.Empty(t, pr.Events)
	require.Nil(t, pr.NextAfterEventID)
	require.GreaterOrEqual(t, r.took, 300*time.Millisecond)
	require.Less(t, r.took, 10*time.Second)

	// Before a terminal event the poll answers at once.
	e.emit(id, taskbridge.CancelledPayload{Reason: "test"})
	req, done = e.alice.startPoll(context.Background(), id, "waitTimeoutMs=60000")
	r = <-done
	require.NoError(t, r.err)
	e.alice.check(req, r.status, r.header, r.body).decode(&pr)
	require.Equal(t, []string{"1"}, eventIDs(pr.Events))
	require.Less(t, r.took, 10*time.Second)
}

// TestPollAtTerminalCursorWaits replays the Android SDK's resume at the
// terminal event of a finished task: its poll must wait its waitTimeoutMs
// and answer an empty page, or the SDK polls in a tight loop.
func TestPollAtTerminalCursorWaits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	e.emit(id, taskbridge.StartedPayload{Message: "go"})
	e.emit(id, taskbridge.CompletedPayload{Result: map[string]any{"ok": true}})

	// The SDK's request with a shorter wait: an empty page after the wait.
	req, done := e.alice.startPoll(context.Background(), id, "afterEventId=2&waitTimeoutMs=300&maxEvents=100")
	r := <-done
	require.NoError(t, r.err)
	var pr taskbridge.PollResponse
	e.alice.check(req, r.status, r.header, r.body).decode(&pr)
	require.Equal(t, http.StatusOK, r.status)
	require.Empty(t, pr.Events)
	require.False(t, pr.HasMore)
	require.Equal(t, "2", *pr.NextAfterEventID)
	require.GreaterOrEqual(t, r.took, 300*time.Millisecond)

	// The SDK's exact request is still waiting a good while later (it
	// would answer after 25 s); the client leaving ends it.
	ctx, cancel := context.WithCancel(context.Background())
	_, done = e.alice.startPoll(ctx, id, "afterEventId=2&waitTimeoutMs=25000&maxEvents=100")
	select {
	case r := <-done:
		t.Fatalf("the SDK's poll at the terminal cursor answered after %v: status %d %s", r.took, r.status, r.body)
	case <-time.After(time.Second):
	}
	cancel()
	require.Error(t, (<-done).err)
}

func TestLongPollEndsWhenClientLeaves(t *testing.T) {
	t.Parallel()
	var ws *watchStore
	returned := make(chan struct{})
	e := setup(t, withWatchStore(&ws), func(o *options) {
		o.mount = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				if strings.HasSuffix(r.URL.Path, "/events") {
					close(returned)
				}
			})
		}
	})
	id := e.createTask("req-1")
	ctx, cancel := context.WithCancel(context.Background())
	_, done := e.alice.startPoll(ctx, id, "waitTimeoutMs=60000")
	ws.waitWatched(t, id)
	cancel()
	r := <-done
	require.ErrorIs(t, r.err, context.Canceled)
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll kept waiting after the client left")
	}
}

func TestLongPollEndsOnShutdown(t *testing.T) {
	t.Parallel()
	var ws *watchStore
	e := setup(t, withWatchStore(&ws))
	id := e.createTask("req-1")
	req, done := e.alice.startPoll(context.Background(), id, "waitTimeoutMs=60000")
	ws.waitWatched(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.svc.Shutdown(ctx))
	r := <-done
	require.NoError(t, r.err)
	e.alice.check(req, r.status, r.header, r.body).errorEnvelope(http.StatusServiceUnavailable, taskbridge.CodeUnavailable)

	// Commands after shutdown are refused with a retryable 503 too.
	e.alice.postRaw("/api/v1/tasks", `{"clientRequestId":"late","taskType":"t"}`).
		errorEnvelope(http.StatusServiceUnavailable, taskbridge.CodeUnavailable)
}

// TestLongPollOutlivesWriteTimeout checks that a host's short
// http.Server.WriteTimeout does not kill a long poll.
func TestLongPollOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	srv := httptest.NewUnstartedServer(e.handler)
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	c := *e.alice
	c.base = srv.URL
	id := e.createTask("req-1")
	req, done := c.startPoll(context.Background(), id, "waitTimeoutMs=400")
	r := <-done
	require.NoError(t, r.err)
	resp := c.check(req, r.status, r.header, r.body)
	require.Equal(t, http.StatusOK, resp.Status)
	require.GreaterOrEqual(t, r.took, 400*time.Millisecond)
}
