package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

// fixedPattern is how an app with a fixed-pattern parser reads times:
// RFC 3339 UTC with exactly three fractional digits.
const fixedPattern = "2006-01-02T15:04:05.000Z"

var fixedTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// timeFields are the members that hold times in the protocol.
var timeFields = map[string]bool{"createdAt": true, "updatedAt": true, "expiresAt": true, "acceptedAt": true, "timestamp": true}

// requireFixedTimes checks every time member of a JSON document (at any
// depth) with the fixed-pattern parser, and returns their paths.
func requireFixedTimes(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(doc, &v), "%s", doc)
	var paths []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				p := path + "." + k
				if timeFields[k] {
					s, ok := e.(string)
					require.True(t, ok, "%s is not a string in %s", p, doc)
					require.Regexp(t, fixedTime, s, "%s in %s", p, doc)
					_, err := time.Parse(fixedPattern, s)
					require.NoError(t, err, "%s in %s", p, doc)
					paths = append(paths, p)
					continue
				}
				walk(p, e)
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("", v)
	sort.Strings(paths)
	return paths
}

// Every time the library writes, on every route and transport, parses with
// a fixed pattern; a clock reading with nanoseconds and zero milliseconds
// gives ".000Z".
func TestTimesHaveOneFormat(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 14, 0, 0, 7, time.FixedZone("CEST", 2*3600))
	s := setup(t, func(o *streamtest.Options, c *sse.Config) {
		o.Now = func() time.Time { return now }
		c.HeartbeatInterval = 5 * time.Millisecond
	})
	env, srv := s.env, s.srv
	c := &client{t: t, s: s, user: "alice"}
	get := func(path string, want int) []byte {
		resp, b := c.do(http.MethodGet, path, nil, nil)
		require.Equal(t, want, resp.StatusCode, "%s", b)
		return b
	}

	c.createTask()
	env.Started(t, c.taskID)
	_, err := env.Svc.Emitter(c.taskID).Suspend(context.Background(), taskbridge.SuspendOpts{
		SuspendID: "s1", ReasonCode: "approval_required", AllowedActions: []string{"approve"}, TTL: time.Hour + time.Microsecond,
	})
	require.NoError(t, err)

	tasks := "/api/v1/tasks/" + c.taskID
	require.Equal(t, []string{".createdAt", ".suspension.expiresAt", ".updatedAt"}, requireFixedTimes(t, get(tasks, http.StatusOK)))
	require.Equal(t, []string{".tasks[].createdAt", ".tasks[].updatedAt"}, requireFixedTimes(t, get("/api/v1/tasks", http.StatusOK)))
	require.Equal(t, []string{".timestamp"}, requireFixedTimes(t, get("/api/v1/tasks/nope", http.StatusNotFound)))

	resp, b := c.do(http.MethodPost, tasks+"/actions", nil, map[string]any{"clientActionId": "a1", "suspendId": "s1", "actionType": "approve"})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	env.Complete(t, c.taskID)
	poll := get(tasks+"/events", http.StatusOK)
	require.Equal(t, []string{
		".events[].createdAt", ".events[].createdAt", ".events[].createdAt", ".events[].createdAt",
		".events[].payload.acceptedAt", ".events[].payload.expiresAt",
	}, requireFixedTimes(t, poll))
	require.Contains(t, string(poll), `"createdAt":"2026-05-04T12:00:00.000Z"`)

	// SSE: events 3 (TASK_ACTION_ACCEPTED) and 4, then a heartbeat.
	req, err := http.NewRequest(http.MethodGet, srv.URL+tasks+"/events/stream", nil)
	require.NoError(t, err)
	req.Header = streamtest.Bearer("alice")
	req.Header.Set("Last-Event-ID", "2")
	sresp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer sresp.Body.Close()
	br := bufio.NewReader(sresp.Body)
	for range 2 {
		fr, err := streamtest.ReadSSE(br)
		require.NoError(t, err)
		require.Contains(t, requireFixedTimes(t, []byte(fr.Data)), ".createdAt")
	}

	// A heartbeat needs a live stream: a second task, not yet ended.
	other := env.CreateTask(t, "alice")
	req, err = http.NewRequest(http.MethodGet, srv.URL+"/api/v1/tasks/"+other+"/events/stream", nil)
	require.NoError(t, err)
	req.Header = streamtest.Bearer("alice")
	hresp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer hresp.Body.Close()
	fr, err := streamtest.ReadSSE(bufio.NewReader(hresp.Body))
	require.NoError(t, err)
	require.Contains(t, fr.Data, `"HEARTBEAT"`)
	require.Equal(t, []string{".createdAt"}, requireFixedTimes(t, []byte(fr.Data)))

	// WebSocket: the events (its heartbeat frame carries no time).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):]+ws.DefaultPath, &websocket.DialOptions{HTTPHeader: streamtest.Bearer("alice")})
	require.NoError(t, err)
	defer conn.CloseNow()
	sub, err := json.Marshal(taskbridge.SubscribeFrame{Action: taskbridge.FrameSubscribe, TaskID: c.taskID})
	require.NoError(t, err)
	require.NoError(t, conn.Write(ctx, websocket.MessageText, sub))
	_, _, err = conn.Read(ctx) // SUBSCRIPTION_CONFIRMED
	require.NoError(t, err)
	for range 4 {
		_, msg, err := conn.Read(ctx)
		require.NoError(t, err)
		times := requireFixedTimes(t, msg)
		require.Contains(t, times, ".createdAt", "%s", msg)
	}
}
