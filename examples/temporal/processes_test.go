package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
)

// childArgsEnv makes this test binary run the example, with the JSON array
// of arguments it holds, instead of the tests: a separate process that can
// be killed.
const childArgsEnv = "TASKBRIDGE_TEMPORAL_EXAMPLE_ARGS"

// runChild runs the example and exits when the binary was started by
// startProcess; otherwise it returns.
func runChild() {
	raw := os.Getenv(childArgsEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, "child arguments:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// process is the example running as a child process.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	stderr strings.Builder
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startProcess runs the example with args in a child process and waits for
// the stdout line starting with ready; it returns the rest of that line.
// The process is stopped (SIGTERM) when the test ends, if not before.
func startProcess(t *testing.T, ready string, args ...string) (*process, string) {
	t.Helper()
	raw, err := json.Marshal(args)
	require.NoError(t, err)
	p := &process{cmd: exec.Command(os.Args[0], "-test.run=^$"), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), childArgsEnv+"="+string(raw))
	p.cmd.Stderr = p
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), ready); ok {
				found <- rest
			}
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("example %v:\n%s", args, p.output())
		}
	})
	select {
	case rest := <-found:
		return p, rest
	case <-p.exited:
		t.Fatalf("the example exited before %q:\n%s", ready, p.output())
	case <-time.After(waitTimeout):
		t.Fatalf("no %q from the example within %v:\n%s", ready, waitTimeout, p.output())
	}
	return nil, ""
}

// signal sends sig and waits for the process to exit (killing it after
// waitTimeout).
func (p *process) signal(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(waitTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// TestProcesses runs servers and workers as separate processes on one
// PostgreSQL schema and one Temporal task queue: tasks go on when a worker
// is killed or the server restarts, and no event is lost or repeated.
func TestProcesses(t *testing.T) {
	addr := temporalAddr(t)
	db := pgtest.NewDB(t, "tbtemporalex", 1)
	common := []string{"-temporal", addr, "-task-queue", "example-" + uuid.NewString(),
		"-store", "postgres", "-postgres-url", db.URL, "-postgres-schema", db.Schema, "-log-level", "warn"}
	server := func() (*process, string) {
		return startProcess(t, "listening on ", append([]string{"-role", "server", "-addr", "127.0.0.1:0"}, common...)...)
	}
	worker := func() *process {
		p, _ := startProcess(t, "worker polling ", append([]string{"-role", "worker", "-activity-timeout", "2s"}, common...)...)
		return p
	}
	srv, url := server()
	w := worker()

	greet := create(t, url, "greet", `{"name":"Ada","steps":2,"stepDelayMs":0}`)
	require.JSONEq(t, `{"result":{"greeting":"Hello, Ada!"}}`, string(stream(t, url, greet)[3].Payload))

	// The worker dies (kill -9) in the middle of a task; a new one takes
	// over: the task's events are all there, once each.
	long := create(t, url, "greet", `{"name":"Bo","steps":4,"stepDelayMs":500}`)
	waitFor(t, url, long, func(ev taskbridge.TaskEvent) bool { return ev.Type == taskbridge.EventTaskProgress })
	w.signal(syscall.SIGKILL)
	worker()
	evs := stream(t, url, long)
	require.Len(t, evs, 6)
	require.JSONEq(t, `{"result":{"greeting":"Hello, Bo!"}}`, string(evs[5].Payload))

	// The server dies (kill -9) while one task waits for an approval and
	// another runs; the worker goes on alone, and a new server serves
	// both tasks to their ends.
	approval := create(t, url, "approval", `{}`)
	sus := waitFor(t, url, approval, func(ev taskbridge.TaskEvent) bool { return ev.Type == taskbridge.EventTaskSuspended })
	running := create(t, url, "greet", `{"name":"Cy","steps":3,"stepDelayMs":500}`)
	waitFor(t, url, running, func(ev taskbridge.TaskEvent) bool { return ev.Type == taskbridge.EventTaskStarted })
	srv.signal(syscall.SIGKILL)
	_, url = server()
	var p taskbridge.SuspendedPayload
	require.NoError(t, json.Unmarshal(sus.Payload, &p))
	do(t, http.MethodPost, url+"/api/v1/tasks/"+approval+"/actions",
		fmt.Sprintf(`{"clientActionId":"a1","suspendId":%q,"actionType":"reject"}`, p.SuspendID), http.StatusAccepted, nil)
	evs = stream(t, url, approval)
	require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskSuspended,
		taskbridge.EventTaskActionAccepted, taskbridge.EventTaskCompleted}, types(evs))
	require.JSONEq(t, `{"result":{"approved":false}}`, string(evs[3].Payload))
	require.Len(t, stream(t, url, running), 5)

	// A cancel through the new server reaches the workflow.
	cancelled := create(t, url, "approval", `{}`)
	waitFor(t, url, cancelled, func(ev taskbridge.TaskEvent) bool { return ev.Type == taskbridge.EventTaskSuspended })
	do(t, http.MethodPost, url+"/api/v1/tasks/"+cancelled+"/cancel", `{"reason":"not needed"}`, http.StatusAccepted, nil)
	evs = stream(t, url, cancelled)
	require.JSONEq(t, `{"reason":"not needed","message":"Task cancelled by the client"}`, string(evs[len(evs)-1].Payload))
}

// waitFor long-polls the task until an event satisfies ok and returns it.
func waitFor(t *testing.T, url, taskID string, ok func(taskbridge.TaskEvent) bool) taskbridge.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	after := "0"
	for time.Now().Before(deadline) {
		var poll taskbridge.PollResponse
		do(t, http.MethodGet, url+"/api/v1/tasks/"+taskID+"/events?waitTimeoutMs=2000&afterEventId="+after, "", http.StatusOK, &poll)
		for _, ev := range poll.Events {
			if ok(ev) {
				return ev
			}
			after = ev.EventID
		}
	}
	t.Fatalf("task %s: no such event within %v", taskID, waitTimeout)
	return taskbridge.TaskEvent{}
}

func types(evs []taskbridge.TaskEvent) []taskbridge.EventType {
	out := make([]taskbridge.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}
