package river_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
)

const waitTimeout = 30 * time.Second

// proc is a started example process.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs bin with args and waits until it prints a line starting with
// ready; it returns the rest of that line. The process gets SIGTERM when
// the test ends (SIGKILL if it does not exit within 10s).
func start(t *testing.T, name, bin, ready string, args ...string) (*proc, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &proc{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.out
	require.NoError(t, cmd.Start())
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	timeout := time.After(waitTimeout)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited before it was ready:\n%s", name, p.out.String())
			}
			if rest, found := strings.CutPrefix(line, ready); found {
				go func() {
					for range lines {
					}
				}()
				return p, rest
			}
		case <-timeout:
			t.Fatalf("%s not ready within %v:\n%s", name, waitTimeout, p.out.String())
		}
	}
}

// stop sends sig and waits for the exit (killing after 10s).
func (p *proc) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// example is the built server and worker binaries on a private schema.
type example struct {
	db       *pgtest.DB
	bin      string
	base     string // server URL
	client   *http.Client
	workerNo int
}

func setup(t *testing.T) *example {
	t.Helper()
	db := pgtest.NewDB(t, "tbriverex", 4)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./server", "./worker")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	e := &example{db: db, bin: bin, client: &http.Client{Timeout: waitTimeout}}
	_, url := start(t, "server", filepath.Join(bin, "server"), "listening on ",
		"-addr", "127.0.0.1:0", "-postgres-url", db.URL, "-schema", db.Schema)
	e.base = url
	return e
}

// worker starts a worker process.
func (e *example) worker(t *testing.T, args ...string) *proc {
	t.Helper()
	e.workerNo++
	p, _ := start(t, fmt.Sprint("worker ", e.workerNo), filepath.Join(e.bin, "worker"), "worker started",
		append([]string{"-postgres-url", e.db.URL, "-schema", e.db.Schema, "-workers", "4"}, args...)...)
	return p
}

func (e *example) do(t *testing.T, method, path string, body any, header ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	return resp
}

func (e *example) json(t *testing.T, method, path string, body any, wantStatus int, out any) {
	t.Helper()
	resp := e.do(t, method, path, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, wantStatus, resp.StatusCode, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
}

func (e *example) create(t *testing.T, requestID, taskType string, input map[string]any) string {
	t.Helper()
	var resp taskbridge.CreateTaskResponse
	e.json(t, http.MethodPost, "/api/v1/tasks", map[string]any{
		"clientRequestId": requestID, "taskType": taskType, "input": input}, http.StatusCreated, &resp)
	return resp.TaskID
}

// poll long-polls the task's events after the cursor until until says
// stop, and returns every event it saw.
func (e *example) poll(t *testing.T, taskID string, until func(taskbridge.TaskEvent) bool) []taskbridge.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var all []taskbridge.TaskEvent
	after := ""
	for time.Now().Before(deadline) {
		var page taskbridge.PollResponse
		e.json(t, http.MethodGet, "/api/v1/tasks/"+taskID+"/events?waitTimeoutMs=5000&afterEventId="+after, nil, http.StatusOK, &page)
		for _, ev := range page.Events {
			all = append(all, ev)
			if until(ev) {
				return all
			}
		}
		if page.NextAfterEventID != nil {
			after = *page.NextAfterEventID
		}
	}
	t.Fatalf("task %s: condition not met within %v; events: %v", taskID, waitTimeout, types(all))
	return nil
}

// stream reads the task's SSE stream from lastEventID until the stream
// ends (after the terminal event).
func (e *example) stream(t *testing.T, taskID, lastEventID string) []taskbridge.TaskEvent {
	t.Helper()
	resp := e.do(t, http.MethodGet, "/api/v1/tasks/"+taskID+"/events/stream", nil, "Last-Event-ID", lastEventID)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var evs []taskbridge.TaskEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev taskbridge.TaskEvent
		require.NoError(t, json.Unmarshal([]byte(data), &ev))
		if ev.Type == "HEARTBEAT" {
			continue
		}
		evs = append(evs, ev)
		if ev.Type.Terminal() {
			break
		}
	}
	return evs
}

func types(evs []taskbridge.TaskEvent) []taskbridge.EventType {
	out := make([]taskbridge.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func requireIDs(t *testing.T, evs []taskbridge.TaskEvent, first int) {
	t.Helper()
	for i, ev := range evs {
		require.Equal(t, fmt.Sprint(first+i), ev.EventID, "events arrive once each, in order")
	}
}

func decode[P any](t *testing.T, ev taskbridge.TaskEvent) P {
	t.Helper()
	p, err := taskbridge.DecodePayload(ev)
	require.NoError(t, err)
	out, ok := p.(P)
	require.True(t, ok, "%s payload is %T", ev.Type, p)
	return out
}

// TestServerAndWorkers runs the server and two workers as separate
// processes on one database and drives tasks through the server's HTTP
// API: streamed progress, an approval, a cancel, and a worker crash.
func TestServerAndWorkers(t *testing.T) {
	e := setup(t)
	w1 := e.worker(t)
	w2 := e.worker(t)

	t.Run("Stream", func(t *testing.T) {
		id := e.create(t, "g1", "greet", map[string]any{"name": "Ada", "steps": 3, "stepDelayMs": 20})
		evs := e.stream(t, id, "")
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskStarted, taskbridge.EventTaskProgress,
			taskbridge.EventTaskProgress, taskbridge.EventTaskProgress, taskbridge.EventTaskCompleted}, types(evs))
		requireIDs(t, evs, 1)
		require.Equal(t, map[string]any{"greeting": "Hello, Ada!"}, decode[taskbridge.CompletedPayload](t, evs[4]).Result)
	})

	t.Run("Approval", func(t *testing.T) {
		id := e.create(t, "a1", "approval", nil)
		evs := e.poll(t, id, func(ev taskbridge.TaskEvent) bool { return ev.Type == taskbridge.EventTaskSuspended })
		sus := decode[taskbridge.SuspendedPayload](t, evs[len(evs)-1])
		var resp taskbridge.ActionResponse
		e.json(t, http.MethodPost, "/api/v1/tasks/"+id+"/actions", map[string]any{
			"clientActionId": "approve-1", "suspendId": sus.SuspendID, "actionType": "approve"}, http.StatusAccepted, &resp)
		require.Equal(t, taskbridge.ActionAccepted, resp.Status)
		rest := e.stream(t, id, evs[len(evs)-1].EventID)
		require.Equal(t, []taskbridge.EventType{taskbridge.EventTaskActionAccepted, taskbridge.EventTaskCompleted}, types(rest))
		requireIDs(t, rest, len(evs)+1)
		require.Equal(t, map[string]any{"approved": true}, decode[taskbridge.CompletedPayload](t, rest[1]).Result)
	})

	t.Run("Cancel", func(t *testing.T) {
		id := e.create(t, "c1", "count", map[string]any{"count": 10000, "intervalMs": 50})
		e.poll(t, id, func(ev taskbridge.TaskEvent) bool { return ev.Type == taskbridge.EventTaskMessage })
		var resp taskbridge.CancelResponse
		e.json(t, http.MethodPost, "/api/v1/tasks/"+id+"/cancel", map[string]any{"reason": "enough"}, http.StatusAccepted, &resp)
		require.Equal(t, taskbridge.CancelRequested, resp.Status)
		evs := e.stream(t, id, "")
		requireIDs(t, evs, 1)
		last := evs[len(evs)-1]
		require.Equal(t, taskbridge.EventTaskCancelled, last.Type)
		require.Equal(t, "enough", decode[taskbridge.CancelledPayload](t, last).Reason)
	})

	t.Run("WorkerCrash", func(t *testing.T) {
		id := e.create(t, "k1", "count", map[string]any{"count": 40, "intervalMs": 50})
		seen := e.poll(t, id, func(ev taskbridge.TaskEvent) bool { return ev.EventID == "4" })
		// Both workers die at once, without a chance to hand the job back.
		w1.stop(syscall.SIGKILL)
		w2.stop(syscall.SIGKILL)
		// The job's row still says running. Make it look as old as River's
		// rescue delay, and drop the dead leader's lease, so that the next
		// worker's rescuer takes it over at once.
		ctx := t.Context()
		// Only this task's job: River completes jobs asynchronously, so the
		// cancelled job of the previous subtest may still say running too.
		tag, err := e.db.Pool.Exec(ctx, "UPDATE "+pgx.Identifier{e.db.Schema, "river_job"}.Sanitize()+
			` SET attempted_at = now() - interval '2 hours' WHERE state = 'running' AND args->>'task_id' = $1`, id)
		require.NoError(t, err)
		require.Equal(t, int64(1), tag.RowsAffected(), "the crashed job is left running")
		_, err = e.db.Pool.Exec(ctx, "DELETE FROM "+pgx.Identifier{e.db.Schema, "river_leader"}.Sanitize())
		require.NoError(t, err)
		e.worker(t)

		evs := e.stream(t, id, "")
		requireIDs(t, evs, 1)
		require.Equal(t, taskbridge.EventTaskCompleted, evs[len(evs)-1].Type)
		require.Len(t, evs, 1+40+1, "STARTED, every message once, one terminal event")
		for i, ev := range evs[1:41] {
			require.Equal(t, fmt.Sprintf("message %d of 40", i+1), decode[taskbridge.MessagePayload](t, ev).Message)
		}
		require.Equal(t, seen, evs[:len(seen)], "the events seen before the crash are kept as they were")
	})
}
