package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// serverAPI is how the clients drive a server under test: a tbload server
// ([controlClient]) or Centrifugo ([centrifugoClient]).
type serverAPI interface {
	// createTasks creates n started tasks (Centrifugo: channels).
	createTasks(ctx context.Context, n int) ([]string, error)
	// publish publishes events and returns when it is done.
	publish(ctx context.Context, req publishRequest) (publishResponse, error)
	// stats reads the server's statistics, after collecting garbage if gc.
	stats(ctx context.Context, gc bool) (serverStats, error)
	// startProfile and stopProfile bracket a CPU profile of the server.
	startProfile(ctx context.Context, path string) error
	stopProfile(ctx context.Context) error
	// health times one health check.
	health(ctx context.Context) (time.Duration, error)
	// dial opens a stream subscribed to the task after its first event.
	dial(ctx context.Context, transport, taskID string, bufSize int) (stream, error)
	// closeIdle releases the client's idle HTTP connections.
	closeIdle()
}

// controlClient calls a tbload server's control endpoints.
type controlClient struct {
	addr string
	http *http.Client
}

func newControlClient(addr string) *controlClient {
	return &controlClient{addr: addr, http: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
}

func (c *controlClient) closeIdle() { c.http.CloseIdleConnections() }

func (c *controlClient) dial(ctx context.Context, transport, taskID string, bufSize int) (stream, error) {
	return dialStream(ctx, protoTaskbridge, transport, c.addr, taskID, bufSize)
}

// call sends a request with an optional JSON body and decodes the JSON
// answer into out, when set.
func (c *controlClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, statusError(resp))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *controlClient) createTasks(ctx context.Context, n int) ([]string, error) {
	var resp tasksResponse
	if err := c.call(ctx, http.MethodPost, "/bench/tasks", tasksRequest{Count: n}, &resp); err != nil {
		return nil, err
	}
	if len(resp.TaskIDs) != n {
		return nil, fmt.Errorf("asked for %d tasks, got %d", n, len(resp.TaskIDs))
	}
	return resp.TaskIDs, nil
}

func (c *controlClient) publish(ctx context.Context, req publishRequest) (publishResponse, error) {
	var resp publishResponse
	err := c.call(ctx, http.MethodPost, "/bench/publish", req, &resp)
	return resp, err
}

func (c *controlClient) stats(ctx context.Context, gc bool) (serverStats, error) {
	var st serverStats
	path := "/debug/stats"
	if gc {
		path += "?gc=1"
	}
	err := c.call(ctx, http.MethodGet, path, nil, &st)
	return st, err
}

// startProfile starts a CPU profile of the server, written to path (on the
// server's machine, which is this one).
func (c *controlClient) startProfile(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, "/debug/profile/start?path="+url.QueryEscape(abs), nil, nil)
}

func (c *controlClient) stopProfile(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/debug/profile/stop", nil, nil)
}

// health times one GET /health.
func (c *controlClient) health(ctx context.Context) (time.Duration, error) {
	return timeGet(ctx, c.http, c.addr, "/health")
}

// timeGet times a GET of path that must answer 2xx.
func timeGet(ctx context.Context, hc *http.Client, addr, path string) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("GET %s: %w", path, statusError(resp))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return time.Since(start), err
}

// target is where a client mode finds its server: a running one (-addr) or
// a child process it starts (-spawn).
type target struct {
	addr      string
	kind      string
	spawn     string
	heartbeat time.Duration
	sseHijack bool
}

// flags registers -addr, -kind, -spawn, -spawn-heartbeat and
// -spawn-sse-hijack on fs.
func (t *target) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.addr, "addr", "", "address (host:port) of a running server: see -kind")
	fs.StringVar(&t.kind, "kind", "tbload", "what runs at -addr: tbload (`tbload server` or `tbload baseline-server`)\n"+
		"or centrifugo (a Centrifugo v6 server configured as described in docs/BENCHMARKS.md)")
	fs.StringVar(&t.spawn, "spawn", "", "start the server as a child process instead of -addr: taskbridge or baseline")
	fs.DurationVar(&t.heartbeat, "spawn-heartbeat", 0, "heartbeat interval of a spawned server (0: its default, 15s)")
	fs.BoolVar(&t.sseHijack, "spawn-sse-hijack", false, "have a spawned taskbridge server serve SSE streams on the hijacked\n"+
		"connection (sse.Config.Hijack) instead of inside ServeHTTP")
}

// start returns the server and a function that stops it if it was spawned.
func (t *target) start(ctx context.Context) (srv serverAPI, stop func() error, err error) {
	switch {
	case t.spawn == "" && t.addr == "":
		return nil, nil, errors.New("either -addr or -spawn is required")
	case t.spawn != "" && t.addr != "":
		return nil, nil, errors.New("-addr and -spawn are exclusive")
	case t.sseHijack && t.spawn != "taskbridge":
		return nil, nil, errors.New("-spawn-sse-hijack needs -spawn taskbridge")
	case t.addr != "" && t.kind == "centrifugo":
		return newCentrifugoClient(t.addr), func() error { return nil }, nil
	case t.kind != "tbload":
		return nil, nil, fmt.Errorf("-kind must be tbload or centrifugo (with -addr), not %q", t.kind)
	case t.addr != "":
		return newControlClient(t.addr), func() error { return nil }, nil
	}
	mode := map[string]string{"taskbridge": "server", "baseline": "baseline-server"}[t.spawn]
	if mode == "" {
		return nil, nil, fmt.Errorf("-spawn must be taskbridge or baseline, not %q", t.spawn)
	}
	args := []string{mode, "-addr", "127.0.0.1:0", "-heartbeat", t.heartbeat.String()}
	if t.sseHijack {
		args = append(args, "-sse-hijack")
	}
	addr, stop, err := spawnServer(ctx, args...)
	if err != nil {
		return nil, nil, err
	}
	return newControlClient(addr), stop, nil
}

// spawnServer runs this executable in a server mode as a child process and
// waits for its "listening <addr>" line. stop interrupts the child and
// waits for it.
func spawnServer(ctx context.Context, args ...string) (addr string, stop func() error, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	lines := make(chan string, 1)
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	cmd.Stdout = &firstLine{c: lines}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		return <-exited
	}
	select {
	case line := <-lines:
		if addr, found := strings.CutPrefix(line, "listening "); found {
			return addr, stop, nil
		}
		err = fmt.Errorf("spawned server said %q", line)
	case err := <-exited:
		return "", nil, fmt.Errorf("spawned server exited: %v", err)
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(30 * time.Second):
		err = errors.New("spawned server did not start within 30s")
	}
	_ = stop()
	return "", nil, err
}

// firstLine is a child's stdout: it sends the first line to c and discards
// the rest.
type firstLine struct {
	c    chan<- string
	buf  []byte
	sent bool
}

func (w *firstLine) Write(p []byte) (int, error) {
	if w.sent {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
		w.c <- string(w.buf[:i])
		w.sent, w.buf = true, nil
	}
	return len(p), nil
}
