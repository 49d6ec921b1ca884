package taskbridge

import (
	"context"
	"fmt"
	"net/http"
)

// AuthContext identifies the caller of a service method.
type AuthContext struct {
	// Subject is the authenticated user; it owns the tasks it creates.
	Subject string
	// Scopes, AppID and Attributes are free for policies to use.
	Scopes     []string
	AppID      string
	Attributes map[string]string
}

// AuthContextResolver authenticates an HTTP request (including a WebSocket
// handshake) for the transports. It returns an error wrapping
// [ErrUnauthenticated] when the request has no valid credentials (HTTP 401);
// any other error is a server fault (HTTP 500).
type AuthContextResolver interface {
	ResolveAuth(r *http.Request) (AuthContext, error)
}

// AuthFunc adapts a function to [AuthContextResolver].
type AuthFunc func(r *http.Request) (AuthContext, error)

// ResolveAuth implements [AuthContextResolver].
func (f AuthFunc) ResolveAuth(r *http.Request) (AuthContext, error) { return f(r) }

// OwnershipPolicy decides who may create and see tasks. Methods return nil to
// allow and an error wrapping [ErrAccessDenied] to deny; other errors are
// server faults. Denied reads are reported to clients as TASK_NOT_FOUND, so
// task ids cannot be probed; a denied create is TASK_OWNERSHIP_ERROR.
//
// CanAccess runs before the task's payload is loaded: the task it gets has
// nil Input, Metadata and Attachments (see [TaskHeadGetter]).
type OwnershipPolicy interface {
	CanCreate(ctx context.Context, auth AuthContext, req CreateTaskRequest) error
	CanAccess(ctx context.Context, auth AuthContext, task Task) error
}

// OwnerOnly is the default [OwnershipPolicy]: any authenticated subject may
// create tasks, and a task is visible only to the subject that created it.
type OwnerOnly struct{}

// CanCreate implements [OwnershipPolicy].
func (OwnerOnly) CanCreate(_ context.Context, auth AuthContext, _ CreateTaskRequest) error {
	if auth.Subject == "" {
		return fmt.Errorf("%w: no subject", ErrAccessDenied)
	}
	return nil
}

// CanAccess implements [OwnershipPolicy].
func (OwnerOnly) CanAccess(_ context.Context, auth AuthContext, task Task) error {
	if auth.Subject == "" || auth.Subject != task.OwnerID {
		return ErrAccessDenied
	}
	return nil
}

// UploadInfo describes a file part before its body is read.
type UploadInfo struct {
	// Field is the multipart field name.
	Field string
	// Filename is the client's file name reduced to its last path segment.
	Filename string
	// ContentType is the part's declared media type.
	ContentType string
	// Index counts the request's file parts from 0.
	Index int
}

// UploadPolicy decides whether a caller may upload a file, before any of its
// bytes are read. Size, count and media-type limits are configured on the
// HTTP handler; the policy adds per-caller rules. Return an error wrapping
// [ErrUploadRejected] to refuse (HTTP 400 UPLOAD_VALIDATION_ERROR).
type UploadPolicy interface {
	AllowUpload(ctx context.Context, auth AuthContext, file UploadInfo) error
}

// AllowAllUploads is an [UploadPolicy] that accepts every file within the
// handler's limits.
type AllowAllUploads struct{}

// AllowUpload implements [UploadPolicy].
func (AllowAllUploads) AllowUpload(context.Context, AuthContext, UploadInfo) error { return nil }
