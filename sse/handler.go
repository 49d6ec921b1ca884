package sse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
	"github.com/taskbridge-go/taskbridge/internal/gopool"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/streamlife"
	"github.com/taskbridge-go/taskbridge/internal/writewatch"
)

// DefaultPattern is the protocol's stream route, as an http.ServeMux
// pattern. Its {taskId} wildcard is what the default [Config.TaskID] reads.
const DefaultPattern = "GET /api/v1/tasks/{taskId}/events/stream"

// Defaults and limits for [Config].
const (
	// DefaultHeartbeatInterval is the default Config.HeartbeatInterval.
	DefaultHeartbeatInterval = streamlife.DefaultHeartbeatInterval
	// MaxHeartbeatInterval is the longest Config.HeartbeatInterval
	// NewHandler accepts. The TaskBridge SDK reconnects when a stream has
	// sent no data frame for 60s (comment lines do not count), and an idle
	// stream gets its heartbeat between 1 and 1.25 intervals after its
	// last frame: at 40s it is never silent for more than 50s.
	MaxHeartbeatInterval = streamlife.MaxHeartbeatInterval
	// DefaultWriteTimeout is the default Config.WriteTimeout.
	DefaultWriteTimeout = 10 * time.Second
	// MaxPreamble bounds Config.Preamble.
	MaxPreamble = 64 << 10
)

// Config configures a [Handler]. A zero field means its default.
type Config struct {
	// Auth authenticates every request. Required: NewHandler fails
	// without it. A request it does not authenticate gets 401
	// AUTHENTICATION_ERROR.
	Auth taskbridge.AuthContextResolver

	// TaskID extracts the task id from a request. Defaults to
	// r.PathValue("taskId") (set by http.ServeMux patterns, by chi routes
	// and by the httpapi package), or else the path segment before a
	// trailing "/events/stream", so the handler also works behind routers
	// that do not set path values. A result that is not a valid task id
	// gets 404 TASK_NOT_FOUND.
	TaskID func(r *http.Request) string

	// HeartbeatInterval is how long a stream may be idle before a
	// heartbeat data frame is sent. Defaults to 15s; at most
	// [MaxHeartbeatInterval], since the TaskBridge SDK reconnects after
	// 60s without a data frame: NewHandler fails on a longer or a negative
	// interval.
	HeartbeatInterval time.Duration

	// DisableHeartbeats sends no heartbeat frames at all, for clients
	// that keep no liveness timer of their own. Do not set it for the
	// TaskBridge SDK: it would reconnect every time a task is quiet for
	// 60s. HeartbeatInterval must then be zero.
	DisableHeartbeats bool

	// CommentPing precedes every heartbeat frame with a ": ping" comment
	// line, for intermediaries that watch for comments.
	CommentPing bool

	// WriteTimeout bounds every write (with its flush) to the client. A
	// client that does not take the bytes in time is disconnected; it
	// resumes by cursor. A handler-wide watchdog enforces it rather than a
	// deadline update per write: a write still blocked 7/8 of WriteTimeout
	// after it began is cut off (checked every WriteTimeout/8, so within
	// WriteTimeout). Defaults to 10s.
	WriteTimeout time.Duration

	// Retry, when positive, is sent as the stream's "retry:" field: the
	// delay a browser's EventSource waits before reconnecting after the
	// connection drops (browsers default to about 3s). Sent once, before
	// the first event, in whole milliseconds. Zero sends none.
	Retry time.Duration

	// Preamble is the number of padding bytes of a comment sent before
	// the first event, for proxies that buffer the start of a response.
	// Zero sends none; at most MaxPreamble.
	Preamble int

	// Hijack serves HTTP/1.x streams on the hijacked connection, for hosts
	// that hold very many idle streams: once a stream's checks have passed,
	// ServeHTTP hands the connection to goroutines of the Handler and
	// returns, which releases net/http's per-connection buffers and
	// goroutine (an idle stream then costs about a third of the memory; see
	// docs/BENCHMARKS.md). The trade-off: host middleware sees the request
	// end when the stream starts, so access logs show status 0 and 0 bytes
	// ("000 0B" in chi's Logger), request metrics and traces cover only
	// the start, and neither a timeout middleware nor the request's context
	// ends the stream. The response carries the headers set on the
	// ResponseWriter before the stream starts and is delimited by closing
	// the connection. HTTP/2 streams and ResponseWriters that cannot be
	// hijacked stay inside ServeHTTP.
	//
	// A hijacked plain-TCP stream is also written inline: with a store
	// that implements taskbridge.InlineReader (memstore), a stream that is
	// its task's only subscriber gets each new event written by the
	// goroutine that appends it, with one non-blocking write, instead of
	// waking the stream's goroutine; with any store, the streams of a task
	// with several subscribers get each new event written by the task's
	// fan-out goroutine(s), one write per stream instead of a wake-up per
	// stream. No queue of woken goroutines then forms between an append
	// and its sockets (see docs/BENCHMARKS.md). The appender (or fan-out)
	// pays for those writes and for Diagnostics and metrics hooks of the
	// delivery; what a socket does not take at once is written by the
	// stream's goroutine. Set DisableInlineWrites to keep every write on
	// the stream's goroutine.
	//
	// By default every stream is served inside its ServeHTTP call, written
	// through the ResponseWriter, so middleware sees its real status, byte
	// count and duration.
	Hijack bool

	// DisableInlineWrites keeps every write of a hijacked stream on the
	// stream's goroutine (see Hijack). Under overload, when appends come
	// faster than one write each can follow, that goroutine, woken late,
	// writes many events at once: peak throughput is higher (1.6-3x in
	// docs/BENCHMARKS.md) and so is latency (p99 of 100 ms and more where
	// inline writes stay at a few ms).
	DisableInlineWrites bool
}

// Handler serves a task's event stream. Create it with [NewHandler]; it is
// safe for concurrent use.
type Handler struct {
	svc *taskbridge.Service
	cfg Config

	// hbPrefix and hbSeq make heartbeat ids unique: "hb-<random>-<n>".
	hbPrefix string
	hbSeq    atomic.Uint64

	// life tracks the streams; done is life.Done(): streams end.
	life *streamlife.Group
	// offload runs the work kept off the streams' own goroutines: each
	// stream's checks and subscription (ServeHTTP) and the steps of quiet
	// streams (stream.offloadStep). Released when no stream is left.
	offload gopool.Pool
	done    <-chan struct{}
	// wd cuts off the streams' writes that overrun Config.WriteTimeout.
	wd *writewatch.Watchdog

	// quietAfter is streamlife.QuietAfter; tests change it.
	quietAfter time.Duration
	// deliverHook, set by tests, learns the outcome of every
	// stream.deliver.
	deliverHook func(sent bool)
	// waitHook, set by tests, learns at each wait of a stream whether it
	// waits on its subscription alone (a busy stream; see stream.run).
	waitHook func(busy bool)
}

// NewHandler validates cfg, fills in defaults and returns a Handler
// streaming svc's events.
func NewHandler(svc *taskbridge.Service, cfg Config) (*Handler, error) {
	if svc == nil {
		return nil, errors.New("sse: service is nil")
	}
	if cfg.Auth == nil {
		return nil, errors.New("sse: Config.Auth is required")
	}
	if cfg.TaskID == nil {
		cfg.TaskID = TaskIDFromPath
	}
	hb, err := streamlife.HeartbeatInterval("sse", cfg.HeartbeatInterval, cfg.DisableHeartbeats)
	if err != nil {
		return nil, err
	}
	cfg.HeartbeatInterval = hb
	if cfg.WriteTimeout < 0 {
		return nil, errors.New("sse: Config.WriteTimeout must not be negative")
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Retry < 0 {
		return nil, errors.New("sse: Config.Retry must not be negative")
	}
	if cfg.Preamble < 0 || cfg.Preamble > MaxPreamble {
		return nil, fmt.Errorf("sse: Config.Preamble must be within 0..%d", MaxPreamble)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	life := streamlife.New()
	return &Handler{
		svc:        svc,
		cfg:        cfg,
		hbPrefix:   "hb-" + hex.EncodeToString(rnd[:]) + "-",
		life:       life,
		done:       life.Done(),
		wd:         writewatch.New(cfg.WriteTimeout),
		quietAfter: streamlife.QuietAfter,
		// Offloaded work runs while its stream's goroutine waits, so about
		// one goroutine per core is busy with it at a time; those that
		// wait are few, as their stacks have grown to an open's depth.
		offload: gopool.Pool{MaxIdle: max(4, runtime.GOMAXPROCS(0))},
	}, nil
}

// TaskIDFromPath is the default [Config.TaskID]: r.PathValue("taskId"), or
// else the segment before a trailing "/events/stream" of r.URL.Path.
func TaskIDFromPath(r *http.Request) string {
	if id := r.PathValue("taskId"); id != "" {
		return id
	}
	p, ok := strings.CutSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/events/stream")
	if !ok {
		return ""
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}

// lastEventID returns the client's cursor: the Last-Event-ID header, else
// the lastEventId query parameter. Either given twice, or a query string
// that does not parse (r.URL.Query would drop the pair and start the
// stream from the beginning), fails with 400 INVALID_REQUEST.
func lastEventID(r *http.Request) (string, error) {
	switch ids := r.Header.Values("Last-Event-ID"); {
	case len(ids) > 1:
		return "", fmt.Errorf("%w: the Last-Event-ID header is given %d times", taskbridge.ErrInvalidCursor, len(ids))
	case len(ids) == 1 && ids[0] != "":
		return ids[0], nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: malformed query string (a bad %%-escape or a ';' separator)", taskbridge.ErrInvalidRequest)
	}
	if ids := q["lastEventId"]; len(ids) > 1 {
		return "", fmt.Errorf("%w: the lastEventId parameter is given %d times", taskbridge.ErrInvalidCursor, len(ids))
	}
	return q.Get("lastEventId"), nil
}

// ServeHTTP implements http.Handler. It returns when the stream ends, or,
// for a hijacked stream ([Config.Hijack]), as soon as it has started.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The checks and the subscription run on another goroutine (and so
	// does the stream's first step, which writes the response head), so
	// that this one, which holds the stream, keeps a small stack (see
	// packages internal/offstack and internal/gopool).
	var s *stream
	defer func() {
		// Refused (an error answered, or a panic on its way to net/http),
		// or a hijacked stream now served by goroutines of its own: a
		// stream served here releases the pool when it leaves.
		if s == nil {
			h.life.ReleaseIfIdle(&h.offload)
		}
	}()
	h.offload.Run(func() { s = h.open(w, r) })
	if s != nil {
		s.serve(r.Context())
	}
}

// open checks the request and subscribes. It returns the stream to serve
// inside ServeHTTP, or nil when it has answered the request with an error
// or handed a hijacked stream to its goroutines.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) *stream {
	if r.Method != http.MethodGet {
		httpx.MethodNotAllowed(w, r, http.MethodGet, svcHooks.Now(h.svc))
		return nil
	}
	auth, err := httpx.Authenticate(h.cfg.Auth, r)
	if err != nil {
		h.fail(w, r, err)
		return nil
	}
	st, ok := h.life.Enter()
	if !ok {
		h.fail(w, r, taskbridge.ErrClosed)
		return nil
	}
	taskID := h.cfg.TaskID(r)
	if !taskbridge.ValidTaskID(taskID) {
		st.Leave()
		h.fail(w, r, taskbridge.ErrTaskNotFound)
		return nil
	}
	cursor, err := lastEventID(r)
	if err != nil {
		st.Leave()
		h.fail(w, r, err)
		return nil
	}
	s := &stream{h: h, st: st}
	opts := fanout.SubscribeOpts{
		Transport:         "sse",
		HeartbeatInterval: h.cfg.HeartbeatInterval,
	}
	if h.cfg.Hijack && !h.cfg.DisableInlineWrites && r.ProtoMajor == 1 && r.TLS == nil {
		// A hijacked TCP connection can take events on the appending
		// goroutine (see stream.deliver).
		s.inline = &streamInline{}
		opts.Deliver = s.deliver
	}
	sub, err := svcHooks.Subscribe(r.Context(), h.svc, auth, taskID, cursor, opts)
	if err != nil {
		st.Leave()
		h.fail(w, r, err)
		return nil
	}
	s.sub = sub
	return h.start(w, r, s)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(w, r, svcHooks.Logger(h.svc), svcHooks.Now(h.svc), err)
}

// Shutdown ends every stream and makes new requests fail with 503
// SERVICE_UNAVAILABLE, then waits until every stream has finished (its
// ServeHTTP has returned, or the goroutines of a hijacked stream have
// exited) or ctx ends. A stream blocked writing to a client that does not
// read cannot end itself before its write deadline ([Config.WriteTimeout]):
// when ctx ends first, Shutdown forces such streams to end (it closes a
// hijacked connection; inside ServeHTTP it moves the read and write
// deadlines into the past through http.ResponseController) and returns
// ctx's error once they have finished. A stream whose ResponseWriter
// supports no deadlines is not waited for then. The service itself is not
// shut down. Safe to call more than once.
func (h *Handler) Shutdown(ctx context.Context) error {
	if err := h.life.Shutdown(ctx); err != nil {
		return err
	}
	// Every stream has left: the write watchdog's goroutine is exiting.
	h.wd.Wait()
	return nil
}

// Close is Shutdown without the wait. It suits
// http.Server.RegisterOnShutdown, which runs before the server waits for
// its active requests:
//
//	srv.RegisterOnShutdown(sseHandler.Close)
func (h *Handler) Close() {
	h.life.Close()
}
