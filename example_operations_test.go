package taskbridge_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/runner"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

// A production wiring, as docs/OPERATIONS.md describes it: http.Server
// timeouts that are safe with long-lived streams, pprof on a separate
// internal listener, maintenance running, and a shutdown in order.
func Example_operations() {
	store := memstore.New(memstore.Config{})
	exec, err := runner.New(runner.Config{Handlers: map[string]runner.HandlerFunc{
		"noop": func(context.Context, *taskbridge.Task, taskbridge.Emitter) (any, error) { return nil, nil },
	}})
	if err != nil {
		log.Fatal(err)
	}
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: exec})
	if err != nil {
		log.Fatal(err)
	}
	auth := taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
		return taskbridge.AuthContext{}, taskbridge.ErrUnauthenticated // your authentication
	})
	stream, err := sse.NewHandler(svc, sse.Config{Auth: auth})
	if err != nil {
		log.Fatal(err)
	}
	socket, err := ws.NewHandler(svc, ws.Config{Auth: auth})
	if err != nil {
		log.Fatal(err)
	}
	api, err := httpapi.New(svc, httpapi.Config{Auth: auth, Stream: stream, WebSocket: socket})
	if err != nil {
		log.Fatal(err)
	}

	// Maintenance (retention) runs for as long as the process serves.
	ctx, stopMaintenance := context.WithCancel(context.Background())
	maintenanceDone := make(chan struct{})
	go func() { defer close(maintenanceDone); _ = svc.RunMaintenance(ctx, time.Minute) }()

	public := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second, // headers arrive before any handler runs
		IdleTimeout:       2 * time.Minute,  // idle keep-alive connections, not streams
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout and no WriteTimeout: httpapi bounds request bodies
		// per request, and long polls, SSE streams and WebSockets give each
		// write its own deadline.
	}
	public.RegisterOnShutdown(api.Close)    // bodies still arriving: 503
	public.RegisterOnShutdown(stream.Close) // SSE streams end; clients resume by cursor
	public.RegisterOnShutdown(socket.Close) // WebSockets close with 1001

	// pprof on its own listener, reachable only from inside (here
	// loopback): never on the public mux.
	debug := http.NewServeMux()
	debug.HandleFunc("/debug/pprof/", pprof.Index)
	debug.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	debug.HandleFunc("/debug/pprof/profile", pprof.Profile)
	debug.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	debug.HandleFunc("/debug/pprof/trace", pprof.Trace)
	internal := &http.Server{Handler: debug, ReadHeaderTimeout: 10 * time.Second}

	publicLn, err := net.Listen("tcp", "127.0.0.1:0") // ":8080" in production
	if err != nil {
		log.Fatal(err)
	}
	internalLn, err := net.Listen("tcp", "127.0.0.1:0") // e.g. "127.0.0.1:6060"
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 2)
	go func() { served <- public.Serve(publicLn) }()
	go func() { served <- internal.Serve(internalLn) }()

	for _, url := range []string{
		"http://" + publicLn.Addr().String() + "/health",
		"http://" + publicLn.Addr().String() + "/debug/pprof/",
		"http://" + internalLn.Addr().String() + "/debug/pprof/",
	} {
		resp, err := http.Get(url)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Request.URL.Path)
	}

	// On SIGTERM: stop taking requests and end the streams, then the
	// service (long polls return), then the executor, then maintenance,
	// then the store.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := []error{public.Shutdown(sctx), internal.Shutdown(sctx)}
	errs = append(errs, svc.Shutdown(sctx), exec.Shutdown(sctx))
	stopMaintenance()
	<-maintenanceDone
	errs = append(errs, store.Close())
	for range 2 {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	fmt.Println("shut down:", errors.Join(errs...))
	// Output:
	// 200 /health
	// 404 /debug/pprof/
	// 200 /debug/pprof/
	// shut down: <nil>
}
