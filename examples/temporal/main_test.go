package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge-go/taskbridge"
)

// waitTimeout bounds every wait of a test.
const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	runChild() // when started by startProcess
	goleak.VerifyTestMain(m)
}

func TestFlags(t *testing.T) {
	t.Setenv("TASKBRIDGE_POSTGRES_URL", "")
	for _, args := range [][]string{
		{"-store", "postgres"},
		{"-postgres-url", "postgres://x"},
		{"-activity-timeout", "0s"},
		{"-role", "nope"},
		{"-role", "server"},
		{"-role", "worker"},
		{"-store", "redis"},
		{"-reconcile-interval", "0s"},
		{"-shutdown-timeout", "-1s"},
		{"extra"},
		{"-no-such-flag"},
	} {
		_, err := parseFlags(args, io.Discard)
		require.Error(t, err, args)
	}
	o, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, roleAll, o.role)
	require.Equal(t, "127.0.0.1:7233", o.temporalAddr)
	o, err = parseFlags([]string{"-role", "worker", "-store", "postgres", "-postgres-url", "postgres://x"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "postgres://x", o.postgresURL)
	t.Setenv("TASKBRIDGE_POSTGRES_URL", "postgres://y")
	o, err = parseFlags([]string{"-role", "server", "-store", "postgres"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "postgres://y", o.postgresURL)
}

// temporalAddr returns TASKBRIDGE_TEMPORAL_ADDR, skipping the test when it
// is unset (failing it when TASKBRIDGE_REQUIRE_SERVICES=1).
func temporalAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("TASKBRIDGE_TEMPORAL_ADDR")
	if addr == "" {
		msg := "TASKBRIDGE_TEMPORAL_ADDR is not set; start a dev server (temporal server start-dev --headless --ip 127.0.0.1 --port 7233) and set it to 127.0.0.1:7233 to run the example against it"
		if os.Getenv("TASKBRIDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " (required: TASKBRIDGE_REQUIRE_SERVICES=1)")
		}
		t.Skip(msg)
	}
	return addr
}

// TestRun runs the example (-role all) against the Temporal server at
// TASKBRIDGE_TEMPORAL_ADDR: a greet task streams to its end over SSE, an
// approval task completes after an approve.
func TestRun(t *testing.T) {
	t.Parallel()
	addr := temporalAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-temporal", addr, "-task-queue", "example-" + uuid.NewString(), "-log-level", "error"}, w, io.Discard)
		w.Close()
	}()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	lines := bufio.NewScanner(out)
	var url string
	for url == "" && lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "listening on "); ok {
			url = u
		}
	}
	require.NotEmpty(t, url, "the example did not start")
	go func() { _, _ = io.Copy(io.Discard, out) }()

	greet := create(t, url, "greet", `{"name":"Ada","steps":2,"stepDelayMs":0}`)
	evs := stream(t, url, greet)
	require.Len(t, evs, 4)
	require.JSONEq(t, `{"result":{"greeting":"Hello, Ada!"}}`, string(evs[3].Payload))

	approval := create(t, url, "approval", `{}`)
	ev := waitFor(t, url, approval, func(ev taskbridge.TaskEvent) bool { return ev.Type == taskbridge.EventTaskSuspended })
	var sus taskbridge.SuspendedPayload
	require.NoError(t, json.Unmarshal(ev.Payload, &sus))
	do(t, http.MethodPost, url+"/api/v1/tasks/"+approval+"/actions",
		fmt.Sprintf(`{"clientActionId":"a1","suspendId":%q,"actionType":"approve"}`, sus.SuspendID), http.StatusAccepted, nil)
	evs = stream(t, url, approval)
	require.JSONEq(t, `{"result":{"approved":true}}`, string(evs[len(evs)-1].Payload))

	do(t, http.MethodPost, url+"/api/v1/tasks", `{"clientRequestId":"x","taskType":"nope"}`, http.StatusBadRequest, nil)
}

func do(t *testing.T, method, url, body string, want int, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, want, resp.StatusCode)
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
}

func create(t *testing.T, url, taskType, input string) string {
	t.Helper()
	var resp taskbridge.CreateTaskResponse
	do(t, http.MethodPost, url+"/api/v1/tasks",
		fmt.Sprintf(`{"clientRequestId":%q,"taskType":%q,"input":%s}`, uuid.NewString(), taskType, input), http.StatusCreated, &resp)
	return resp.TaskID
}

// stream reads the task's SSE stream to its end (the terminal event).
func stream(t *testing.T, url, taskID string) []taskbridge.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/tasks/"+taskID+"/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var evs []taskbridge.TaskEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev taskbridge.TaskEvent
			require.NoError(t, json.Unmarshal([]byte(data), &ev))
			evs = append(evs, ev)
		}
	}
	require.NotEmpty(t, evs)
	require.True(t, evs[len(evs)-1].Terminal())
	for i, ev := range evs {
		require.Equal(t, fmt.Sprint(i+1), ev.EventID, "every event once, in order")
	}
	return evs
}
