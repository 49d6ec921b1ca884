package ws

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// DefaultPath is the protocol's WebSocket route. The Android SDK builds the
// WebSocket URL from the base URL's scheme and host only, so mount the
// handler at this path on the host's root even when the HTTP API lives
// under a prefix.
const DefaultPath = "/api/v1/tasks/ws"

// Defaults for [Config].
const (
	// DefaultHeartbeatInterval is the default Config.HeartbeatInterval.
	DefaultHeartbeatInterval = 15 * time.Second
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

	// OriginPatterns lists the browser origins, besides the request's own
	// host, allowed to open a socket (see websocket.AcceptOptions): host
	// patterns such as "app.example.com" or "*.example.com", or
	// "scheme://host" patterns. Requests without an Origin header (native
	// clients such as the Android SDK) are always allowed. Any other
	// cross-origin handshake is refused with 403, which blocks cross-site
	// WebSocket hijacking with ambient credentials.
	OriginPatterns []string

	// HeartbeatInterval is how long a subscription may be idle before a
	// HEARTBEAT frame is sent for it. Defaults to 15s. Negative disables
	// heartbeats.
	HeartbeatInterval time.Duration

	// WriteTimeout bounds every write to the socket. A client that does
	// not take the bytes in time is disconnected; it resumes by cursor.
	// Defaults to 10s.
	WriteTimeout time.Duration

	// SubscribeTimeout is how long the client has to send its first
	// subscribe frame after the upgrade. Defaults to 10s.
	SubscribeTimeout time.Duration

	// MaxSubscriptions bounds the tasks one socket may subscribe to at
	// once; a subscribe frame beyond it closes the socket with 1008.
	// Defaults to 16. 1 disables multiplexing.
	MaxSubscriptions int

	// ReadLimit bounds a client message in bytes; a larger one closes the
	// socket with 1009. Defaults to 4096.
	ReadLimit int64
}

// Handler serves the TaskBridge WebSocket endpoint. Create it with
// [NewHandler]; it is safe for concurrent use.
type Handler struct {
	svc    *taskbridge.Service
	cfg    Config
	accept websocket.AcceptOptions

	mu     sync.Mutex
	active int // handshakes in progress plus open connections
	conns  map[*conn]struct{}
	closed bool
	done   chan struct{} // closed by Shutdown: connections close with 1001
	idle   chan struct{} // closed when closed and active == 0
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
	switch {
	case cfg.HeartbeatInterval == 0:
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	case cfg.HeartbeatInterval < 0:
		cfg.HeartbeatInterval = 0
	}
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
	return &Handler{
		svc: svc,
		cfg: cfg,
		accept: websocket.AcceptOptions{
			OriginPatterns:  cfg.OriginPatterns,
			CompressionMode: websocket.CompressionDisabled,
		},
		conns: map[*conn]struct{}{},
		done:  make(chan struct{}),
		idle:  make(chan struct{}),
	}, nil
}

// ServeHTTP implements http.Handler. It authenticates the request, upgrades
// it and hands the connection to goroutines owned by the Handler, then
// returns: host middleware sees the request end at the upgrade, and the
// server's per-request memory is released for the connection's lifetime.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth, err := httpx.Authenticate(h.cfg.Auth, r)
	if err != nil {
		httpx.WriteError(w, r, h.svc.Logger(), h.svc.Now(), err)
		return
	}
	if !h.enter() {
		httpx.WriteError(w, r, h.svc.Logger(), h.svc.Now(), taskbridge.ErrClosed)
		return
	}
	uw := &upgradeWriter{ResponseWriter: w, writeTimeout: h.cfg.WriteTimeout}
	wc, err := websocket.Accept(uw, r, &h.accept)
	if err != nil {
		// Accept has answered the request (403 for a foreign origin, 426
		// for a plain request, ...).
		h.leave(nil)
		return
	}
	wc.SetReadLimit(h.cfg.ReadLimit)
	c := newConn(h, wc, uw.conn, auth)
	if !h.register(c) {
		_ = wc.Close(websocket.StatusGoingAway, "server shutting down")
		h.leave(nil)
		return
	}
	go c.run()
}

// enter counts a handshake in; false once the handler is shut down.
func (h *Handler) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.active++
	return true
}

func (h *Handler) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

// leave counts a handshake or connection out.
func (h *Handler) leave(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c != nil {
		delete(h.conns, c)
	}
	h.active--
	if h.closed && h.active == 0 {
		close(h.idle)
	}
}

// Shutdown closes every connection with 1001 (going away), so clients
// reconnect elsewhere, makes new handshakes fail with 503
// SERVICE_UNAVAILABLE and waits until the connections' goroutines have
// exited. When ctx ends first, the remaining connections are dropped
// without a close handshake and ctx's error is returned. The service itself
// is not shut down. Safe to call more than once.
//
// Hijacked connections are not tracked by http.Server, so its Shutdown
// neither closes nor waits for them: call this as well.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.Close()
	select {
	case <-h.idle:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	for c := range h.conns {
		c.abort()
	}
	h.mu.Unlock()
	return ctx.Err()
}

// Close is Shutdown without the wait, for http.Server.RegisterOnShutdown:
//
//	srv.RegisterOnShutdown(wsHandler.Close)
func (h *Handler) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	if h.active == 0 {
		close(h.idle)
	}
}
