package streamtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// clientsEnv turns a test binary into an idle-client process; its value is
// "<kind> <addr> <subject>".
const clientsEnv = "STREAMTEST_IDLE_CLIENTS"

// MaybeRunClients makes a test binary started by [StartIdleClients] run its
// clients instead of the tests. Call it first in TestMain.
func MaybeRunClients() {
	spec := os.Getenv(clientsEnv)
	if spec == "" {
		return
	}
	if err := runClients(spec); err != nil {
		fmt.Fprintln(os.Stderr, "streamtest clients:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// StartIdleClients starts this test binary again as a separate process that
// opens one stream per task id to the server at addr and leaves it idle:
// kind "sse" sends GET /api/v1/tasks/{id}/events/stream and reads the
// response headers, kind "ws" upgrades /api/v1/tasks/ws, subscribes and
// reads the confirmation. It returns once every stream is established, so
// the caller can measure the server's cost per idle stream without the
// clients' memory in its process. stop closes the streams and waits for the
// process. The test binary's TestMain must call [MaybeRunClients].
func StartIdleClients(tb testing.TB, kind, addr, subject string, taskIDs []string) (stop func()) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientsEnv+"="+kind+" "+addr+" "+subject)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(tb, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	_, err = fmt.Fprintln(stdin, strings.Join(taskIDs, "\n")+"\n")
	require.NoError(tb, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = stdin.Close()
		_ = cmd.Wait()
		tb.Fatalf("idle clients failed to start: %q %v", line, err)
	}
	return func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}
}

func runClients(spec string) error {
	var kind, addr, subject string
	if _, err := fmt.Sscan(spec, &kind, &addr, &subject); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	var conns []net.Conn
	for in.Scan() && in.Text() != "" {
		c, err := openIdle(kind, addr, subject, in.Text())
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	if _, err := fmt.Println("ready"); err != nil {
		return err
	}
	for in.Scan() {
	}
	runtime.KeepAlive(conns)
	return nil
}

func openIdle(kind, addr, subject, taskID string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, 512)
	switch kind {
	case "sse":
		_, err = fmt.Fprintf(c, "GET /api/v1/tasks/%s/events/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", taskID, addr, subject)
		if err == nil {
			err = expectStatus(br, http.StatusOK)
		}
	case "ws":
		sub, _ := json.Marshal(map[string]string{"action": "subscribe", "taskId": taskID})
		req := HandshakeRequest(addr, "/api/v1/tasks/ws", Bearer(subject))
		_, err = c.Write(append(req, ClientFrame(1, sub)...))
		if err == nil {
			err = expectStatus(br, http.StatusSwitchingProtocols)
		}
		if err == nil {
			var op byte
			var payload []byte
			op, payload, err = ReadServerFrame(br)
			if err == nil && (op != 1 || !strings.Contains(string(payload), "SUBSCRIPTION_CONFIRMED")) {
				err = fmt.Errorf("unexpected frame %d %s", op, payload)
			}
		}
	default:
		err = fmt.Errorf("unknown client kind %q", kind)
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func expectStatus(br *bufio.Reader, status int) error {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	return nil
}

// MemSnapshot is the part of runtime.MemStats that idle connections cost.
type MemSnapshot struct {
	Heap, Stack uint64
	Goroutines  int
}

// Mem collects garbage (several times, so idle goroutine stacks shrink) and
// returns the live heap, the stack memory in use and the goroutine count.
func Mem() MemSnapshot {
	for range 5 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return MemSnapshot{Heap: ms.HeapAlloc, Stack: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
}

// ReportPerConn reports the difference between two snapshots per
// connection as benchmark metrics.
func ReportPerConn(b *testing.B, before, after MemSnapshot, n int) {
	heap := float64(int64(after.Heap)-int64(before.Heap)) / float64(n)
	stack := float64(int64(after.Stack)-int64(before.Stack)) / float64(n)
	b.ReportMetric(heap, "heap-B/conn")
	b.ReportMetric(stack, "stack-B/conn")
	b.ReportMetric(heap+stack, "B/conn")
	b.ReportMetric(float64(after.Goroutines-before.Goroutines)/float64(n), "goroutines/conn")
}

// MeasureIdle runs an idle-stream memory benchmark: it creates n tasks,
// serves handler (built over the service by newHandler, which also returns
// its Shutdown), opens one idle stream of the given kind per task from a
// separate process (see StartIdleClients) and reports the server's heap,
// stack and goroutines per stream. The environment variable
// STREAMTEST_IDLE_N overrides n, e.g. 19000 for a full-scale run (each
// process needs n file descriptors).
func MeasureIdle(b *testing.B, kind string, n int, newHandler func(svc *taskbridge.Service) (http.Handler, func(context.Context) error)) {
	if v, err := strconv.Atoi(os.Getenv("STREAMTEST_IDLE_N")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		env := New(b, Options{})
		h, shutdown := newHandler(env.Svc)
		srv := httptest.NewServer(h)
		tasks := make([]string, n)
		for i := range tasks {
			tasks[i] = env.CreateTask(b, "alice")
		}
		before := Mem()
		stop := StartIdleClients(b, kind, srv.Listener.Addr().String(), "alice", tasks)
		after := Mem()
		ReportPerConn(b, before, after, n)
		require.NoError(b, shutdown(context.Background()))
		stop()
		srv.Close()
	}
}
