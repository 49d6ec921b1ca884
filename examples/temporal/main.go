package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/examples/internal/cmdmain"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/temporalexec"
)

func main() { cmdmain.Main("temporal example", run) }

// Roles of a process.
const (
	roleAll    = "all"
	roleServer = "server"
	roleWorker = "worker"
)

// options are the command-line flags.
type options struct {
	role              string
	addr              string
	temporalAddr      string
	namespace         string
	taskQueue         string
	store             string
	postgresURL       string
	postgresSchema    string
	activityTimeout   time.Duration
	reconcileInterval time.Duration
	shutdownTimeout   time.Duration
	logLevel          slog.Level
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("temporal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.role, "role", roleAll, "what this process runs: all (API server and worker), server or worker")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "`host:port` the API listens on (port 0 picks a free port)")
	fs.StringVar(&o.temporalAddr, "temporal", "127.0.0.1:7233", "Temporal frontend `host:port`")
	fs.StringVar(&o.namespace, "namespace", "default", "Temporal namespace")
	fs.StringVar(&o.taskQueue, "task-queue", "taskbridge-example", "Temporal task queue of the task workflows")
	fs.StringVar(&o.store, "store", "memory", "store backend: memory (only with -role all: server and worker share it in this process) or postgres")
	fs.StringVar(&o.postgresURL, "postgres-url", "", "PostgreSQL `URL` for -store postgres (default $TASKBRIDGE_POSTGRES_URL)")
	fs.StringVar(&o.postgresSchema, "postgres-schema", pgstore.DefaultSchema, "PostgreSQL `schema` of the tables for -store postgres")
	fs.DurationVar(&o.activityTimeout, "activity-timeout", temporalexec.DefaultActivityTimeout, "worker: how long an event append may take before it is retried (a dead worker's appends are retried after that long)")
	fs.DurationVar(&o.reconcileInterval, "reconcile-interval", time.Minute, "how often the server reconciles unfinished tasks with their workflows")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, cmdmain.ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return o, cmdmain.ErrUsage
	}
	switch o.role {
	case roleAll, roleServer, roleWorker:
	default:
		return o, fmt.Errorf("-role %q is unknown: use all, server or worker", o.role)
	}
	switch o.store {
	case "memory":
		if o.role != roleAll {
			return o, fmt.Errorf("-role %s needs a store shared with the other processes, and -store memory lives in one process: use -store postgres or -role all", o.role)
		}
		if o.postgresURL != "" {
			return o, errors.New("-postgres-url needs -store postgres")
		}
	case "postgres":
		if o.postgresURL == "" {
			o.postgresURL = os.Getenv("TASKBRIDGE_POSTGRES_URL")
		}
		if o.postgresURL == "" {
			return o, errors.New("-store postgres needs -postgres-url (or TASKBRIDGE_POSTGRES_URL)")
		}
	default:
		return o, fmt.Errorf("-store %q is unknown: use memory or postgres", o.store)
	}
	if o.activityTimeout <= 0 {
		return o, errors.New("-activity-timeout must be positive")
	}
	if o.reconcileInterval <= 0 {
		return o, errors.New("-reconcile-interval must be positive")
	}
	if o.shutdownTimeout <= 0 {
		return o, errors.New("-shutdown-timeout must be positive")
	}
	return o, nil
}

// run parses args, runs the process's role until ctx ends and shuts down
// gracefully. A server prints "listening on http://ADDR" to stdout once its
// listener is open, a worker "worker polling QUEUE" once it polls; logs go to
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	store, release, err := openStore(ctx, o, log)
	if err != nil {
		return err
	}
	defer release()

	c, err := client.Dial(client.Options{
		HostPort:  o.temporalAddr,
		Namespace: o.namespace,
		Logger:    sdklog.NewStructuredLogger(log.With(slog.String("component", "temporal"))),
	})
	if err != nil {
		return fmt.Errorf("connecting to Temporal at %s: %w", o.temporalAddr, err)
	}
	defer c.Close()
	exec, err := temporalexec.New(c, temporalexec.Config{TaskQueue: o.taskQueue, Workflows: taskTypes, Logger: log})
	if err != nil {
		return err
	}
	// In a worker, the Service only hands out emitters over the store.
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: exec, Logger: log})
	if err != nil {
		return err
	}

	if o.role == roleWorker || o.role == roleAll {
		w, err := startWorker(c, o, svc, store, log)
		if err != nil {
			return err
		}
		defer w.Stop() // after the server: running activities finish their appends
		fmt.Fprintf(stdout, "worker polling %s\n", o.taskQueue)
	}
	if o.role == roleServer || o.role == roleAll {
		return serve(ctx, o, svc, exec, store, log, stdout)
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	return svc.Shutdown(sctx)
}

// serve runs the HTTP API and the maintenance loop until ctx ends, then
// shuts both down.
func serve(ctx context.Context, o options, svc *taskbridge.Service, exec *temporalexec.Executor,
	store taskbridge.Store, log *slog.Logger, stdout io.Writer) error {
	api, err := newAPI(svc)
	if err != nil {
		return err
	}
	return cmdmain.Serve(ctx, cmdmain.Server{
		Addr: o.addr, Handler: api, Log: log, ShutdownTimeout: o.shutdownTimeout,
		OnShutdown: []func(){api.closeStreams},
		Background: func(ctx context.Context) { maintain(ctx, o.reconcileInterval, svc, exec, store, log) },
		Started: func(url string) {
			log.Info("taskbridge Temporal example started", slog.String("url", url), slog.String("role", o.role),
				slog.String("taskQueue", o.taskQueue))
		},
		Stop: func(ctx context.Context) error { return errors.Join(api.shutdown(ctx), svc.Shutdown(ctx)) },
	}, stdout)
}

// maintain runs the service's maintenance and the executor's
// reconciliation every interval until ctx ends.
func maintain(ctx context.Context, interval time.Duration, svc *taskbridge.Service, exec *temporalexec.Executor,
	store taskbridge.Store, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svc.RunMaintenance(ctx, interval)
	}()
	defer func() { <-done }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := exec.Reconcile(ctx, store, svc.Emitter); err != nil && ctx.Err() == nil {
			log.Error("reconciling tasks with their workflows failed", slog.Any("error", err))
		}
	}
}
