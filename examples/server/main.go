package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge/examples/internal/cmdmain"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/runner"
)

func main() { cmdmain.Main("server", run) }

// options are the command-line flags.
type options struct {
	addr              string
	store             string
	redisURL          string
	redisPrefix       string
	postgresURL       string
	postgresSchema    string
	leaseTTL          time.Duration
	replica           string
	heartbeatInterval time.Duration
	shutdownTimeout   time.Duration
	taskGrace         time.Duration
	retention         time.Duration
	maintenance       time.Duration
	maxLiveTasks      int
	logLevel          slog.Level
	metrics           bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "`host:port` to listen on (port 0 picks a free port)")
	fs.StringVar(&o.store, "store", "memory", "store backend: memory, redis or postgres")
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis `URL` for -store redis, e.g. redis://127.0.0.1:6379/0 (default $TASKBRIDGE_REDIS_URL)")
	fs.StringVar(&o.redisPrefix, "redis-prefix", "taskbridge", "key `prefix` for -store redis; replicas that share tasks use the same")
	fs.StringVar(&o.postgresURL, "postgres-url", "", "PostgreSQL `URL` for -store postgres (default $TASKBRIDGE_POSTGRES_URL)")
	fs.StringVar(&o.postgresSchema, "postgres-schema", pgstore.DefaultSchema, "PostgreSQL `schema` of the tables for -store postgres")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", runner.DefaultLeaseTTL, "with a shared store, how long a replica's claim on a running task lasts unless renewed; other replicas take over the tasks of a replica that died after it")
	fs.StringVar(&o.replica, "replica", "", "this process's `name` as the runner of its tasks, unique among the replicas sharing a store (default: random)")
	fs.DurationVar(&o.heartbeatInterval, "heartbeat-interval", 15*time.Second, "idle time before an SSE or WebSocket heartbeat (at most 40s: the Android SDK reconnects after 60s of silence)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fs.DurationVar(&o.taskGrace, "task-grace", 2*time.Second, "how long running tasks may go on during a shutdown before they are stopped")
	fs.DurationVar(&o.retention, "retention", time.Hour, "how long finished tasks and their events are kept before maintenance deletes them")
	fs.DurationVar(&o.maintenance, "maintenance-interval", time.Minute, "how often maintenance deletes expired tasks and receipts and retries failed resumes")
	fs.IntVar(&o.maxLiveTasks, "max-live-tasks", defaultMaxLiveTasks, "how many unfinished tasks one user may have (0: no limit); more get 429")
	fs.BoolVar(&o.metrics, "metrics", true, "serve Prometheus metrics at GET /metrics (-metrics=false to turn off)")
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
	if o.heartbeatInterval <= 0 {
		return o, errors.New("-heartbeat-interval must be positive")
	}
	if o.shutdownTimeout <= 0 {
		return o, errors.New("-shutdown-timeout must be positive")
	}
	if o.taskGrace <= 0 {
		return o, errors.New("-task-grace must be positive")
	}
	if o.retention <= 0 {
		return o, errors.New("-retention must be positive")
	}
	if o.maintenance <= 0 {
		return o, errors.New("-maintenance-interval must be positive")
	}
	if o.leaseTTL <= 0 {
		return o, errors.New("-lease-ttl must be positive")
	}
	if o.maxLiveTasks < 0 {
		return o, errors.New("-max-live-tasks must not be negative")
	}
	switch o.store {
	case "memory":
		if o.redisURL != "" || o.postgresURL != "" {
			return o, errors.New("-redis-url and -postgres-url need -store redis or -store postgres")
		}
	case "redis":
		if o.postgresURL != "" {
			return o, errors.New("-postgres-url needs -store postgres")
		}
		if o.redisURL == "" {
			o.redisURL = os.Getenv("TASKBRIDGE_REDIS_URL")
		}
		if o.redisURL == "" {
			return o, errors.New("-store redis needs -redis-url (or TASKBRIDGE_REDIS_URL)")
		}
	case "postgres":
		if o.redisURL != "" {
			return o, errors.New("-redis-url needs -store redis")
		}
		if o.postgresURL == "" {
			o.postgresURL = os.Getenv("TASKBRIDGE_POSTGRES_URL")
		}
		if o.postgresURL == "" {
			return o, errors.New("-store postgres needs -postgres-url (or TASKBRIDGE_POSTGRES_URL)")
		}
	default:
		return o, fmt.Errorf("-store %q is unknown: use memory, redis or postgres", o.store)
	}
	return o, nil
}

// run parses args, serves until ctx ends and shuts down gracefully. It
// prints "listening on http://ADDR" to stdout once the listener is open;
// logs go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	store, closeStore, err := openPostgres(ctx, o, log)
	if err != nil {
		return err
	}
	if store == nil {
		if store, closeStore, err = openRedis(ctx, o, log); err != nil {
			return err
		}
	}
	defer closeStore()
	app, err := newServer(config{
		Logger: log, HeartbeatInterval: o.heartbeatInterval, TaskGrace: o.taskGrace,
		TaskRetention: o.retention, MaintenanceInterval: o.maintenance,
		Store: store, LeaseTTL: o.leaseTTL, Replica: o.replica,
		MaxLiveTasksPerOwner: cmp.Or(o.maxLiveTasks, -1), // the flag's 0 is "no limit"
		DisableMetrics:       !o.metrics,
	})
	if err != nil {
		return err
	}
	err = cmdmain.Serve(ctx, cmdmain.Server{
		Addr: o.addr, Handler: app, Log: log, ShutdownTimeout: o.shutdownTimeout,
		MaxHeaderBytes: 64 << 10,
		OnShutdown:     []func(){app.closeStreams},
		Started: func(url string) {
			log.Info("taskbridge demo server started", slog.String("url", url), slog.String("store", o.store),
				slog.Duration("heartbeatInterval", o.heartbeatInterval), slog.Duration("retention", o.retention),
				slog.Duration("maintenanceInterval", o.maintenance), slog.Int("maxLiveTasks", o.maxLiveTasks),
				slog.String("replica", app.runner.Replica()))
		},
		// app.shutdown ends the service, so long polls return, and waits
		// for the hijacked WebSockets.
		Stop: app.shutdown,
	}, stdout)
	if err != nil {
		return err
	}
	log.Info("shut down cleanly")
	return nil
}
