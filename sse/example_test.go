package sse_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/sse"
)

// exampleExecutor accepts tasks; the examples emit events themselves.
type exampleExecutor struct{}

func (exampleExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (exampleExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// bearer is a toy AuthContextResolver: the bearer token is the user.
var bearer = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated
	}
	return taskbridge.AuthContext{Subject: user}, nil
})

// exampleService returns a service with one started task, "task-1", owned
// by alice, on a fixed clock.
func exampleService() *taskbridge.Service {
	svc, err := taskbridge.New(taskbridge.Config{
		Store:    memstore.New(memstore.Config{}),
		Executor: exampleExecutor{},
		Now:      func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		NewID:    func() string { return "task-1" },
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if _, err := svc.CreateTask(ctx, taskbridge.AuthContext{Subject: "alice"},
		taskbridge.CreateTaskRequest{ClientRequestID: "r1", TaskType: "demo"}); err != nil {
		panic(err)
	}
	if _, err := svc.Emitter("task-1").Emit(ctx, taskbridge.StartedPayload{}); err != nil {
		panic(err)
	}
	return svc
}

// printFirstEvent opens the stream at url as alice and prints its first
// frame.
func printFirstEvent(url string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"))
	br := bufio.NewReader(resp.Body)
	for {
		line, _ := br.ReadString('\n')
		if line == "\n" || line == "" {
			return
		}
		fmt.Print(line)
	}
}

// Mounting the stream on a net/http ServeMux, at the protocol's route.
func ExampleNewHandler() {
	svc := exampleService()
	defer svc.Shutdown(context.Background())
	h, err := sse.NewHandler(svc, sse.Config{Auth: bearer})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle(sse.DefaultPattern, h) // "GET /api/v1/tasks/{taskId}/events/stream"
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	printFirstEvent(srv.URL + "/api/v1/tasks/task-1/events/stream")
	// Output:
	// 200 OK text/event-stream
	// id: 1
	// data: {"type":"TASK_STARTED","taskId":"task-1","eventId":"1","createdAt":"2026-01-02T03:04:05.000Z","payload":{}}
}

// Mounting the stream on a chi router, under the host's own middleware.
// The task id comes from the route's {taskId} parameter.
func ExampleNewHandler_chi() {
	svc := exampleService()
	defer svc.Shutdown(context.Background())
	h, err := sse.NewHandler(svc, sse.Config{Auth: bearer, HeartbeatInterval: 20 * time.Second})
	if err != nil {
		panic(err)
	}
	r := chi.NewRouter()
	r.Route("/mobile/api/v1/tasks", func(r chi.Router) {
		r.Get("/{taskId}/events/stream", h.ServeHTTP)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	printFirstEvent(srv.URL + "/mobile/api/v1/tasks/task-1/events/stream")
	// Output:
	// 200 OK text/event-stream
	// id: 1
	// data: {"type":"TASK_STARTED","taskId":"task-1","eventId":"1","createdAt":"2026-01-02T03:04:05.000Z","payload":{}}
}

// Serving HTTP/1.x streams on the hijacked connection, for hosts that hold
// very many idle streams: ServeHTTP returns as soon as the stream has
// started, so host middleware sees no status written through it (chi's
// logger shows "000 0B") while the stream goes on.
func ExampleConfig_hijack() {
	svc := exampleService()
	defer svc.Shutdown(context.Background())
	h, err := sse.NewHandler(svc, sse.Config{Auth: bearer, Hijack: true})
	if err != nil {
		panic(err)
	}
	seen := make(chan int, 1)
	metrics := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			seen <- ww.Status()
		})
	}
	srv := httptest.NewServer(metrics(h))
	defer srv.Close()
	defer h.Shutdown(context.Background())

	printFirstEvent(srv.URL + "/api/v1/tasks/task-1/events/stream")
	fmt.Println("status seen by the middleware:", <-seen)
	// Output:
	// 200 OK text/event-stream
	// id: 1
	// data: {"type":"TASK_STARTED","taskId":"task-1","eventId":"1","createdAt":"2026-01-02T03:04:05.000Z","payload":{}}
	// status seen by the middleware: 0
}

// The host's shutdown sequence: end the streams (clients reconnect
// elsewhere with their cursor), then stop the server, then the service.
func ExampleHandler_Shutdown() {
	svc := exampleService()
	h, _ := sse.NewHandler(svc, sse.Config{Auth: bearer})
	srv := &http.Server{Addr: "127.0.0.1:0", Handler: h}
	// Alternatively: srv.RegisterOnShutdown(h.Close)
	go func() { _ = srv.ListenAndServe() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
	_ = svc.Shutdown(ctx)
	fmt.Println("stopped")
	// Output: stopped
}
