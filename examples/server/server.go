package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
	tbprom "github.com/taskbridge-go/taskbridge/prometheus"
	"github.com/taskbridge-go/taskbridge/runner"
	"github.com/taskbridge-go/taskbridge/sse"
	"github.com/taskbridge-go/taskbridge/ws"
)

//go:embed static
var staticFiles embed.FS

// config configures a demo server. A zero field means its default.
type config struct {
	// Logger receives the server's logs. Defaults to slog.Default().
	Logger *slog.Logger
	// HeartbeatInterval is passed to the SSE and WebSocket handlers.
	// Defaults to 15s.
	HeartbeatInterval time.Duration
	// MaintenanceInterval is how often Service.RunMaintenance runs: it
	// deletes finished tasks older than TaskRetention and old action
	// receipts, and retries failed resume hand-offs. Defaults to 1m.
	MaintenanceInterval time.Duration
	// TaskRetention is how long finished tasks (with their events) are
	// kept; then maintenance deletes them and they are 404. Defaults to 1h.
	TaskRetention time.Duration
	// Now is the service's clock. Defaults to time.Now.
	Now func() time.Time
	// TaskGrace is how long a shutdown lets running tasks finish before
	// they are stopped (EXECUTOR_SHUTDOWN). Defaults to 2s; it is also
	// bounded by the shutdown's context.
	TaskGrace time.Duration
	// Store keeps the tasks; the caller owns it and closes it after
	// shutdown. Defaults to an in-memory store that the server owns.
	Store taskbridge.Store
	// LeaseTTL is the runner's lease TTL when the store keeps leases.
	// Defaults to runner.DefaultLeaseTTL.
	LeaseTTL time.Duration
	// MaxLiveTasksPerOwner is how many unfinished tasks one user may have;
	// a create beyond it gets 429 TOO_MANY_TASKS. Defaults to 20;
	// negative means no limit.
	MaxLiveTasksPerOwner int
	// UploadDir is where uploaded files are spooled. A task's files are
	// removed when the task ends (and by retention, should one be left).
	// Defaults to a new temporary directory, which shutdown removes with
	// whatever is left in it.
	UploadDir string
	// Replica names this process as the runner of its tasks (the lease
	// holder). Defaults to a random id.
	Replica string
	// DisableMetrics serves no GET /metrics. By default the service's
	// metrics (and the Go runtime's) are served there in the Prometheus
	// text format, from a registry of the server's own.
	DisableMetrics bool
}

// defaultMaxLiveTasks is the default quota of unfinished tasks per user.
const defaultMaxLiveTasks = 20

// server is the demo application: store, runner, service, transports and
// page, as one http.Handler. Create it with newServer and stop it with
// shutdown.
type server struct {
	log     *slog.Logger
	cfg     config
	store   taskbridge.Store
	owned   *memstore.Store // the default store, closed by shutdown
	runner  *runner.Runner
	svc     *taskbridge.Service
	sse     *sse.Handler
	ws      *ws.Handler
	api     *httpapi.Handler
	handler http.Handler
	// uploads spools uploaded files to uploadDir, which the server removes
	// at shutdown when it created it (ownsUploadDir).
	uploads       *httpapi.TempDirSink
	uploadDir     string
	ownsUploadDir bool
	// metrics is the registry served at /metrics; nil when disabled.
	metrics *prom.Registry

	stopMaintenance context.CancelFunc
	maintenanceDone chan struct{}
	shutdownOnce    sync.Once
	shutdownErr     error
}

// executor is the runner with input validation: a create request whose input
// does not fit its task type fails with 422 before the task exists.
type executor struct {
	*runner.Runner
}

// ValidateTask implements taskbridge.TaskValidator.
func (e executor) ValidateTask(ctx context.Context, req taskbridge.CreateTaskRequest) error {
	if err := e.Runner.ValidateTask(ctx, req); err != nil {
		return err
	}
	return validateInput(req.TaskType, req.Input)
}

// newServer builds the demo server over cfg.Store (in memory by default)
// and starts its maintenance and recovery loops.
func newServer(cfg config) (_ *server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 15 * time.Second
	}
	if cfg.HeartbeatInterval < 0 {
		return nil, errors.New("heartbeat interval must be positive")
	}
	if cfg.HeartbeatInterval > ws.MaxHeartbeatInterval {
		return nil, fmt.Errorf("heartbeat interval must be at most %v: the Android SDK reconnects after 60s of silence", ws.MaxHeartbeatInterval)
	}
	if cfg.MaintenanceInterval < 0 || cfg.TaskRetention < 0 {
		return nil, errors.New("maintenance interval and task retention must be positive")
	}
	if cfg.MaintenanceInterval == 0 {
		cfg.MaintenanceInterval = time.Minute
	}
	if cfg.TaskRetention == 0 {
		cfg.TaskRetention = time.Hour
	}
	if cfg.TaskGrace <= 0 {
		cfg.TaskGrace = 2 * time.Second
	}
	switch {
	case cfg.MaxLiveTasksPerOwner == 0:
		cfg.MaxLiveTasksPerOwner = defaultMaxLiveTasks
	case cfg.MaxLiveTasksPerOwner < 0:
		cfg.MaxLiveTasksPerOwner = 0 // the service's "no limit"
	}
	s := &server{log: cfg.Logger, cfg: cfg, store: cfg.Store, uploadDir: cfg.UploadDir}
	if s.store == nil {
		s.owned = memstore.New(memstore.Config{})
		s.store = s.owned
	}
	if s.uploadDir == "" {
		dir, err := os.MkdirTemp("", "taskbridge-demo-uploads-")
		if err != nil {
			return nil, err
		}
		s.uploadDir, s.ownsUploadDir = dir, true
	}
	defer func() {
		if err != nil {
			s.removeUploads()
		}
	}()
	s.uploads = &httpapi.TempDirSink{Dir: s.uploadDir}
	rcfg := runner.Config{Handlers: removeFilesWhenDone(s.uploads, handlers()), Logger: cfg.Logger, LeaseTTL: cfg.LeaseTTL, Replica: cfg.Replica}
	// With a store that keeps leases, the runner holds one on every task
	// it runs, so that several replicas can share the store: a replica
	// that dies has its tasks taken over by another (see RunRecovery
	// below).
	leases, _ := s.store.(taskbridge.LeaseStore)
	rcfg.Leases = leases
	r, err := runner.New(rcfg)
	if err != nil {
		return nil, err
	}
	s.runner = r
	var sink taskbridge.MetricsSink
	if !cfg.DisableMetrics {
		// A registry per server (tests run several in one process); a
		// real service would use prometheus.DefaultRegisterer.
		s.metrics = prom.NewRegistry()
		s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if sink, err = tbprom.New(tbprom.Config{Registerer: s.metrics}); err != nil {
			return nil, err
		}
	}
	s.svc, err = taskbridge.New(taskbridge.Config{
		Store: s.store, Executor: executor{r}, Logger: cfg.Logger, Now: cfg.Now,
		Metrics:              sink,
		TaskRetention:        cfg.TaskRetention,
		MaxLiveTasksPerOwner: cfg.MaxLiveTasksPerOwner,
		// Retention removes the files of deleted tasks whose handler
		// never ran (a task failed on submission, say).
		Attachments: s.uploads,
	})
	if err != nil {
		return nil, err
	}
	s.sse, err = sse.NewHandler(s.svc, sse.Config{Auth: streamAuth, HeartbeatInterval: cfg.HeartbeatInterval, Retry: time.Second})
	if err != nil {
		return nil, err
	}
	s.ws, err = ws.NewHandler(s.svc, ws.Config{Auth: streamAuth, HeartbeatInterval: cfg.HeartbeatInterval})
	if err != nil {
		return nil, err
	}
	s.api, err = httpapi.New(s.svc, httpapi.Config{
		Auth:      bearerAuth,
		Stream:    s.sse,
		WebSocket: s.ws,
		Sink:      s.uploads,
		Uploads:   httpapi.UploadLimits{MaxFileBytes: 1 << 20, MaxFiles: 3},
		// GET /openapi.json: every route above, for API tools.
		ServeOpenAPI: true,
	})
	if err != nil {
		return nil, err
	}
	page, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}

	mux := chi.NewRouter()
	mux.Use(s.logRequests)
	mux.Get("/", servePage(page, "index.html"))
	mux.Get("/app.js", servePage(page, "app.js"))
	if s.metrics != nil {
		// Public here for the demo; a real service serves metrics on an
		// internal listener (docs/OPERATIONS.md).
		mux.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	}
	mux.Mount("/", s.api)
	s.handler = mux

	// Without maintenance nothing is ever deleted: the in-memory store
	// would grow with every task for as long as the process runs.
	ctx, cancel := context.WithCancel(context.Background())
	if leases != nil {
		// Tasks a dead replica left behind (none with a fresh in-memory
		// store).
		if _, err := r.Recover(ctx, s.store, s.svc.Emitter); err != nil {
			cancel()
			return nil, err
		}
	}
	s.stopMaintenance, s.maintenanceDone = cancel, make(chan struct{})
	go func() {
		defer close(s.maintenanceDone)
		if leases == nil {
			_ = s.svc.RunMaintenance(ctx, cfg.MaintenanceInterval)
			return
		}
		var wg sync.WaitGroup
		wg.Go(func() { _ = s.svc.RunMaintenance(ctx, cfg.MaintenanceInterval) })
		wg.Go(func() { _ = r.RunRecovery(ctx, s.store, s.svc.Emitter, 0) })
		wg.Wait()
	}()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// closeStreams ends every SSE stream and WebSocket, and every request body
// still arriving (a slow upload), without waiting; for
// http.Server.RegisterOnShutdown.
func (s *server) closeStreams() {
	s.sse.Close()
	s.ws.Close()
	s.api.Close()
}

// removeUploads removes the upload directory if the server created it.
func (s *server) removeUploads() {
	if !s.ownsUploadDir {
		return
	}
	if err := os.RemoveAll(s.uploadDir); err != nil {
		s.log.Warn("removing the upload directory failed", slog.String("dir", s.uploadDir), slog.Any("error", err))
	}
}

// removeFilesWhenDone wraps every handler so that a task's uploaded files
// are removed as soon as its handler returns, however the task ends.
func removeFilesWhenDone(sink *httpapi.TempDirSink, hs map[string]runner.HandlerFunc) map[string]runner.HandlerFunc {
	out := make(map[string]runner.HandlerFunc, len(hs))
	for name, h := range hs {
		out[name] = func(ctx context.Context, task *taskbridge.Task, e taskbridge.Emitter) (any, error) {
			defer func() {
				for _, a := range task.Attachments {
					_ = sink.Discard(context.WithoutCancel(ctx), a.Ref)
				}
			}()
			return h(ctx, task, e)
		}
	}
	return out
}

// shutdown stops everything but the http.Server, which the caller shuts
// down (with closeStreams registered) before or while calling this:
//
//  1. the service: commands and new streams fail with 503, open streams end
//     (SSE connections close, WebSockets close with 1001), and shutdown
//     waits for the stream handlers to finish;
//  2. the runner: running tasks get cfg.TaskGrace (within ctx) to finish,
//     then are stopped and end with TASK_FAILED EXECUTOR_SHUTDOWN;
//  3. the maintenance and recovery loops, the store if it is the
//     server's own in-memory one, and the upload directory if the server
//     created it.
//
// It returns the first error; safe to call twice.
func (s *server) shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		var errs []error
		s.closeStreams()
		errs = append(errs, s.svc.Shutdown(ctx), s.sse.Shutdown(ctx), s.ws.Shutdown(ctx))
		graceCtx, cancel := context.WithTimeout(ctx, s.cfg.TaskGrace)
		if err := s.runner.Shutdown(graceCtx); err != nil {
			s.log.Warn("running tasks were stopped by the shutdown", slog.Any("error", err))
		}
		cancel()
		s.stopMaintenance()
		<-s.maintenanceDone
		if s.owned != nil {
			errs = append(errs, s.owned.Close())
		}
		s.removeUploads()
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

// Demo authentication: the bearer token is the subject. See the package
// comment: this is not security, only a way to tell demo users apart.

const maxSubjectLen = 128

// subject validates a demo token and returns it as the subject.
func subject(token string) (string, error) {
	token = strings.TrimSpace(token)
	if token == "" || len(token) > maxSubjectLen || strings.ContainsFunc(token, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return "", fmt.Errorf("%w: the demo token must be 1 to %d visible characters", taskbridge.ErrUnauthenticated, maxSubjectLen)
	}
	return token, nil
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return h[7:], true
	}
	return "", false
}

// bearerAuth authenticates "Authorization: Bearer <subject>".
var bearerAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	tok, ok := bearerToken(r)
	if !ok {
		return taskbridge.AuthContext{}, fmt.Errorf("%w: missing bearer token", taskbridge.ErrUnauthenticated)
	}
	sub, err := subject(tok)
	if err != nil {
		return taskbridge.AuthContext{}, err
	}
	return taskbridge.AuthContext{Subject: sub}, nil
})

// streamAuth is bearerAuth, or else the access_token query parameter.
// DEMO ONLY: browsers cannot set headers on EventSource and WebSocket, and a
// token in a URL ends up in logs and histories. Real hosts use cookies or
// short-lived stream tickets. Only the SSE and WebSocket routes accept it.
var streamAuth = taskbridge.AuthFunc(func(r *http.Request) (taskbridge.AuthContext, error) {
	if _, ok := bearerToken(r); ok {
		return bearerAuth(r)
	}
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		return taskbridge.AuthContext{}, fmt.Errorf("%w: missing bearer token or access_token", taskbridge.ErrUnauthenticated)
	}
	sub, err := subject(tok)
	if err != nil {
		return taskbridge.AuthContext{}, err
	}
	return taskbridge.AuthContext{Subject: sub}, nil
})

// servePage serves one embedded file of the demo page.
func servePage(files fs.FS, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, files, name)
	}
}

// statusRecorder remembers a response's status for the request log. Unwrap
// keeps http.ResponseController (flush, hijack, deadlines) working for the
// streaming handlers.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs every request at debug level and server errors (5xx) at
// warn level; the transports log their own client errors. An SSE stream is
// logged when it ends, with status 200 and its whole duration; a WebSocket
// with status 101 when its handler takes the connection over.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		level := slog.LevelDebug
		if rec.status >= 500 {
			level = slog.LevelWarn
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}
