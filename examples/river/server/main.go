// Command server is the HTTP side of the River example: it serves the
// TaskBridge API (long polling, SSE, WebSocket) over PostgreSQL and runs no
// task itself; worker processes (command worker) run them as River jobs.
//
// Authentication is a demo stand-in: the bearer token is the user name.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/examples/internal/cmdmain"
	"github.com/taskbridge-go/taskbridge/examples/river/internal/demo"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

func main() { cmdmain.Main("server", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on (port 0 picks a free port)")
	url := fs.String("postgres-url", os.Getenv("TASKBRIDGE_POSTGRES_URL"), "PostgreSQL `URL` (default $TASKBRIDGE_POSTGRES_URL)")
	schema := fs.String("schema", "taskbridge", "PostgreSQL `schema` of the tables")
	maintenance := fs.Duration("maintenance-interval", time.Minute, "how often to expire suspensions, retry resumes and delete old tasks")
	if err := cmdmain.Parse(fs, args, stderr); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
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
	return cmdmain.Serve(ctx, cmdmain.Server{
		Addr: *addr, Handler: api, Log: log,
		OnShutdown: []func(){stream.Close, socket.Close},
		Background: func(ctx context.Context) { _ = app.Service.RunMaintenance(ctx, *maintenance) },
		Stop:       app.Close,
	}, stdout)
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
