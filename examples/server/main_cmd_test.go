package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
)

// command is the server command running as a child process (this test
// binary with runMainEnv set, so main runs as with `go run`).
type command struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	url    string
	done   chan error
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newCommand(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	return cmd, stderr
}

// startCommand starts the server command and waits until it listens.
func startCommand(t *testing.T, args ...string) *command {
	t.Helper()
	cmd, stderr := newCommand(t, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &command{cmd: cmd, stderr: stderr, done: make(chan error, 1)}

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	select {
	case line, ok := <-lines:
		require.True(t, ok, "the server exited before listening; stderr:\n%s", stderr.String())
		url, found := strings.CutPrefix(line, "listening on ")
		require.True(t, found, "unexpected first line %q", line)
		c.url = url
	case <-time.After(testTimeout):
		t.Fatalf("the server did not start; stderr:\n%s", stderr.String())
	}
	return c
}

// wait waits for the command to exit and returns its exit code.
func (c *command) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		require.NoError(t, err)
		return 0
	case <-time.After(testTimeout):
		t.Fatalf("the server did not exit; stderr:\n%s", c.stderr.String())
		return -1
	}
}

func httpDo(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: testTimeout}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// TestCommand runs the real command: it starts on a free port, serves a
// task end to end and, on SIGTERM, closes an open stream cleanly and exits
// with status 0.
func TestCommand(t *testing.T) {
	t.Parallel()
	c := startCommand(t, "-addr", "127.0.0.1:0", "-heartbeat-interval", "1s", "-task-grace", "10ms", "-log-level", "debug",
		"-retention", "90m", "-maintenance-interval", "5ms")

	status, b := httpDo(t, http.MethodPost, c.url+"/api/v1/tasks",
		`{"clientRequestId":"cmd-1","taskType":"greet","input":{"name":"Ada","stepDelayMs":0}}`)
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
	var created taskbridge.CreateTaskResponse
	require.NoError(t, json.Unmarshal(b, &created))
	// Long-poll from the start until the terminal event: STARTED, three
	// PROGRESS, COMPLETED. (A cursor ahead of the log, such as 4 before
	// the task ran, would be refused as invalid.)
	var events []taskbridge.TaskEvent
	query := ""
	for len(events) == 0 || !events[len(events)-1].Terminal() {
		status, b = httpDo(t, http.MethodGet, c.url+"/api/v1/tasks/"+created.TaskID+"/events?waitTimeoutMs=10000"+query, "")
		require.Equal(t, http.StatusOK, status, "body: %s", b)
		var poll taskbridge.PollResponse
		require.NoError(t, json.Unmarshal(b, &poll))
		require.NotEmpty(t, poll.Events, "a 10 s long poll on a running greet task returns events")
		events = append(events, poll.Events...)
		require.NotNil(t, poll.NextAfterEventID)
		query = "&afterEventId=" + *poll.NextAfterEventID
	}
	require.Len(t, events, 5)
	require.Equal(t, taskbridge.EventTaskCompleted, events[4].Type)

	// An open stream on a waiting task.
	status, b = httpDo(t, http.MethodPost, c.url+"/api/v1/tasks", `{"clientRequestId":"cmd-2","taskType":"approval"}`)
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
	require.NoError(t, json.Unmarshal(b, &created))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		c.url+"/api/v1/tasks/"+created.TaskID+"/events/stream?access_token=alice", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	for _, want := range []string{"1", "2"} { // TASK_STARTED, TASK_SUSPENDED
		f, err := streamtest.ReadSSE(br)
		require.NoError(t, err)
		for !f.HasID { // the retry field, heartbeats
			f, err = streamtest.ReadSSE(br)
			require.NoError(t, err)
		}
		require.Equal(t, want, f.ID)
	}

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	for {
		f, err := streamtest.ReadSSE(br)
		if errors.Is(err, io.EOF) {
			break // the stream ended cleanly
		}
		require.NoError(t, err)
		require.False(t, f.HasID, "no event after the shutdown started: %+v", f)
	}
	require.Equal(t, 0, c.wait(t), "stderr:\n%s", c.stderr.String())
	require.Contains(t, c.stderr.String(), "shut down cleanly")
	require.Contains(t, c.stderr.String(), "heartbeatInterval=1s")
	require.Contains(t, c.stderr.String(), "retention=1h30m0s maintenanceInterval=5ms maxLiveTasks=20")
	require.Contains(t, c.stderr.String(), "taskbridge: retention pass", "maintenance runs")
}

// TestCommandArguments: unavailable stores and bad flags exit non-zero
// with a clear message and never start a server.
func TestCommandArguments(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-store", "redis", "-redis-url", "http://x"}, 1, "-redis-url: "},
		{[]string{"-store", "redis", "-redis-url", "redis://127.0.0.1:1/0"}, 1, "127.0.0.1:1 does not answer"},
		{[]string{"-store", "redis", "-redis-url", "redis://x", "-postgres-url", "postgres://x"}, 1, "-postgres-url needs -store postgres"},
		{[]string{"-store", "postgres", "-postgres-url", "postgres://127.0.0.1:1/nowhere?connect_timeout=5"}, 1, "creating the PostgreSQL tables"},
		{[]string{"-store", "postgres", "-redis-url", "redis://x"}, 1, "-redis-url needs -store redis"},
		{[]string{"-lease-ttl", "0s"}, 1, "-lease-ttl must be positive"},
		{[]string{"-store", "mongo"}, 1, `-store "mongo" is unknown`},
		{[]string{"-redis-url", "redis://x"}, 1, "need -store redis"},
		{[]string{"-heartbeat-interval", "0s"}, 1, "-heartbeat-interval must be positive"},
		{[]string{"-heartbeat-interval", "soon"}, 2, "invalid value"},
		{[]string{"-task-grace", "-1s"}, 1, "-task-grace must be positive"},
		{[]string{"-retention", "0s"}, 1, "-retention must be positive"},
		{[]string{"-maintenance-interval", "-1m"}, 1, "-maintenance-interval must be positive"},
		{[]string{"-max-live-tasks", "-1"}, 1, "-max-live-tasks must not be negative"},
		{[]string{"-bogus"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected arguments"},
		{[]string{"-addr", "256.0.0.1:99999"}, 1, "server:"},
		{[]string{"-h"}, 0, "-heartbeat-interval"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			cmd, stderr := newCommand(t, c.args...)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, c.code, code, "stderr:\n%s", stderr.String())
			require.Contains(t, stderr.String(), c.msg)
			require.NotContains(t, stdout.String(), "listening on")
		})
	}
}

// TestRun runs the command in-process until its context ends.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, pw, &stderr)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	url := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	status, b := httpDo(t, http.MethodGet, url+"/health", "")
	require.Equal(t, http.StatusOK, status, "body: %s", b)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, stderr.String(), "shut down cleanly")
}

// TestRunMetricsFlag: /metrics is served by default and not with
// -metrics=false.
func TestRunMetricsFlag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args   []string
		status int
	}{
		{nil, http.StatusOK},
		{[]string{"-metrics=false"}, http.StatusNotFound},
	} {
		t.Run(fmt.Sprint(c.args), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pr, pw := io.Pipe()
			var stderr syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, c.args...), pw, &stderr)
				_ = pw.Close()
			}()
			line, err := bufio.NewReader(pr).ReadString('\n')
			require.NoError(t, err, "stderr:\n%s", stderr.String())
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			url := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
			status, b := httpDo(t, http.MethodGet, url+"/metrics", "")
			require.Equal(t, c.status, status, "body: %s", b)
			if c.status == http.StatusOK {
				require.Contains(t, string(b), "go_goroutines")
			}
			cancel()
			require.NoError(t, <-done)
		})
	}
}
