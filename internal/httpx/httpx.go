// Package httpx holds the small HTTP helpers shared by the transports:
// JSON responses, protocol error envelopes and authentication.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"INTERNAL_ERROR","message":"Internal server error","details":{},"timestamp":"` +
			time.Now().UTC().Format(time.RFC3339Nano) + `"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteError writes err as the protocol error envelope. Server faults (5xx
// other than deliberate 503s) are logged with the request path; their
// internals never reach the client.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, now time.Time, err error) {
	status, env := taskbridge.NewErrorEnvelope(err, now)
	if status == http.StatusInternalServerError && log != nil {
		log.ErrorContext(r.Context(), "taskbridge: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	WriteJSON(w, status, env)
}

// Authenticate resolves the caller of r. A nil resolver, an error wrapping
// taskbridge.ErrUnauthenticated or an empty subject give an error wrapping
// ErrUnauthenticated; other resolver errors are returned wrapped as they are.
func Authenticate(res taskbridge.AuthContextResolver, r *http.Request) (taskbridge.AuthContext, error) {
	if res == nil {
		return taskbridge.AuthContext{}, fmt.Errorf("%w: no authentication configured", taskbridge.ErrUnauthenticated)
	}
	auth, err := res.ResolveAuth(r)
	if err != nil {
		if errors.Is(err, taskbridge.ErrUnauthenticated) {
			return taskbridge.AuthContext{}, err
		}
		return taskbridge.AuthContext{}, fmt.Errorf("taskbridge: resolving auth: %w", err)
	}
	if auth.Subject == "" {
		return taskbridge.AuthContext{}, fmt.Errorf("%w: empty subject", taskbridge.ErrUnauthenticated)
	}
	return auth, nil
}
