package ws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/coder/websocket"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/gopool"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/streamlife"
	"github.com/taskbridge-go/taskbridge/internal/writewatch"
)

// DefaultPath is the protocol's WebSocket route. The Android SDK builds the
// WebSocket URL from the base URL's scheme and host only, so mount the
// handler at this path on the host's root even when the HTTP API lives
// under a prefix.
const DefaultPath = "/api/v1/tasks/ws"

// Defaults for [Config].
const (
	// DefaultHeartbeatInterval is the default Config.HeartbeatInterval.
	DefaultHeartbeatInterval = streamlife.DefaultHeartbeatInterval
	// MaxHeartbeatInterval is the longest Config.HeartbeatInterval
	// NewHandler accepts. The TaskBridge SDK reconnects when a socket has
	// been silent for 60s, and an idle subscription gets its heartbeat
	// between 1 and 1.25 intervals after its last frame: at 40s it is
	// never silent for more than 50s, which leaves 10s for the network.
	MaxHeartbeatInterval = streamlife.MaxHeartbeatInterval
	// DefaultWriteTimeout is the default Config.WriteTimeout.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultSubscribeTimeout is the default Config.SubscribeTimeout.
	DefaultSubscribeTimeout = 10 * time.Second
	// DefaultMaxSubscriptions is the default Config.MaxSubscriptions.
	DefaultMaxSubscriptions = 16
	// DefaultReadLimit is the default Config.ReadLimit, in bytes.
	DefaultReadLimit = 4096
)

// WebSocket close codes used by the handler, besides the standard 1000
// (all subscribed tasks reached a terminal event), 1001 (shutdown), 1008
// (policy violation: a bad or unexpected frame, an unknown or foreign task,
// a malformed cursor, too many subscriptions) and 1011 (internal error).
const (
	// CloseEventsExpired closes a socket whose cursor names events removed
	// by retention (the WebSocket form of HTTP 410 EVENTS_EXPIRED).
	CloseEventsExpired websocket.StatusCode = 4410
)

// Config configures a [Handler]. A zero field means its default.
type Config struct {
	// Auth authenticates the handshake request. Required: NewHandler
	// fails without it. An unauthenticated handshake gets an HTTP 401
	// AUTHENTICATION_ERROR envelope and no upgrade, so clients can refresh
	// credentials and retry.
	Auth taskbridge.AuthContextResolver

	// OriginPatterns lists the browser origins, besides the request's own,
	// allowed to open a socket, with the semantics of
	// websocket.AcceptOptions.OriginPatterns: a pattern is matched, case
	// insensitively and with path.Match syntax, against the Origin's host
	// (with its port, if any), so it admits both http and https pages of
	// that host, or against "scheme://host" when the pattern contains
	// "://". Examples: "app.example.com", "*.example.com",
	// "https://app.example.com", "localhost:*".
	//
	// The request's own origin is always allowed: an Origin whose host
	// equals the request's Host and whose scheme matches the request's.
	// An https page is the request's own on any request (behind a
	// TLS-terminating proxy the handler sees plain http); an http page
	// is not when the request came over TLS, or, with
	// TrustForwardedProto, when the proxy says it did. Requests without
	// an Origin header (native clients such as the Android SDK) are
	// allowed too. Any other handshake is refused with a 403
	// [CodeOriginNotAllowed] envelope, which blocks cross-site WebSocket
	// hijacking with ambient credentials. There is no switch that
	// disables the check; a pattern of "*" admits any origin's host, and
	// NewHandler fails on a malformed or empty pattern.
	OriginPatterns []string

	// TrustForwardedProto makes the origin check take the request's
	// scheme from the first value of its X-Forwarded-Proto header when
	// the connection itself is not TLS. Set it when every request reaches
	// the handler through a TLS-terminating proxy that sets that header:
	// then an http page of the handler's own host is refused on a socket
	// the browser opened over https, as it is when the handler serves TLS
	// itself. Without it, behind such a proxy, an http page of the same
	// host is allowed, since the handler cannot tell. Browsers do not let
	// pages set the header, so it cannot be used to widen the check.
	TrustForwardedProto bool

	// HeartbeatInterval is how long a subscription may be idle before a
	// HEARTBEAT frame is sent for it (it goes out within a quarter of an
	// interval after that). Defaults to 15s; at most
	// [MaxHeartbeatInterval], since the TaskBridge SDK reconnects after
	// 60s without a frame: NewHandler fails on a longer or a negative
	// interval.
	HeartbeatInterval time.Duration

	// DisableHeartbeats sends no HEARTBEAT frames at all, for clients
	// that keep no liveness timer of their own. Do not set it for the
	// TaskBridge SDK: it would reconnect every time a task is quiet for
	// 60s. HeartbeatInterval must then be zero.
	DisableHeartbeats bool

	// WriteTimeout bounds every write to the socket. A client that does
	// not take the bytes in time is disconnected; it resumes by cursor. A
	// handler-wide watchdog enforces it rather than a deadline update per
	// write: a write still blocked 7/8 of WriteTimeout after it began is
	// cut off (checked every WriteTimeout/8, so within WriteTimeout).
	// Defaults to 10s.
	WriteTimeout time.Duration

	// SubscribeTimeout is how long the client has to send its first
	// subscribe frame after the upgrade; a socket without one is closed
	// with 1008. Defaults to 10s.
	SubscribeTimeout time.Duration

	// MaxSubscriptions bounds the tasks one socket may subscribe to at
	// once; a subscribe frame beyond it closes the socket with 1008.
	// Defaults to 16. 1 disables multiplexing.
	MaxSubscriptions int

	// ReadLimit bounds a client message in bytes; a larger one closes the
	// socket with 1009. Defaults to 4096.
	ReadLimit int64

	// DisableInlineWrites keeps every write on the connection's
	// goroutine. By default, with a store that implements
	// taskbridge.InlineReader (memstore), a subscription that is its
	// task's only subscriber gets each new event written to the socket
	// by the goroutine that appends it, with one write that does not
	// wait, instead of waking the connection's goroutine; with any store,
	// the subscriptions of a task with several subscribers get each new
	// event written by the task's fan-out goroutine(s). No queue of woken
	// goroutines then forms between an append and its sockets. The
	// appender (or fan-out) pays for those writes (and for Diagnostics and
	// metrics hooks of the delivery); what the socket does not take at
	// once is written by the connection's goroutine.
	// Under overload, when appends come faster than one write each can
	// follow, the connection's goroutine, woken late, would write many
	// events at once: peak throughput is higher without inline writes,
	// and so is latency (see docs/BENCHMARKS.md). TLS connections served
	// by the handler itself never write inline.
	DisableInlineWrites bool
}

// Handler serves the TaskBridge WebSocket endpoint. Create it with
// [NewHandler]; it is safe for concurrent use.
type Handler struct {
	svc    *taskbridge.Service
	cfg    Config
	accept websocket.AcceptOptions
	wire   wireConfig

	origins []originPattern

	// life tracks handshakes in progress and open connections; done is
	// life.Done(): connections close with 1001.
	life *streamlife.Group
	done <-chan struct{}
	// offload runs the deep work of connections that are not busy (see
	// conn.run and conn.step). Released when no connection is left.
	offload gopool.Pool
	// quietAfter is streamlife.QuietAfter; tests change it.
	quietAfter time.Duration
	// roundHook, set by tests, is called at the start of every round.
	roundHook func()
	// readHook, set by tests, is called before every read of a client
	// message through the library, on the goroutine that reads.
	readHook func()
	// closeHook, set by tests, learns how each close handshake ended.
	closeHook func(error)
}

// NewHandler validates cfg, fills in defaults and returns a Handler
// streaming svc's events.
func NewHandler(svc *taskbridge.Service, cfg Config) (*Handler, error) {
	if svc == nil {
		return nil, errors.New("ws: service is nil")
	}
	if cfg.Auth == nil {
		return nil, errors.New("ws: Config.Auth is required")
	}
	hb, err := streamlife.HeartbeatInterval("ws", cfg.HeartbeatInterval, cfg.DisableHeartbeats)
	if err != nil {
		return nil, err
	}
	cfg.HeartbeatInterval = hb
	if cfg.WriteTimeout < 0 || cfg.SubscribeTimeout < 0 || cfg.MaxSubscriptions < 0 || cfg.ReadLimit < 0 {
		return nil, errors.New("ws: Config durations and limits must not be negative")
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.SubscribeTimeout == 0 {
		cfg.SubscribeTimeout = DefaultSubscribeTimeout
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.ReadLimit == 0 {
		cfg.ReadLimit = DefaultReadLimit
	}
	cfg.OriginPatterns = append([]string(nil), cfg.OriginPatterns...)
	origins, err := compileOrigins(cfg.OriginPatterns)
	if err != nil {
		return nil, err
	}
	life := streamlife.New()
	return &Handler{
		svc: svc,
		cfg: cfg,
		accept: websocket.AcceptOptions{
			// The handler checks origins itself before Accept, to answer
			// with an error envelope; the library checks again, with the
			// same patterns.
			OriginPatterns: cfg.OriginPatterns,
			// Compression stays off explicitly: the handler writes its
			// data frames uncompressed, and netConn fails a connection
			// on which the library writes a compressed frame.
			CompressionMode: websocket.CompressionDisabled,
		},
		wire:       wireConfig{wd: writewatch.New(cfg.WriteTimeout), log: svcHooks.Logger(svc)},
		origins:    origins,
		life:       life,
		done:       life.Done(),
		offload:    gopool.Pool{MaxIdle: max(4, runtime.GOMAXPROCS(0))},
		quietAfter: streamlife.QuietAfter,
	}, nil
}

// ServeHTTP implements http.Handler. It checks the handshake, its origin
// and its credentials, upgrades the connection and hands it to goroutines
// owned by the Handler, then returns: host middleware sees the request end
// at the upgrade, and the server's per-request memory is released for the
// connection's lifetime. Every answer but the 101 is a protocol error
// envelope (see the package documentation).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := svcHooks.Now(h.svc)
	if r.Method != http.MethodGet {
		httpx.MethodNotAllowed(w, r, http.MethodGet, now)
		return
	}
	if status, msg := checkHandshake(w.Header(), r); status != 0 {
		httpx.WriteErrorCode(w, status, taskbridge.CodeInvalidRequest, msg, nil, now)
		return
	}
	if !originAllowed(r, h.origins, h.cfg.TrustForwardedProto) {
		originRefused(w, r, now)
		return
	}
	auth, err := httpx.Authenticate(h.cfg.Auth, r)
	if err != nil {
		httpx.WriteError(w, r, svcHooks.Logger(h.svc), now, err)
		return
	}
	st, ok := h.life.Enter()
	if !ok {
		httpx.WriteError(w, r, svcHooks.Logger(h.svc), now, taskbridge.ErrClosed)
		return
	}
	uw := &upgradeWriter{ResponseWriter: w, wire: &h.wire}
	wc, err := websocket.Accept(uw, r, &h.accept)
	if err != nil {
		st.Leave()
		h.refused(w, r, uw, err)
		return
	}
	wc.SetReadLimit(h.cfg.ReadLimit)
	c := newConn(r.Context(), h, wc, uw.conn, auth, st)
	st.OnAbort(c.abort)
	st.OnClose(c)
	go c.run()
}

// refused answers a handshake Accept refused despite the checks above,
// with an envelope carrying the status Accept chose (it was held back by
// the upgradeWriter). A connection that could not be hijacked (host
// middleware whose ResponseWriter hides http.Hijacker) is a server fault:
// 500.
func (h *Handler) refused(w http.ResponseWriter, r *http.Request, uw *upgradeWriter, err error) {
	if uw.conn != nil {
		// Accept does not fail once it has hijacked the connection; should
		// it, nothing more can be answered on it.
		_ = uw.conn.Conn.Close()
		uw.conn.release()
		return
	}
	now := svcHooks.Now(h.svc)
	switch status := uw.status; {
	case status == http.StatusForbidden:
		originRefused(w, r, now)
	case status >= 400 && status < 500:
		httpx.WriteErrorCode(w, status, taskbridge.CodeInvalidRequest, "Invalid WebSocket handshake", nil, now)
	default:
		httpx.WriteError(w, r, svcHooks.Logger(h.svc), now, fmt.Errorf("ws: upgrade failed: %w", err))
	}
}

// Shutdown closes every connection with 1001 (going away), so clients
// reconnect elsewhere, makes new handshakes fail with 503
// SERVICE_UNAVAILABLE and waits until the connections' goroutines have
// exited. When ctx ends first, the remaining connections are dropped
// without a close handshake and ctx's error is returned once their
// goroutines have exited. The service itself is not shut down. Safe to
// call more than once.
//
// Hijacked connections are not tracked by http.Server, so its Shutdown
// neither closes nor waits for them: call this as well.
func (h *Handler) Shutdown(ctx context.Context) error {
	if err := h.life.Shutdown(ctx); err != nil {
		return err
	}
	// Every connection has left: the write watchdog's goroutine is
	// exiting.
	h.wire.wd.Wait()
	return nil
}

// Close is Shutdown without the wait, for http.Server.RegisterOnShutdown:
//
//	srv.RegisterOnShutdown(wsHandler.Close)
func (h *Handler) Close() {
	h.life.Close()
}
