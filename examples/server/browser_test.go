package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// browserDir holds the browser tests' npm project (playwright-core) and the
// script that drives the page.
const browserDir = "testdata/browser"

// requireServicesEnv makes missing browser tooling a failure instead of a
// skip (CI sets it).
const requireServicesEnv = "TASKBRIDGE_REQUIRE_SERVICES"

// browserTooling returns the node and Chromium executables, skipping the
// test when they or node_modules are missing (failing it when
// TASKBRIDGE_REQUIRE_SERVICES=1).
func browserTooling(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv(requireServicesEnv) == "1" {
			t.Fatalf("%s (required: %s=1)", msg, requireServicesEnv)
		}
		t.Skipf("%s; install Chromium (apt-get install chromium) and run `npm ci --prefix examples/server/%s` to run the browser tests", msg, browserDir)
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("no Chromium at %s", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core is not installed in %s/node_modules", browserDir)
	}
	return node, chromium
}

// testHooks wraps the demo server for the browser tests with hooks the
// script calls: POST /__test/record?on=1|0 switches the recording of stream
// requests (their cursors and connections); POST /__test/cut closes the
// recorded SSE connections (the page must resume without losing or
// repeating events). With ?rejectNext=1 the next stream request is answered
// with 503; with ?rewind=N its cursor is moved N events back, so the server
// sends events the page has already shown, which it must drop.
type testHooks struct {
	next http.Handler

	mu         sync.Mutex
	conns      []net.Conn
	rejectNext bool
	rewind     int
	recording  bool
	requests   []streamRequest
}

// streamRequest is how a stream request asked to resume.
type streamRequest struct {
	header, query string // Last-Event-ID header, lastEventId parameter
	rejected      bool
	rewound       string // the cursor passed on after a rewind
}

// rewindCursor moves the request's cursor (header or parameter) n events
// back and returns the new one.
func rewindCursor(r *http.Request, n int) string {
	cur := r.Header.Get("Last-Event-ID")
	if cur == "" {
		cur = r.URL.Query().Get("lastEventId")
	}
	seq, err := taskbridge.ParseEventID(cur)
	if err != nil || seq == 0 {
		return ""
	}
	back := taskbridge.FormatEventID(max(seq-int64(n), 0))
	if r.Header.Get("Last-Event-ID") != "" {
		r.Header.Set("Last-Event-ID", back)
	} else {
		q := r.URL.Query()
		q.Set("lastEventId", back)
		r.URL.RawQuery = q.Encode()
	}
	return back
}

type connKey struct{}

func (h *testHooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/__test/cut":
		h.mu.Lock()
		n := len(h.conns)
		for _, conn := range h.conns {
			_ = conn.Close()
		}
		h.conns = nil
		h.rejectNext = r.URL.Query().Get("rejectNext") == "1"
		h.rewind, _ = strconv.Atoi(r.URL.Query().Get("rewind"))
		h.mu.Unlock()
		_, _ = w.Write([]byte(strconv.Itoa(n)))
		return
	case r.Method == http.MethodPost && r.URL.Path == "/__test/record":
		h.mu.Lock()
		h.recording = r.URL.Query().Get("on") == "1"
		h.mu.Unlock()
		return
	case strings.HasSuffix(r.URL.Path, "/events/stream"):
		req := streamRequest{header: r.Header.Get("Last-Event-ID"), query: r.URL.Query().Get("lastEventId")}
		h.mu.Lock()
		req.rejected, h.rejectNext = h.rejectNext, false
		if h.rewind > 0 && !req.rejected {
			req.rewound = rewindCursor(r, h.rewind)
			h.rewind = 0
		}
		if h.recording {
			h.requests = append(h.requests, req)
			if !req.rejected {
				h.conns = append(h.conns, r.Context().Value(connKey{}).(net.Conn))
			}
		}
		h.mu.Unlock()
		if req.rejected {
			httpx.WriteError(w, r, nil, time.Now(), taskbridge.ErrClosed)
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

func (h *testHooks) streamRequests() []streamRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]streamRequest(nil), h.requests...)
}

// scenarioResult is one line of the script's output.
type scenarioResult struct {
	Scenario   string          `json:"scenario"`
	OK         bool            `json:"ok"`
	MS         int64           `json:"ms"`
	Error      string          `json:"error"`
	PageErrors []string        `json:"pageErrors"`
	State      json.RawMessage `json:"state"`
}

// browserScenarios are the script's scenarios: (a) approve, (b) cut, (c)
// cancel, and the other transports, the fallback, progress and errors.
var browserScenarios = []string{"approve", "reject-ws", "approve-poll", "greet", "fallback", "cut", "cancel", "errors"}

// TestBrowser drives the demo page in headless Chromium, one scenario per
// subtest. The script runs them all in one browser, one after the other,
// against one server.
func TestBrowser(t *testing.T) {
	node, chromium := browserTooling(t)
	app, err := newServer(config{Logger: testLogger(t), HeartbeatInterval: time.Second, TaskGrace: time.Millisecond})
	require.NoError(t, err)
	hooks := &testHooks{next: app}
	e := serve(t, app, hooks, func(srv *http.Server) {
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"demo.mjs", e.ts.URL}, browserScenarios...)...)
	cmd.Dir = browserDir
	shots := t.TempDir()
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "SCREENSHOTS="+shots)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	results := map[string]scenarioResult{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r scenarioResult
		if json.Unmarshal([]byte(line), &r) == nil && r.Scenario != "" {
			results[r.Scenario] = r
		}
	}
	for _, name := range browserScenarios {
		t.Run(name, func(t *testing.T) {
			r, ok := results[name]
			require.True(t, ok, "the script did not report %s (%v):\nstdout:\n%s\nstderr:\n%s", name, runErr, stdout.String(), stderr.String())
			require.True(t, r.OK, "%s\npage errors: %v\npage state: %s", r.Error, r.PageErrors, r.State)
			t.Logf("%s passed in %d ms", name, r.MS)
			if name == "cut" {
				requireResumes(t, hooks.streamRequests())
			}
		})
	}
	require.NoError(t, runErr, "stderr:\n%s", stderr.String())
}

// requireResumes checks how the page reconnected in the "cut" scenario:
// first from the start, then the browser's own reconnect with the
// Last-Event-ID header (rewound by 3 events, so the page got duplicates to
// drop), then the refused reconnect, then the page's own reconnect with the
// lastEventId parameter.
func requireResumes(t *testing.T, reqs []streamRequest) {
	t.Helper()
	require.GreaterOrEqual(t, len(reqs), 4, "stream requests: %+v", reqs)
	require.Equal(t, streamRequest{}, reqs[0], "the first stream starts from the beginning")
	require.NotEmpty(t, reqs[1].header, "EventSource resumes with Last-Event-ID: %+v", reqs)
	require.False(t, reqs[1].rejected)
	n, err := strconv.Atoi(reqs[1].header)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(n-3), reqs[1].rewound, "the hook replayed 3 events the page had shown")
	require.True(t, reqs[2].rejected, "requests: %+v", reqs)
	require.NotEmpty(t, reqs[2].header, "requests: %+v", reqs)
	last := reqs[len(reqs)-1]
	require.False(t, last.rejected)
	require.Empty(t, last.header, "a new EventSource sends no Last-Event-ID")
	require.NotEmpty(t, last.query, "the page resumes with ?lastEventId: %+v", reqs)
	n1, err := strconv.Atoi(reqs[1].header)
	require.NoError(t, err)
	n2, err := strconv.Atoi(last.query)
	require.NoError(t, err)
	require.Less(t, n1, n2, "the cursor moves forward")
}
