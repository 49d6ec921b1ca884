package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// Config configures a [Handler]. A zero field means its default.
type Config struct {
	// Auth authenticates every request except the health and readiness
	// probes. Required: New fails without it. A request it does not
	// authenticate gets 401 AUTHENTICATION_ERROR.
	Auth taskbridge.AuthContextResolver

	// Paths overrides the route paths. Zero fields keep their defaults.
	Paths Paths

	// Stream, when set, serves GET Paths.Stream (the sse package's handler).
	// When nil the stream path answers 404.
	Stream http.Handler
	// WebSocket, when set, serves GET Paths.WebSocket (the ws package's
	// handler). When nil the path is not routed specially.
	//
	// Requests handed to Stream and WebSocket keep their URL (r.URL.Path
	// is the path as received, mount prefix included) and are not
	// authenticated by this handler: those handlers authenticate
	// themselves. For the stream route the matched task id, percent-decoded,
	// is available as r.PathValue("taskId").
	WebSocket http.Handler

	// Uploads limits multipart uploads on the create route.
	Uploads UploadLimits
	// UploadPolicy is asked about every file part before its bytes are
	// read. Defaults to [taskbridge.AllowAllUploads].
	UploadPolicy taskbridge.UploadPolicy
	// Sink stores uploaded files. Defaults to a [TempDirSink] spooling to
	// os.TempDir().
	Sink AttachmentSink
	// FileFields are the multipart field names that carry files. A file
	// part (one whose Content-Disposition has a filename) in any other
	// field fails the request with 400 UPLOAD_VALIDATION_ERROR naming
	// these fields, so that no file is silently dropped. Defaults to
	// "attachments" (the Android SDK's default) and "attachment".
	FileFields []string

	// CrossOrigin guards the state-changing routes (create, cancel,
	// actions) against cross-site request forgery on hosts that
	// authenticate with cookies. It checks the requests a page on another
	// site can send without a CORS preflight: those without a JSON
	// Content-Type (a multipart create, a cancel without a body or typed
	// as a form or text, a body without a type). A browser marks where
	// they come from (Sec-Fetch-Site, Origin); cross-origin ones are 403
	// INVALID_REQUEST. Requests without those headers (the Android SDK,
	// curl, servers) pass. Requests with a JSON Content-Type are left to
	// the host's CORS policy, since a browser sends them cross-origin only
	// after a preflight it allows. Defaults to
	// http.NewCrossOriginProtection(); add a web front end on another
	// origin that posts multipart creates with AddTrustedOrigin.
	CrossOrigin *http.CrossOriginProtection

	// BodyReadTimeout is how long the body of a JSON create, a cancel or an
	// action may take to arrive, from when the handler starts reading it;
	// a body still incomplete then gets 408 INVALID_REQUEST. It is set per
	// request with http.ResponseController, so it does not touch the
	// server's other requests or long-lived streams. Defaults to 30s.
	BodyReadTimeout time.Duration

	// MaxJSONBytes bounds JSON request bodies and every non-file part of a
	// multipart request. A larger body gets 413. Defaults to 1 MiB.
	MaxJSONBytes int64
	// ReadyTimeout bounds the readiness check behind the readiness route.
	// Defaults to 5s.
	ReadyTimeout time.Duration

	// ServeOpenAPI serves the OpenAPI document of the handler's routes
	// ([Handler.OpenAPIDocument]) at GET and HEAD Paths.OpenAPI,
	// unauthenticated, like the health and readiness probes. Off by
	// default: the document describes the protocol, which is public, but
	// whether to publish it is the host's choice. A host that wants it
	// behind its own authentication serves Handler.OpenAPIDocument itself.
	ServeOpenAPI bool
}

// Paths are the routes a [Handler] serves, relative to where it is mounted.
// Paths containing {taskId} must hold it as one whole segment, exactly
// once; the others must not hold it. A zero field keeps its default.
type Paths struct {
	// Tasks serves POST (create a task) and GET (list the caller's tasks).
	// Defaults to "/api/v1/tasks".
	Tasks string
	// Task serves GET (a task's snapshot). Defaults to
	// "/api/v1/tasks/{taskId}".
	Task string
	// Events serves GET (poll events). Defaults to
	// "/api/v1/tasks/{taskId}/events".
	Events string
	// Stream is where Config.Stream is mounted (GET). Defaults to
	// "/api/v1/tasks/{taskId}/events/stream".
	Stream string
	// Cancel serves POST (request cancellation). Defaults to
	// "/api/v1/tasks/{taskId}/cancel".
	Cancel string
	// Actions serves POST (submit an action). Defaults to
	// "/api/v1/tasks/{taskId}/actions".
	Actions string
	// WebSocket is where Config.WebSocket is mounted (GET). Defaults to
	// "/api/v1/tasks/ws".
	WebSocket string
	// Health serves GET and HEAD, unauthenticated: 200 {"status":"ok"}.
	// Defaults to "/health".
	Health string
	// Ready serves GET and HEAD, unauthenticated: the service's readiness
	// report, 200 when ready and 503 when not. Defaults to "/ready".
	Ready string
	// OpenAPI serves GET and HEAD, unauthenticated, when
	// Config.ServeOpenAPI is set: the OpenAPI document of the handler's
	// routes. Defaults to "/openapi.json".
	OpenAPI string
}

// DefaultPaths returns the protocol's default route paths.
func DefaultPaths() Paths {
	return Paths{
		Tasks:     "/api/v1/tasks",
		Task:      "/api/v1/tasks/{taskId}",
		Events:    "/api/v1/tasks/{taskId}/events",
		Stream:    "/api/v1/tasks/{taskId}/events/stream",
		Cancel:    "/api/v1/tasks/{taskId}/cancel",
		Actions:   "/api/v1/tasks/{taskId}/actions",
		WebSocket: "/api/v1/tasks/ws",
		Health:    "/health",
		Ready:     "/ready",
		OpenAPI:   "/openapi.json",
	}
}

// UploadLimits bounds multipart create requests. They are enforced while the
// body is read, so an oversized request is refused after reading at most a
// few KiB beyond the limit. A zero field means its default.
type UploadLimits struct {
	// MaxFileBytes bounds each file. A larger file gets 413
	// UPLOAD_VALIDATION_ERROR. Defaults to 10 MiB.
	MaxFileBytes int64
	// MaxRequestBytes bounds the whole multipart body, files and text parts
	// together. A larger body gets 413 UPLOAD_VALIDATION_ERROR. Defaults to
	// 32 MiB, or MaxFileBytes + 1 MiB if that is larger.
	MaxRequestBytes int64
	// MaxFiles bounds the number of file parts. More get 400
	// UPLOAD_VALIDATION_ERROR. Defaults to 10.
	MaxFiles int
	// ReadTimeout is how long a multipart create body may take to arrive,
	// files included; a body still incomplete then gets 408
	// UPLOAD_VALIDATION_ERROR and its files are discarded. Defaults to 5m.
	ReadTimeout time.Duration
	// AllowedContentTypes lists the media types files may declare, such as
	// "image/png", or "image/*" for a whole type; matching ignores case and
	// parameters. A file with another type gets 400
	// UPLOAD_VALIDATION_ERROR. Empty allows every type.
	AllowedContentTypes []string
}

// Default limits.
const (
	DefaultMaxFileBytes      int64 = 10 << 20
	DefaultMaxRequestBytes   int64 = 32 << 20
	DefaultMaxFiles                = 10
	DefaultMaxJSONBytes      int64 = 1 << 20
	DefaultReadyTimeout            = 5 * time.Second
	DefaultBodyReadTimeout         = 30 * time.Second
	DefaultUploadReadTimeout       = 5 * time.Minute
)

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Auth == nil {
		return cfg, errors.New("httpapi: Config.Auth is required")
	}
	if cfg.UploadPolicy == nil {
		cfg.UploadPolicy = taskbridge.AllowAllUploads{}
	}
	if cfg.Sink == nil {
		cfg.Sink = &TempDirSink{}
	}
	if cfg.CrossOrigin == nil {
		cfg.CrossOrigin = http.NewCrossOriginProtection()
	}
	if err := cfg.fileFields(); err != nil {
		return cfg, err
	}
	if cfg.MaxJSONBytes < 0 || cfg.Uploads.MaxFileBytes < 0 || cfg.Uploads.MaxRequestBytes < 0 ||
		cfg.Uploads.MaxFiles < 0 || cfg.ReadyTimeout < 0 || cfg.BodyReadTimeout < 0 || cfg.Uploads.ReadTimeout < 0 {
		return cfg, errors.New("httpapi: limits and timeouts must not be negative")
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.Uploads.ReadTimeout == 0 {
		cfg.Uploads.ReadTimeout = DefaultUploadReadTimeout
	}
	if cfg.MaxJSONBytes == 0 {
		cfg.MaxJSONBytes = DefaultMaxJSONBytes
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	u := &cfg.Uploads
	if u.MaxFileBytes == 0 {
		u.MaxFileBytes = DefaultMaxFileBytes
	}
	if u.MaxRequestBytes == 0 {
		u.MaxRequestBytes = max(DefaultMaxRequestBytes, u.MaxFileBytes+1<<20)
	}
	if u.MaxFiles == 0 {
		u.MaxFiles = DefaultMaxFiles
	}
	types := make([]string, 0, len(u.AllowedContentTypes))
	for _, t := range u.AllowedContentTypes {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || strings.Count(t, "/") != 1 || strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") {
			return cfg, fmt.Errorf("httpapi: invalid allowed content type %q", t)
		}
		types = append(types, t)
	}
	u.AllowedContentTypes = types

	def := DefaultPaths()
	p := &cfg.Paths
	for _, f := range []struct {
		val  *string
		def  string
		name string
	}{
		{&p.Tasks, def.Tasks, "Tasks"}, {&p.Task, def.Task, "Task"}, {&p.Events, def.Events, "Events"},
		{&p.Stream, def.Stream, "Stream"}, {&p.Cancel, def.Cancel, "Cancel"}, {&p.Actions, def.Actions, "Actions"},
		{&p.WebSocket, def.WebSocket, "WebSocket"}, {&p.Health, def.Health, "Health"}, {&p.Ready, def.Ready, "Ready"},
		{&p.OpenAPI, def.OpenAPI, "OpenAPI"},
	} {
		if *f.val == "" {
			*f.val = f.def
		}
		wantParam := strings.Contains(f.def, "{taskId}")
		if err := checkPath(*f.val, wantParam); err != nil {
			return cfg, fmt.Errorf("httpapi: Paths.%s: %w", f.name, err)
		}
	}
	return cfg, nil
}

// fileFields validates FileFields (on a copy) and fills in its default.
func (cfg *Config) fileFields() error {
	if len(cfg.FileFields) == 0 {
		cfg.FileFields = []string{fieldAttachments, fieldAttachment}
		return nil
	}
	fields := slices.Clone(cfg.FileFields)
	for i, f := range fields {
		switch {
		case f == "" || strings.ContainsAny(f, "\"\r\n"):
			return fmt.Errorf("httpapi: FileFields: invalid field name %q", f)
		case slices.Contains(textFields, f):
			return fmt.Errorf("httpapi: FileFields: %q is a text field of the create request", f)
		case slices.Contains(fields[:i], f):
			return fmt.Errorf("httpapi: FileFields: %q is listed twice", f)
		}
	}
	cfg.FileFields = fields
	return nil
}

// allowedType reports whether the lower-case media type mt is allowed.
func (u UploadLimits) allowedType(mt string) bool {
	if len(u.AllowedContentTypes) == 0 {
		return true
	}
	for _, t := range u.AllowedContentTypes {
		if t == mt || (strings.HasSuffix(t, "/*") && strings.HasPrefix(mt, t[:len(t)-1])) {
			return true
		}
	}
	return false
}
