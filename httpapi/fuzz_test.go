package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// The fuzz targets send what a client may send to one handler and check
// three properties of every answer: no panic; no 5xx for a client's mistake;
// and a refused request (4xx) changes nothing: no store write, no file left
// in the upload sink. Their seed corpora (testdata/fuzz/FuzzXxx) run as
// ordinary tests; .ci/run fuzzes each target for a bounded time.

// countingStore counts the writes that change a memstore.
type countingStore struct {
	*memstore.Store
	writes atomic.Int64
}

func (s *countingStore) CreateTask(ctx context.Context, t taskbridge.Task) (taskbridge.Task, bool, error) {
	got, created, err := s.Store.CreateTask(ctx, t)
	if created {
		s.writes.Add(1)
	}
	return got, created, err
}

func (s *countingStore) RequestCancel(ctx context.Context, taskID, reason string, now time.Time) (taskbridge.Task, bool, error) {
	t, first, err := s.Store.RequestCancel(ctx, taskID, reason, now)
	if first {
		s.writes.Add(1)
	}
	return t, first, err
}

func (s *countingStore) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	got, err := s.Store.Append(ctx, ev)
	if err == nil {
		s.writes.Add(1)
	}
	return got, err
}

func (s *countingStore) AcceptAction(ctx context.Context, a taskbridge.ActionAttempt) (taskbridge.AcceptResult, error) {
	res, err := s.Store.AcceptAction(ctx, a)
	if err == nil && res.Status == taskbridge.ActionAccepted {
		s.writes.Add(1)
	}
	return res, err
}

func (s *countingStore) CloseSuspension(ctx context.Context, taskID, suspendID string, status taskbridge.SuspensionStatus, now time.Time) (taskbridge.Suspension, bool, error) {
	sp, changed, err := s.Store.CloseSuspension(ctx, taskID, suspendID, status, now)
	if changed {
		s.writes.Add(1)
	}
	return sp, changed, err
}

// countingSink counts the files of an upload sink that are not discarded.
type countingSink struct {
	httpapi.TempDirSink
	live atomic.Int64
}

func (s *countingSink) Create(ctx context.Context, auth taskbridge.AuthContext, info taskbridge.UploadInfo) (string, io.WriteCloser, error) {
	ref, w, err := s.TempDirSink.Create(ctx, auth, info)
	if ref != "" {
		s.live.Add(1)
	}
	return ref, w, err
}

func (s *countingSink) Discard(ctx context.Context, ref string) error {
	s.live.Add(-1)
	return s.TempDirSink.Discard(ctx, ref)
}

// fuzzEnv is one service and handler shared by a fuzz target's inputs.
type fuzzEnv struct {
	h         *httpapi.Handler
	store     *countingStore
	sink      *countingSink
	svc       *taskbridge.Service
	suspended string // a RUNNING task of alice with open suspension "s1"
	ended     string // a COMPLETED task of alice with events 1..3
	mu        sync.Mutex
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	store := &countingStore{Store: memstore.New(memstore.Config{})}
	svc, err := taskbridge.New(taskbridge.Config{
		Store: store, Executor: &fakeExec{}, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(f, err)
	sink := &countingSink{TempDirSink: httpapi.TempDirSink{Dir: f.TempDir()}}
	h, err := httpapi.New(svc, httpapi.Config{Auth: bearerAuth, Sink: sink})
	require.NoError(f, err)
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close()
		require.NoError(f, svc.Shutdown(ctx))
		require.NoError(f, store.Close())
	})
	e := &fuzzEnv{h: h, store: store, sink: sink, svc: svc}
	ctx := context.Background()
	alice := taskbridge.AuthContext{Subject: "alice"}
	mk := func(crid string) string {
		resp, err := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: crid, TaskType: "demo"})
		require.NoError(f, err)
		_, err = svc.Emitter(resp.TaskID).Emit(ctx, taskbridge.StartedPayload{})
		require.NoError(f, err)
		return resp.TaskID
	}
	e.suspended = mk("fuzz-suspended")
	_, err = svc.Emitter(e.suspended).Suspend(ctx, taskbridge.SuspendOpts{
		SuspendID: "s1", ReasonCode: "NEEDS_APPROVAL", AllowedActions: []string{"approve", "reject"},
	})
	require.NoError(f, err)
	e.ended = mk("fuzz-ended")
	_, err = svc.Emitter(e.ended).Emit(ctx, taskbridge.ProgressPayload{Progress: 50})
	require.NoError(f, err)
	_, err = svc.Emitter(e.ended).Emit(ctx, taskbridge.CompletedPayload{Result: "ok"})
	require.NoError(f, err)
	return e
}

// fuzzWait bounds how long one input may keep a request (a long poll, a
// stream) open.
const fuzzWait = 50 * time.Millisecond

// do serves req as alice and checks the properties. Inputs run one at a
// time, so that the write counts belong to one request.
func (e *fuzzEnv) do(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, cancel := context.WithTimeout(req.Context(), fuzzWait)
	defer cancel()
	req = req.WithContext(ctx)
	req.Header.Set("Authorization", "Bearer alice")
	writes, files := e.store.writes.Load(), e.sink.live.Load()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	status := rec.Code
	if ctx.Err() != nil && status >= 500 {
		return rec // the client left (the long poll or stream outlived fuzzWait)
	}
	require.Less(t, status, 500, "a client's request got %d: %s", status, rec.Body.Bytes())
	if status >= 400 {
		require.Equal(t, writes, e.store.writes.Load(), "a refused request (%d) wrote to the store: %s", status, rec.Body.Bytes())
		require.Equal(t, files, e.sink.live.Load(), "a refused request (%d) left files in the sink", status)
		var env taskbridge.ErrorEnvelope
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env), "%d: not an error envelope: %q", status, rec.Body.Bytes())
		require.NotEmpty(t, env.Code)
		require.NotEmpty(t, env.Message)
	}
	return rec
}

func post(path, contentType string, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// getQuery builds a GET of path with a raw query string, which may be
// anything a client can put on the request line.
func getQuery(path, query string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.URL.RawQuery = query
	return req
}

func FuzzCreateJSON(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add([]byte(`{"clientRequestId":"r1","taskType":"demo","input":{"a":1},"metadata":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e.do(t, post("/api/v1/tasks", "application/json", body))
	})
}

func FuzzCreateMultipart(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add("multipart/form-data; boundary=XB", []byte("--XB\r\nContent-Disposition: form-data; name=\"clientRequestId\"\r\n\r\nm1\r\n"+
		"--XB\r\nContent-Disposition: form-data; name=\"taskType\"\r\n\r\ndemo\r\n"+
		"--XB\r\nContent-Disposition: form-data; name=\"attachments\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XB--\r\n"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		if !strings.HasPrefix(contentType, "multipart/") {
			contentType = "multipart/form-data; boundary=XB"
		}
		e.do(t, post("/api/v1/tasks", contentType, body))
	})
}

func FuzzActionBody(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add([]byte(`{"clientActionId":"a1","suspendId":"s1","actionType":"approve","payload":{"ok":true}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := e.do(t, post("/api/v1/tasks/"+e.suspended+"/actions", "application/json", body))
		if rec.Code == http.StatusAccepted {
			// Accepted: open the suspension again for the next input.
			e.reopen(t)
		}
	})
}

// reopen gives e.suspended a fresh open suspension "s1" (in a new task).
func (e *fuzzEnv) reopen(t *testing.T) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx := context.Background()
	alice := taskbridge.AuthContext{Subject: "alice"}
	resp, err := e.svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{ClientRequestID: "fuzz-" + time.Now().Format(time.RFC3339Nano), TaskType: "demo"})
	require.NoError(t, err)
	_, err = e.svc.Emitter(resp.TaskID).Emit(ctx, taskbridge.StartedPayload{})
	require.NoError(t, err)
	_, err = e.svc.Emitter(resp.TaskID).Suspend(ctx, taskbridge.SuspendOpts{
		SuspendID: "s1", ReasonCode: "NEEDS_APPROVAL", AllowedActions: []string{"approve", "reject"},
	})
	require.NoError(t, err)
	e.suspended = resp.TaskID
}

func FuzzPollQuery(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add("afterEventId=2&waitTimeoutMs=0&maxEvents=100")
	f.Fuzz(func(t *testing.T, query string) {
		rec := e.do(t, getQuery("/api/v1/tasks/"+e.ended+"/events", query))
		if rec.Code == http.StatusOK {
			var page taskbridge.PollResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
			require.Equal(t, e.ended, page.TaskID)
		}
	})
}

func FuzzListQuery(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add("limit=1&status=RUNNING,COMPLETED")
	f.Fuzz(func(t *testing.T, query string) {
		e.do(t, getQuery("/api/v1/tasks", query))
	})
}

func FuzzLastEventID(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add("1", "")
	f.Fuzz(func(t *testing.T, header, query string) {
		req := getQuery("/api/v1/tasks/"+e.ended+"/events/stream", query)
		if header != "" {
			req.Header["Last-Event-Id"] = strings.Split(header, "\n")
		}
		rec := e.do(t, req)
		if rec.Code == http.StatusOK && !errors.Is(req.Context().Err(), context.DeadlineExceeded) {
			require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream"))
		}
	})
}
