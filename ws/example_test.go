package ws_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/ws"
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

// newExampleService returns a service with one finished task, "task-1",
// owned by alice, on a fixed clock.
func newExampleService() *taskbridge.Service {
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
	_, err = svc.CreateTask(ctx, taskbridge.AuthContext{Subject: "alice"},
		taskbridge.CreateTaskRequest{ClientRequestID: "r1", TaskType: "demo"})
	for _, p := range []taskbridge.Payload{taskbridge.StartedPayload{}, taskbridge.CompletedPayload{Result: "done"}} {
		if err == nil {
			_, err = svc.Emitter("task-1").Emit(ctx, p)
		}
	}
	if err != nil {
		panic(err)
	}
	return svc
}

// subscribeAndPrint subscribes to task-1 after event 1 as alice and prints
// what the server sends until it closes the socket.
func subscribeAndPrint(url string) {
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer alice"}},
	})
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","taskId":"task-1","lastEventId":"1"}`))
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			fmt.Println("close", websocket.CloseStatus(err))
			return
		}
		fmt.Println(string(msg))
	}
}

// Mounting the WebSocket endpoint on a net/http ServeMux.
func ExampleNewHandler() {
	svc := newExampleService()
	defer svc.Shutdown(context.Background())
	h, err := ws.NewHandler(svc, ws.Config{Auth: bearer})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+ws.DefaultPath, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	subscribeAndPrint("ws" + strings.TrimPrefix(srv.URL, "http") + ws.DefaultPath)
	// Output:
	// {"type":"SUBSCRIPTION_CONFIRMED","taskId":"task-1","replayStartedAfterEventId":"1","live":true}
	// {"type":"TASK_COMPLETED","taskId":"task-1","eventId":"2","createdAt":"2026-01-02T03:04:05.000Z","payload":{"result":"done"}}
	// close StatusNormalClosure
}

// Mounting on a chi router whose HTTP API lives under a prefix: the
// Android SDK drops the base URL's path when it builds the WebSocket URL,
// so the WebSocket route is mounted at the root.
func ExampleNewHandler_chi() {
	svc := newExampleService()
	defer svc.Shutdown(context.Background())
	h, err := ws.NewHandler(svc, ws.Config{Auth: bearer, OriginPatterns: []string{"app.example.com"}})
	if err != nil {
		panic(err)
	}
	r := chi.NewRouter()
	r.Route("/mobile", func(r chi.Router) {
		// The HTTP API (the httpapi package) would be mounted here, with
		// the SDK's base URL https://host/mobile/.
	})
	r.Get(ws.DefaultPath, h.ServeHTTP) // wss://host/api/v1/tasks/ws
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	subscribeAndPrint("ws" + strings.TrimPrefix(srv.URL, "http") + ws.DefaultPath)
	// Output:
	// {"type":"SUBSCRIPTION_CONFIRMED","taskId":"task-1","replayStartedAfterEventId":"1","live":true}
	// {"type":"TASK_COMPLETED","taskId":"task-1","eventId":"2","createdAt":"2026-01-02T03:04:05.000Z","payload":{"result":"done"}}
	// close StatusNormalClosure
}

// The host's shutdown sequence: close every socket with 1001 so clients
// reconnect elsewhere, then stop the server, then the service.
func ExampleHandler_Shutdown() {
	svc := newExampleService()
	h, _ := ws.NewHandler(svc, ws.Config{Auth: bearer})
	srv := &http.Server{Addr: "127.0.0.1:0", Handler: h}
	go func() { _ = srv.ListenAndServe() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
	_ = svc.Shutdown(ctx)
	fmt.Println("stopped")
	// Output: stopped
}
