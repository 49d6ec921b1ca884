package streamtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/wsframe"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// Executor is a TaskExecutor that accepts every task and does nothing:
// tests emit events themselves.
type Executor struct{}

// Submit implements taskbridge.TaskExecutor.
func (Executor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }

// Cancel implements taskbridge.TaskExecutor.
func (Executor) Cancel(context.Context, taskbridge.Task) error { return nil }

// Auth authenticates "Authorization: Bearer <subject>".
var Auth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	sub, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || sub == "" {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated
	}
	return taskbridge.AuthContext{Subject: sub}, nil
})

// Bearer returns headers authenticating as subject.
func Bearer(subject string) http.Header {
	return http.Header{"Authorization": {"Bearer " + subject}}
}

// Options configures [New].
type Options struct {
	// MaxEventsPerTask caps each task's retained log (memstore), so
	// EVENTS_EXPIRED can be provoked.
	MaxEventsPerTask int
	// Metrics, when set, receives the service's metrics.
	Metrics *taskbridge.MemoryMetrics
	// Now is the service clock; defaults to time.Now.
	Now func() time.Time
	// Diagnostics, when set, records the service's diagnostics hooks.
	Diagnostics *Recorder
	// Ownership is the service's ownership policy; defaults to the
	// service's default (taskbridge.OwnerOnly).
	Ownership taskbridge.OwnershipPolicy
}

// Env is a service under test.
type Env struct {
	Svc   *taskbridge.Service
	Store *memstore.Store
	seq   atomic.Int64
}

// New returns a service over a fresh in-memory store. The service is shut
// down when the test ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	st := memstore.New(memstore.Config{MaxEventsPerTask: opts.MaxEventsPerTask})
	cfg := taskbridge.Config{
		Store: st, Executor: Executor{}, Now: opts.Now, Ownership: opts.Ownership,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if opts.Metrics != nil {
		cfg.Metrics = opts.Metrics
	}
	if opts.Diagnostics != nil {
		cfg.Diagnostics = opts.Diagnostics.Diagnostics()
	}
	svc, err := taskbridge.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return &Env{Svc: svc, Store: st}
}

// CreateTask creates a task owned by owner and returns its id.
func (e *Env) CreateTask(t testing.TB, owner string) string {
	t.Helper()
	resp, err := e.Svc.CreateTask(context.Background(), taskbridge.AuthContext{Subject: owner},
		taskbridge.CreateTaskRequest{ClientRequestID: fmt.Sprintf("req-%d", e.seq.Add(1)), TaskType: "test"})
	require.NoError(t, err)
	return resp.TaskID
}

// Emit appends an event with payload p to the task.
func (e *Env) Emit(t testing.TB, taskID string, p taskbridge.Payload) taskbridge.TaskEvent {
	t.Helper()
	ev, err := e.Svc.Emitter(taskID).Emit(context.Background(), p)
	require.NoError(t, err)
	return ev
}

// EmitEach runs a delivery benchmark's loop: each op emits the same
// progress event to taskID and calls delivered, which returns once the
// transport has delivered it.
func (e *Env) EmitEach(b *testing.B, taskID string, delivered func()) {
	em := e.Svc.Emitter(taskID)
	ctx := context.Background()
	progress := taskbridge.ProgressPayload{Progress: 0.5, Stage: "render", Message: "rendering page 3 of 7"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := em.Emit(ctx, progress); err != nil {
			b.Fatal(err)
		}
		delivered()
	}
}

// Started starts the task; Progress reports progress; Complete ends it.
func (e *Env) Started(t testing.TB, taskID string) taskbridge.TaskEvent {
	t.Helper()
	return e.Emit(t, taskID, taskbridge.StartedPayload{})
}

// Progress emits a TASK_PROGRESS event.
func (e *Env) Progress(t testing.TB, taskID string, p float64) taskbridge.TaskEvent {
	t.Helper()
	return e.Emit(t, taskID, taskbridge.ProgressPayload{Progress: p})
}

// Complete emits TASK_COMPLETED.
func (e *Env) Complete(t testing.TB, taskID string) taskbridge.TaskEvent {
	t.Helper()
	return e.Emit(t, taskID, taskbridge.CompletedPayload{Result: map[string]any{"ok": true}})
}

// SSEFrame is one Server-Sent Events frame as a client sees it.
type SSEFrame struct {
	// ID is the id field; HasID reports whether the frame had one.
	ID    string
	HasID bool
	// Data is the data field (lines joined with "\n").
	Data string
	// Comments are the frame's comment lines, without the leading colon.
	Comments []string
	// Retry is the retry field, "" if absent.
	Retry string
}

// ReadSSE reads the next frame (up to a blank line) from r. A frame of
// comments only is returned as such. It returns io.EOF at a clean end of
// stream.
func ReadSSE(r *bufio.Reader) (SSEFrame, error) {
	var f SSEFrame
	var data []string
	started := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && !started && line == "" {
				return f, io.EOF
			}
			return f, fmt.Errorf("reading SSE frame: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if !started {
				continue
			}
			f.Data = strings.Join(data, "\n")
			return f, nil
		}
		started = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			f.Comments = append(f.Comments, value)
		case "id":
			f.ID, f.HasID = value, true
		case "data":
			data = append(data, value)
		case "retry":
			f.Retry = value
		default:
			return f, fmt.Errorf("unexpected SSE field %q", field)
		}
	}
}

// ClientFrame returns a masked client WebSocket frame (FIN set) with the
// given opcode (1 text, 2 binary, 8 close) and payload.
func ClientFrame(opcode byte, payload []byte) []byte {
	return wsframe.AppendClientFrame(nil, opcode, payload)
}

// HandshakeRequest returns a raw HTTP/1.1 WebSocket upgrade request for
// path on host, with extra header lines.
func HandshakeRequest(host, path string, header http.Header) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, host)
	sb.WriteString("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&sb, "%s: %s\r\n", k, v)
		}
	}
	sb.WriteString("\r\n")
	return []byte(sb.String())
}

// ReadServerFrame reads one unmasked server frame from r and returns its
// opcode and payload.
func ReadServerFrame(r *bufio.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err = io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err = io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0] & 0x0f, payload, err
}

// SmallBufferServer starts a test server for handler whose connections
// have 16 KiB socket send buffers, so a client that stops reading stalls the
// server's writes after a few megabytes at most. It is closed when the test
// ends.
func SmallBufferServer(t testing.TB, handler http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			_ = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// Deliveries counts a handler's inline deliveries (its test hook) by
// outcome: Sent when the socket took everything, Kept otherwise.
type Deliveries struct{ Sent, Kept atomic.Int64 }

// Hook is the handler's test hook.
func (d *Deliveries) Hook(sent bool) {
	if sent {
		d.Sent.Add(1)
	} else {
		d.Kept.Add(1)
	}
}
