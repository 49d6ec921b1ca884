package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// WriteJSON writes v as a JSON response with the given status.
// A json.Marshaler's encoding is written as it is: taskbridge's types
// encode themselves compactly and validly (those that use encoding/json
// inside are already compact and escaped), and a poll response need not be
// scanned a second time.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		b, err = m.MarshalJSON()
	} else {
		b, err = json.Marshal(v)
	}
	WriteJSONBytes(w, status, b, err)
}

// WriteJSONBytes writes b, a compact JSON encoding, as a response with the
// given status; err is the encoder's error, for which it writes a 500
// INTERNAL_ERROR envelope instead. A caller with a concrete type calls its
// MarshalJSON itself and saves WriteJSON's boxing of the value.
func WriteJSONBytes(w http.ResponseWriter, status int, b []byte, err error) {
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"INTERNAL_ERROR","message":"Internal server error","details":{},"timestamp":"` +
			wire.FormatTime(time.Now()) + `"}`)
	}
	// The keys are canonical already: assigned directly, without
	// Header.Set's check of every byte of the key, and the values are
	// shared (net/http copies them when it writes the header).
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = cacheControlNoStore
	w.WriteHeader(status)
	if len(b) < cap(b) {
		_, _ = w.Write(append(b, '\n'))
		return
	}
	// Appending to a full b would copy it: the newline goes on its own.
	if _, err := w.Write(b); err == nil {
		_, _ = w.Write(newline)
	}
}

var newline = []byte{'\n'}

// The header values of every JSON response: shared, never modified.
var (
	contentTypeJSON     = []string{"application/json"}
	cacheControlNoStore = []string{"no-store"}
)

// RetryAfterSeconds is the Retry-After header of a 429 response: how long a
// client should wait before it retries a create refused for having too many
// tasks.
const RetryAfterSeconds = "1"

// WriteError writes err as the protocol error envelope. Server faults (5xx
// other than deliberate 503s) are logged with the request path; their
// internals never reach the client. A 401 gets a WWW-Authenticate header
// and a 429 a Retry-After header.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, now time.Time, err error) {
	status, env := taskbridge.NewErrorEnvelope(err, now)
	if status == http.StatusInternalServerError && log != nil {
		log.ErrorContext(r.Context(), "taskbridge: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", "Bearer")
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", RetryAfterSeconds)
	}
	WriteJSON(w, status, env)
}

// WriteErrorCode writes a protocol error envelope with a status and code
// chosen by the caller, for refusals no taskbridge error maps to (routing,
// methods, WebSocket handshakes). A nil details is sent as {}.
func WriteErrorCode(w http.ResponseWriter, status int, code, message string, details map[string]any, now time.Time) {
	if details == nil {
		details = map[string]any{}
	}
	WriteJSON(w, status, taskbridge.ErrorEnvelope{Code: code, Message: message, Details: details, Timestamp: now.UTC()})
}

// MethodNotAllowed answers r with 405 INVALID_REQUEST and an Allow header
// listing allow (comma separated).
func MethodNotAllowed(w http.ResponseWriter, r *http.Request, allow string, now time.Time) {
	w.Header().Set("Allow", allow)
	WriteErrorCode(w, http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest,
		"Method "+r.Method+" is not allowed here", nil, now)
}

// framingHeaders are written by AppendResponseHead itself.
var framingHeaders = map[string]bool{"Connection": true, "Content-Length": true, "Transfer-Encoding": true, "Date": true}

// AppendResponseHead appends an HTTP/1.1 response head to b, for a response
// written on a hijacked connection: the status line, hdr (the
// ResponseWriter's header, so headers set by host middleware are kept)
// without its framing headers, a Date, "Connection: <connection>" and the
// blank line. The body, if any, is delimited by closing the connection.
func AppendResponseHead(b []byte, status int, hdr http.Header, connection string) []byte {
	buf := bytes.NewBuffer(b)
	buf.WriteString("HTTP/1.1 ")
	buf.WriteString(strconv.Itoa(status))
	buf.WriteByte(' ')
	buf.WriteString(http.StatusText(status))
	buf.WriteString("\r\n")
	_ = hdr.WriteSubset(buf, framingHeaders)
	buf.WriteString("Date: ")
	buf.Write(time.Now().UTC().AppendFormat(nil, http.TimeFormat))
	buf.WriteString("\r\nConnection: ")
	buf.WriteString(connection)
	buf.WriteString("\r\n\r\n")
	return buf.Bytes()
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
