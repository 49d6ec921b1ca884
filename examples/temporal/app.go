package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/examples/internal/pgdemo"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/temporalexec"
	"github.com/taskbridge-go/taskbridge/ws"
)

// api is the HTTP API with its SSE and WebSocket transports.
type api struct {
	http.Handler
	sse *sse.Handler
	ws  *ws.Handler
}

func newAPI(svc *taskbridge.Service) (*api, error) {
	stream, err := sse.NewHandler(svc, sse.Config{Auth: bearerAuth})
	if err != nil {
		return nil, err
	}
	socket, err := ws.NewHandler(svc, ws.Config{Auth: bearerAuth})
	if err != nil {
		return nil, err
	}
	h, err := httpapi.New(svc, httpapi.Config{Auth: bearerAuth, Stream: stream, WebSocket: socket})
	if err != nil {
		return nil, err
	}
	return &api{Handler: h, sse: stream, ws: socket}, nil
}

// closeStreams ends every stream without waiting; for
// http.Server.RegisterOnShutdown.
func (a *api) closeStreams() {
	a.sse.Close()
	a.ws.Close()
}

// shutdown ends every stream and waits for the stream handlers.
func (a *api) shutdown(ctx context.Context) error {
	a.closeStreams()
	return errors.Join(a.sse.Shutdown(ctx), a.ws.Shutdown(ctx))
}

// bearerAuth authenticates "Authorization: Bearer <subject>". DEMO ONLY: the
// token is the user's name.
var bearerAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	sub, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sub = strings.TrimSpace(sub)
	if !ok || sub == "" || len(sub) > 128 {
		return taskbridge.AuthContext{}, fmt.Errorf("%w: send Authorization: Bearer <your name>", taskbridge.ErrUnauthenticated)
	}
	return taskbridge.AuthContext{Subject: sub}, nil
})

// openStore opens the store of -store: a new in-memory store, or a
// migrated PostgreSQL store on its own pool. release frees it.
func openStore(ctx context.Context, o options, log *slog.Logger) (_ taskbridge.Store, release func(), err error) {
	if o.store == "memory" {
		store := memstore.New(memstore.Config{})
		return store, func() { _ = store.Close() }, nil
	}
	return pgdemo.Open(ctx, o.postgresURL, o.postgresSchema, log)
}

// startWorker registers the task workflows and the adapter's activities on
// a new worker for o.taskQueue and starts it. Events are appended through
// svc's emitters, over store.
func startWorker(c client.Client, o options, svc *taskbridge.Service, store taskbridge.Store, log *slog.Logger) (worker.Worker, error) {
	w := worker.New(c, o.taskQueue, worker.Options{})
	if err := temporalexec.Register(w, temporalexec.WorkerConfig{
		EmitterFunc:     svc.Emitter,
		Tasks:           store,
		Workflows:       workflows,
		ActivityTimeout: o.activityTimeout,
	}); err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("starting the Temporal worker: %w", err)
	}
	log.Info("worker started", slog.String("taskQueue", o.taskQueue))
	return w, nil
}
