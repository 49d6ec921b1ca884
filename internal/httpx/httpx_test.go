package httpx_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))

// envelope checks rec holds a valid error envelope with status and code.
func envelope(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) taskbridge.ErrorEnvelope {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	protocoltest.ValidateErrorResponse(t, rec.Body.Bytes())
	var env taskbridge.ErrorEnvelope
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env))
	require.Equal(t, code, env.Code)
	return env
}

func TestWriteErrorCode(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	httpx.WriteErrorCode(rec, http.StatusForbidden, "ORIGIN_NOT_ALLOWED", "No", nil, now)
	env := envelope(t, rec, http.StatusForbidden, "ORIGIN_NOT_ALLOWED")
	require.Equal(t, "No", env.Message)
	require.Equal(t, map[string]any{}, env.Details)
	require.Equal(t, now.UTC(), env.Timestamp)
	require.Contains(t, rec.Body.String(), `"timestamp":"2026-01-02T02:04:05.000Z"`)

	rec = httptest.NewRecorder()
	httpx.WriteErrorCode(rec, http.StatusRequestEntityTooLarge, taskbridge.CodeInvalidRequest, "Big", map[string]any{"limitBytes": 3}, now)
	env = envelope(t, rec, http.StatusRequestEntityTooLarge, taskbridge.CodeInvalidRequest)
	require.Equal(t, map[string]any{"limitBytes": float64(3)}, env.Details)
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	httpx.MethodNotAllowed(rec, httptest.NewRequest(http.MethodDelete, "/x", nil), "GET, HEAD", now)
	env := envelope(t, rec, http.StatusMethodNotAllowed, taskbridge.CodeInvalidRequest)
	require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
	require.Equal(t, "Method DELETE is not allowed here", env.Message)
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	rec := httptest.NewRecorder()
	httpx.WriteError(rec, r, nil, now, taskbridge.ErrUnauthenticated)
	envelope(t, rec, http.StatusUnauthorized, taskbridge.CodeAuthentication)
	require.Equal(t, "Bearer", rec.Header().Get("WWW-Authenticate"))

	rec = httptest.NewRecorder()
	httpx.WriteError(rec, r, nil, now, fmt.Errorf("%w: 3 of your tasks are running", taskbridge.ErrTooManyTasks))
	env := envelope(t, rec, http.StatusTooManyRequests, taskbridge.CodeTooManyTasks)
	require.Equal(t, "Too many tasks: 3 of your tasks are running", env.Message)
	require.Equal(t, httpx.RetryAfterSeconds, rec.Header().Get("Retry-After"))

	rec = httptest.NewRecorder()
	httpx.WriteError(rec, r, nil, now, errors.New("secret internals"))
	env = envelope(t, rec, http.StatusInternalServerError, taskbridge.CodeInternal)
	require.NotContains(t, env.Message, "secret")
	require.Empty(t, rec.Header().Get("Retry-After"))
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	_, err := httpx.Authenticate(nil, r)
	require.ErrorIs(t, err, taskbridge.ErrUnauthenticated)

	resolve := func(auth taskbridge.AuthContext, err error) taskbridge.AuthContextResolver {
		return taskbridge.AuthFunc(func(*http.Request) (taskbridge.AuthContext, error) { return auth, err })
	}
	_, err = httpx.Authenticate(resolve(taskbridge.AuthContext{}, nil), r)
	require.ErrorIs(t, err, taskbridge.ErrUnauthenticated, "empty subject")
	boom := errors.New("boom")
	_, err = httpx.Authenticate(resolve(taskbridge.AuthContext{}, boom), r)
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, taskbridge.ErrUnauthenticated)
	auth, err := httpx.Authenticate(resolve(taskbridge.AuthContext{Subject: "alice"}, nil), r)
	require.NoError(t, err)
	require.Equal(t, "alice", auth.Subject)
}

func TestAppendResponseHead(t *testing.T) {
	t.Parallel()
	hdr := http.Header{
		"Content-Type":      {"text/event-stream"},
		"X-Host":            {"a", "b"},
		"Connection":        {"keep-alive"},
		"Content-Length":    {"12"},
		"Transfer-Encoding": {"chunked"},
		"Date":              {"yesterday"},
	}
	head := httpx.AppendResponseHead([]byte("prefix"), http.StatusOK, hdr, "close")
	rest, ok := bytes.CutPrefix(head, []byte("prefix"))
	require.True(t, ok)
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(rest)), nil)
	require.NoError(t, err)
	require.Equal(t, "200 OK", resp.Status)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, []string{"a", "b"}, resp.Header.Values("X-Host"))
	require.True(t, resp.Close, "Connection: close")
	require.Equal(t, 1, bytes.Count(head, []byte("\r\nConnection: ")))
	require.Empty(t, resp.Header.Values("Content-Length"))
	require.Empty(t, resp.Header.Values("Transfer-Encoding"))
	date, err := http.ParseTime(resp.Header.Get("Date"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), date, time.Minute)

	head = httpx.AppendResponseHead(nil, http.StatusSwitchingProtocols, http.Header{"Upgrade": {"websocket"}}, "Upgrade")
	require.True(t, bytes.HasPrefix(head, []byte("HTTP/1.1 101 Switching Protocols\r\n")), "%q", head)
	require.True(t, bytes.HasSuffix(head, []byte("\r\nConnection: Upgrade\r\n\r\n")), "%q", head)
	require.Contains(t, string(head), "\r\nUpgrade: websocket\r\n")
}
