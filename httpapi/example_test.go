package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// queueExecutor stands in for a real executor: it accepts every task.
type queueExecutor struct{}

func (queueExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (queueExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

// tokenAuth accepts "Authorization: Bearer demo-token" as user demo.
var tokenAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	if r.Header.Get("Authorization") != "Bearer demo-token" {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated
	}
	return taskbridge.AuthContext{Subject: "demo"}, nil
})

// createDemoTask posts a JSON create like the Android SDK does and prints
// the outcome.
func createDemoTask(url string) {
	req, err := http.NewRequest(http.MethodPost, url,
		strings.NewReader(`{"clientRequestId":"c-1","taskType":"summarize","input":{},"metadata":{}}`))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer demo-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var created taskbridge.CreateTaskResponse
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, created.Status, created.Deduplicated)
}

// Mount the API in a chi router, next to the host's own routes and behind
// its middleware. The API is a chi sub-router, so the host's middleware
// finds the full route pattern once the request is served.
func ExampleNew_chi() {
	store := memstore.New(memstore.Config{})
	defer store.Close()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: queueExecutor{}})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Shutdown(context.Background())

	api, err := httpapi.New(svc, httpapi.Config{Auth: tokenAuth})
	if err != nil {
		log.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler { // the host's middleware
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Served-By", "host")
			next.ServeHTTP(w, r)
			fmt.Println(r.Method, chi.RouteContext(r.Context()).RoutePattern())
		})
	})
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "home") })
	r.Mount("/tb", api) // the API under /tb: POST /tb/api/v1/tasks, ...

	srv := httptest.NewServer(r)
	defer srv.Close()
	createDemoTask(srv.URL + "/tb/api/v1/tasks")
	// Output:
	// POST /tb/api/v1/tasks
	// 201 ACCEPTED false
}

// Mount the API in a net/http ServeMux. Under a prefix, strip it with
// http.StripPrefix. The Android SDK opens its WebSocket at the server root
// whatever the base URL's path, so a WebSocket handler would be mounted
// there too: mux.Handle("GET /api/v1/tasks/ws", wsHandler).
func ExampleNew_serveMux() {
	store := memstore.New(memstore.Config{})
	defer store.Close()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: queueExecutor{}})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Shutdown(context.Background())

	api, err := httpapi.New(svc, httpapi.Config{
		Auth:    tokenAuth,
		Uploads: httpapi.UploadLimits{MaxFileBytes: 5 << 20, AllowedContentTypes: []string{"image/*", "application/pdf"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/tb/", http.StripPrefix("/tb", api))

	srv := httptest.NewServer(mux)
	defer srv.Close()
	createDemoTask(srv.URL + "/tb/api/v1/tasks")
	// Output: 201 ACCEPTED false
}

// Serve the OpenAPI document of the routes the handler serves, at GET
// /openapi.json next to them. It lists each route at its configured path,
// with what the library adds to the TaskBridge v1 document.
func ExampleConfig_serveOpenAPI() {
	store := memstore.New(memstore.Config{})
	defer store.Close()
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: queueExecutor{}})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Shutdown(context.Background())

	api, err := httpapi.New(svc, httpapi.Config{
		Auth:         tokenAuth,
		ServeOpenAPI: true,
		Paths:        httpapi.Paths{Health: "/healthz"},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/openapi.json") // no credentials needed
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		log.Fatal(err)
	}
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), doc.OpenAPI)
	fmt.Println(strings.Join(paths, "\n"))
	// Output:
	// 200 application/json 3.1.0
	// /api/v1/tasks
	// /api/v1/tasks/{taskId}
	// /api/v1/tasks/{taskId}/actions
	// /api/v1/tasks/{taskId}/cancel
	// /api/v1/tasks/{taskId}/events
	// /healthz
	// /openapi.json
	// /ready
}
