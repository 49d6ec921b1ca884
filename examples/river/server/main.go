// Command server is the HTTP side of the River example: it serves the
// TaskBridge API (long polling, SSE, WebSocket) over PostgreSQL and runs no
// task itself; worker processes (command worker) run them as River jobs.
//
// Authentication is a demo stand-in: the bearer token is the user name.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/examples/river/internal/demo"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on (port 0 picks a free port)")
	url := fs.String("postgres-url", os.Getenv("TASKBRIDGE_POSTGRES_URL"), "PostgreSQL `URL` (default $TASKBRIDGE_POSTGRES_URL)")
	schema := fs.String("schema", "taskbridge", "PostgreSQL `schema` of the tables")
	maintenance := fs.Duration("maintenance-interval", time.Minute, "how often to expire suspensions, retry resumes and delete old tasks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	app, err := demo.Open(ctx, demo.Config{PostgresURL: *url, Schema: *schema, Logger: log})
	if err != nil {
		return err
	}
	stream, err := sse.NewHandler(app.Service, sse.Config{Auth: bearer})
	if err != nil {
		return err
	}
	socket, err := ws.NewHandler(app.Service, ws.Config{Auth: bearer})
	if err != nil {
		return err
	}
	api, err := httpapi.New(app.Service, httpapi.Config{Auth: bearer, Stream: stream, WebSocket: socket})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return errors.Join(err, app.Close(context.Background()))
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(stream.Close)
	srv.RegisterOnShutdown(socket.Close)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	mctx, stopMaintenance := context.WithCancel(ctx)
	maintained := make(chan error, 1)
	go func() { maintained <- app.Service.RunMaintenance(mctx, *maintenance) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	stopMaintenance()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(sctx), <-maintained, app.Close(sctx))
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// bearer authenticates "Authorization: Bearer <user>", or ?access_token=
// for browsers' EventSource and WebSocket: a demo, not a pattern.
var bearer = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		user = r.URL.Query().Get("access_token")
	}
	if user == "" || len(user) > 64 {
		return taskbridge.AuthContext{}, fmt.Errorf("%w: send Authorization: Bearer <user>", taskbridge.ErrUnauthenticated)
	}
	return taskbridge.AuthContext{Subject: user}, nil
})
