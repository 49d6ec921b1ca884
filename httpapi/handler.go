package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// Handler serves the TaskBridge HTTP API for one [taskbridge.Service]. It is
// a plain http.Handler: mount it at the root of a chi router
// (r.Mount("/", h)), under a prefix (r.Mount("/tb", h)), or in an
// http.ServeMux (mux.Handle("/", h), or mux.Handle("/tb/",
// http.StripPrefix("/tb", h))). Routes are matched relative to the mount
// point. Every response it writes itself is JSON; every error is the
// protocol error envelope.
type Handler struct {
	svc *taskbridge.Service
	cfg Config
	log *slog.Logger
	mux *chi.Mux
	// methods are the methods of every route, sorted, for Allow headers.
	methods []string
	// bodies are the request bodies being read.
	bodies bodyReads
	// openAPI is the OpenAPI document of the handler's routes.
	openAPI *openAPIDoc
	// streamTail is the static end of the SSE stream route's path
	// ("/events/stream"), if it has one: GET requests whose path ends so
	// are routed on a goroutine of their own (see routeOffStack).
	streamTail string
	// offloads are the requests being routed that way.
	offloads sync.Map // *chi.Context → *offload
	// rctxPool holds the routing contexts routeOffStack uses when no
	// parent chi router made one.
	rctxPool sync.Pool
}

// New validates cfg, fills in its defaults and returns the handler.
func New(svc *taskbridge.Service, cfg Config) (*Handler, error) {
	if svc == nil {
		return nil, errors.New("httpapi: service is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Handler{svc: svc, cfg: cfg, log: svcHooks.Logger(svc), bodies: bodyReads{active: map[*bodyRead]struct{}{}}}
	h.rctxPool.New = func() any { return chi.NewRouteContext() }
	p, def := cfg.Paths, DefaultPaths()
	routes := []route{
		{http.MethodPost, p.Tasks, def.Tasks, h.authed(h.createTask)},
		{http.MethodGet, p.Tasks, def.Tasks, h.authed(h.listTasks)},
		{http.MethodGet, p.Task, def.Task, h.authed(h.getTask)},
		{http.MethodGet, p.Events, def.Events, h.authed(h.pollEvents)},
		{http.MethodPost, p.Cancel, def.Cancel, h.authed(h.cancelTask)},
		{http.MethodPost, p.Actions, def.Actions, h.authed(h.submitAction)},
		{http.MethodGet, p.Health, def.Health, h.health},
		{http.MethodHead, p.Health, def.Health, h.health},
		{http.MethodGet, p.Ready, def.Ready, h.ready},
		{http.MethodHead, p.Ready, def.Ready, h.ready},
	}
	if cfg.Stream != nil {
		routes = append(routes, route{http.MethodGet, p.Stream, def.Stream, h.delegate(cfg.Stream)})
		h.streamTail = p.Stream[strings.LastIndex(p.Stream, "}")+1:]
	}
	if cfg.WebSocket != nil {
		// Not routed off the stack: the ws handler hijacks the connection
		// and returns, so the connection's goroutine does not stay parked.
		routes = append(routes, route{http.MethodGet, p.WebSocket, def.WebSocket, h.delegate(cfg.WebSocket)})
	}
	serverURL := ""
	if cfg.ServeOpenAPI {
		routes = append(routes,
			route{http.MethodGet, p.OpenAPI, def.OpenAPI, h.serveOpenAPI},
			route{http.MethodHead, p.OpenAPI, def.OpenAPI, h.serveOpenAPI})
		serverURL = relativeRoot(p.OpenAPI)
	}
	if h.openAPI, err = buildOpenAPI(routes, serverURL); err != nil {
		return nil, err
	}
	if h.mux, err = h.newRouter(routes); err != nil {
		return nil, err
	}
	return h, nil
}

// Close ends every request body still being read (a slow upload, a
// stalled JSON body) at once: those requests fail with 503
// SERVICE_UNAVAILABLE and their partial uploads are discarded. Later
// requests with a body get 503 too; requests without one are served as
// before. Register it so that a shutdown does not wait for clients that
// trickle their bodies:
//
//	srv.RegisterOnShutdown(h.Close)
//
// Safe to call more than once.
func (h *Handler) Close() {
	h.bodies.close()
}

// delegate passes a request on to a streaming handler; a matched task id is
// available as r.PathValue("taskId"). A request routed off the connection's
// goroutine (routeOffStack) is handed back to it instead.
func (h *Handler) delegate(next http.Handler) routeFunc {
	return func(w http.ResponseWriter, r *http.Request, _ string) {
		if o, ok := h.offloads.Load(chi.RouteContext(r.Context())); ok {
			if o := o.(*offload); o.next == nil {
				o.w, o.r, o.next = w, r, next
				return
			}
		}
		next.ServeHTTP(w, r)
	}
}

// authedFunc is a route handler that runs for an authenticated caller.
type authedFunc func(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, taskID string)

// authed authenticates the request before fn runs: 401 without valid
// credentials. A state-changing request a page on another site may have
// sent without a CORS preflight is refused first (see Config.CrossOrigin).
// A task id the protocol cannot issue gets 404 at once.
//
// A request body must arrive within its read timeout, from the start: the
// deadline also bounds what net/http reads of a body the route did not
// read to its end (it drains up to 256 KiB before it answers), however the
// route ended.
func (h *Handler) authed(fn authedFunc) routeFunc {
	return func(w http.ResponseWriter, r *http.Request, taskID string) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			br, err := h.bodies.start(w, h.bodyTimeout(r))
			if err != nil {
				h.fail(w, r, "body", err, slog.String("taskId", taskID))
				return
			}
			defer br.finish()
			r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, br))
		}
		if err := h.checkCrossOrigin(r); err != nil {
			h.fail(w, r, "csrf", err, slog.String("taskId", taskID))
			return
		}
		auth, err := httpx.Authenticate(h.cfg.Auth, r)
		if err != nil {
			h.fail(w, r, "auth", err, slog.String("taskId", taskID))
			return
		}
		if taskID != "" && !taskbridge.ValidTaskID(taskID) {
			h.writeError(w, r, taskbridge.ErrTaskNotFound)
			return
		}
		fn(w, r, auth, taskID)
	}
}

// checkCrossOrigin refuses a cross-origin browser request with a method
// other than GET, HEAD and OPTIONS unless it declares a JSON Content-Type,
// which a browser sends cross-origin only after a CORS preflight.
func (h *Handler) checkCrossOrigin(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		// Safe methods, which CrossOriginProtection always allows: every
		// poll and stream, without parsing a Content-Type.
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && isJSONMediaType(mt) {
		return nil
	}
	if err := h.cfg.CrossOrigin.Check(r); err != nil {
		return &statusError{
			status: http.StatusForbidden, code: taskbridge.CodeInvalidRequest,
			msg: "Cross-origin request refused: send it with Content-Type: application/json, or from a trusted origin",
		}
	}
	return nil
}

// writeError writes err as the protocol error envelope and returns its HTTP
// status and code. A request whose context ended (the client went away, the
// server is stopping) gets 503, never 500.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) (int, string) {
	var se *statusError
	if errors.As(err, &se) {
		httpx.WriteErrorCode(w, se.status, se.code, se.msg, se.details, svcHooks.Now(h.svc))
		return se.status, se.code
	}
	if r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return h.writeError(w, r, &statusError{
			status: http.StatusServiceUnavailable, code: taskbridge.CodeUnavailable,
			msg: "The request was cancelled",
		})
	}
	httpx.WriteError(w, r, h.log, svcHooks.Now(h.svc), err)
	status, code, _ := taskbridge.HTTPError(err)
	return status, code
}

// fail writes err and logs the failed operation.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, op string, err error, attrs ...slog.Attr) {
	status, code := h.writeError(w, r, err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	h.logOp(r, level, op, code, append(attrs, slog.Int("status", status))...)
}

// logOp logs one operation's outcome with the protocol's log fields. It
// never logs payload contents.
func (h *Handler) logOp(r *http.Request, level slog.Level, op, outcome string, attrs ...slog.Attr) {
	ctx := r.Context()
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs = append(attrs, slog.String("transport", "http"), slog.String("outcome", outcome))
	h.log.LogAttrs(ctx, level, "taskbridge: http "+op, attrs...)
}
