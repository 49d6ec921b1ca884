package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

// serverConfig configures the benchmark servers.
type serverConfig struct {
	// Heartbeat is the streams' heartbeat interval; zero means the
	// transport's default (15s), negative disables heartbeats.
	Heartbeat time.Duration
	// SSEHijack serves SSE streams on the hijacked connection
	// (sse.Config.Hijack) instead of inside ServeHTTP.
	SSEHijack bool
	// NoInline sets DisableInlineWrites in the SSE and WebSocket configs.
	NoInline bool
	// NoPacing sets taskbridge.Config.DisableWakePacing.
	NoPacing bool
	// DeliveryLatency records each delivery's append-to-hand-off time on
	// the server (Diagnostics.Delivery), reported by /debug/stats.
	DeliveryLatency bool
	// Direct has the baseline server write each event to each SSE
	// subscriber's hijacked connection from the publisher's goroutine: one
	// write system call per delivery and nothing else, the
	// one-write-per-event ceiling.
	Direct bool
}

// bearerAuth authenticates "Authorization: Bearer <subject>", as the
// library's demos do.
var bearerAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	sub, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || sub == "" {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated
	}
	return taskbridge.AuthContext{Subject: sub}, nil
})

// nopExecutor accepts every task and runs nothing: the benchmark publishes
// the events.
type nopExecutor struct{}

func (nopExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (nopExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// tbServer is taskbridge set up as a host would: a memstore-backed Service
// with the httpapi, sse and ws handlers, plus the control endpoints.
type tbServer struct {
	svc   *taskbridge.Service
	store *memstore.Store
	sse   *sse.Handler
	ws    *ws.Handler
	ctl   *control
	mux   *http.ServeMux
	reqs  atomic.Int64 // clientRequestId counter
}

func newTBServer(cfg serverConfig) (*tbServer, error) {
	store := memstore.New(memstore.Config{})
	watching := new(atomic.Int64)
	var latency *syncHist
	var diag taskbridge.Diagnostics
	if cfg.DeliveryLatency {
		latency = new(syncHist)
		diag.Delivery = func(d taskbridge.DeliveryInfo) {
			if !d.CreatedAt.IsZero() {
				latency.record(int64(time.Since(d.CreatedAt)))
			}
		}
	}
	svc, err := taskbridge.New(taskbridge.Config{
		Store:             countingStore{Store: store, watching: watching},
		Executor:          nopExecutor{},
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Diagnostics:       diag,
		DisableWakePacing: cfg.NoPacing,
	})
	if err != nil {
		return nil, err
	}
	sseCfg := sse.Config{Auth: bearerAuth, HeartbeatInterval: cfg.Heartbeat, Hijack: cfg.SSEHijack, DisableInlineWrites: cfg.NoInline}
	if cfg.Heartbeat < 0 {
		sseCfg.HeartbeatInterval, sseCfg.DisableHeartbeats = 0, true
	}
	sseH, err := sse.NewHandler(svc, sseCfg)
	if err != nil {
		return nil, err
	}
	wsCfg := ws.Config{Auth: bearerAuth, HeartbeatInterval: cfg.Heartbeat, DisableInlineWrites: cfg.NoInline}
	if cfg.Heartbeat < 0 {
		wsCfg.HeartbeatInterval, wsCfg.DisableHeartbeats = 0, true
	}
	wsH, err := ws.NewHandler(svc, wsCfg)
	if err != nil {
		return nil, err
	}
	api, err := httpapi.New(svc, httpapi.Config{Auth: bearerAuth, Stream: sseH, WebSocket: wsH})
	if err != nil {
		return nil, err
	}
	s := &tbServer{svc: svc, store: store, sse: sseH, ws: wsH, mux: http.NewServeMux()}
	s.ctl = &control{b: s, watching: watching, latency: latency}
	s.mux.Handle("/", api)
	s.ctl.register(s.mux)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *tbServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// shutdown ends the streams, then the service and the store. The
// http.Server must be shut down in between (see serve).
func (s *tbServer) shutdown(ctx context.Context) error {
	return errors.Join(s.sse.Shutdown(ctx), s.ws.Shutdown(ctx), s.ctl.endProfile())
}

// close shuts the service and the store down after the http.Server.
func (s *tbServer) close(ctx context.Context) error {
	return errors.Join(s.svc.Shutdown(ctx), s.store.Close())
}

func (s *tbServer) createTask(ctx context.Context) (string, error) {
	resp, err := s.svc.CreateTask(ctx, taskbridge.AuthContext{Subject: benchSubject}, taskbridge.CreateTaskRequest{
		ClientRequestID: "bench-" + strconv.FormatInt(s.reqs.Add(1), 10), TaskType: "bench",
	})
	if err != nil {
		return "", err
	}
	ev, err := s.svc.Emitter(resp.TaskID).Emit(ctx, taskbridge.StartedPayload{})
	if err != nil {
		return "", err
	}
	if ev.Seq != startedSeq {
		return "", fmt.Errorf("TASK_STARTED got id %s, want %d", ev.EventID, startedSeq)
	}
	return resp.TaskID, nil
}

func (s *tbServer) publish(ctx context.Context, taskID string, progress float64, sent time.Time, terminal bool) error {
	_, err := s.svc.Emitter(taskID).Emit(ctx, benchPayload(progress, sent, terminal))
	return err
}

// benchPayload is the payload of a published event: TASK_PROGRESS with the
// publish time in Unix nanoseconds as its message, or TASK_COMPLETED.
func benchPayload(progress float64, sent time.Time, terminal bool) taskbridge.Payload {
	if terminal {
		return taskbridge.CompletedPayload{Result: map[string]any{"ok": true}}
	}
	return taskbridge.ProgressPayload{Progress: progress, Stage: "bench", Message: strconv.FormatInt(sent.UnixNano(), 10)}
}

// countingStore counts the live watches on the store, so that a client
// can tell when its long polls are all waiting (/debug/stats).
type countingStore struct {
	*memstore.Store
	watching *atomic.Int64
}

// VettedStore implements taskbridge.VettedAppender: countingStore leaves
// appends to memstore, so the service may use memstore's AppendVetted and
// trust the payloads it lends, as with memstore itself.
func (s countingStore) VettedStore() taskbridge.EventStore { return s }

func (s countingStore) Watch(taskID string, notify func()) func() {
	stop := s.Store.Watch(taskID, notify)
	s.watching.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			s.watching.Add(-1)
		})
	}
}
