package taskbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

// wireErrorCase is the expected mapping of one sentinel.
type wireErrorCase struct {
	name    string
	err     error
	status  int
	code    string
	message string
	// detailed: the message carries the text a "%w: detail" wrap adds.
	detailed bool
}

var wireErrorCases = []wireErrorCase{
	{"ErrTaskNotFound", taskbridge.ErrTaskNotFound, 404, taskbridge.CodeTaskNotFound, "Task not found", true},
	{"ErrSuspensionNotFound", taskbridge.ErrSuspensionNotFound, 404, taskbridge.CodeTaskNotFound, "Suspension not found", true},
	{"ErrAccessDenied", taskbridge.ErrAccessDenied, 404, taskbridge.CodeTaskNotFound, "Task not found", false},
	{"ErrReceiptNotFound", taskbridge.ErrReceiptNotFound, 500, taskbridge.CodeInternal, "Internal server error", false},
	{"ErrInvalidRequest", taskbridge.ErrInvalidRequest, 400, taskbridge.CodeInvalidRequest, "Invalid request", true},
	{"ErrInvalidCursor", taskbridge.ErrInvalidCursor, 400, taskbridge.CodeInvalidRequest, "Invalid event cursor", true},
	{"ErrEventsExpired", taskbridge.ErrEventsExpired, 410, taskbridge.CodeEventsExpired, "Events after cursor have expired", true},
	{"ErrIdempotencyConflict", taskbridge.ErrIdempotencyConflict, 409, taskbridge.CodeIdempotencyConflict, "Idempotency conflict", true},
	{"ErrTaskOwnership", taskbridge.ErrTaskOwnership, 403, taskbridge.CodeTaskOwnership, "Task creation not allowed", true},
	{"ErrUnauthenticated", taskbridge.ErrUnauthenticated, 401, taskbridge.CodeAuthentication, "Authentication required", false},
	{"ErrTooManyTasks", taskbridge.ErrTooManyTasks, 429, taskbridge.CodeTooManyTasks, "Too many tasks", true},
	{"ErrSubmission", taskbridge.ErrSubmission, 503, taskbridge.CodeSubmission, "The task could not be submitted; retry later", false},
	{"ErrTaskTerminal", taskbridge.ErrTaskTerminal, 409, taskbridge.CodeAlreadyTerminal, "Task is terminal", true},
	{"ErrInvalidTransition", taskbridge.ErrInvalidTransition, 409, taskbridge.CodeInvalidTaskState, "Invalid task status transition", true},
	{"ErrInvalidEvent", taskbridge.ErrInvalidEvent, 500, taskbridge.CodeInternal, "Internal server error", false},
	{"ErrDuplicateSuspension", taskbridge.ErrDuplicateSuspension, 500, taskbridge.CodeInternal, "Internal server error", false},
	{"ErrUploadRejected", taskbridge.ErrUploadRejected, 400, taskbridge.CodeUpload, "Upload rejected", true},
	{"ErrUploadTooLarge", taskbridge.ErrUploadTooLarge, 413, taskbridge.CodeUpload, "Upload rejected: too large", true},
	{"ErrClosed", taskbridge.ErrClosed, 503, taskbridge.CodeUnavailable, "The service is shutting down; retry later", false},
	{"ErrLeaseLost", taskbridge.ErrLeaseLost, 500, taskbridge.CodeInternal, "Internal server error", false},
	{"ErrTaskQuota", taskbridge.ErrTaskQuota, 429, taskbridge.CodeTooManyTasks, "Too many tasks: live-task quota reached", true},
}

// TestErrorCasesCoverEverySentinel keeps wireErrorCases in step with the
// Err* variables declared in errors.go.
func TestErrorCasesCoverEverySentinel(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	require.NoError(t, err)
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, "Err") {
					declared = append(declared, n.Name)
				}
			}
		}
	}
	var covered []string
	for _, c := range wireErrorCases {
		covered = append(covered, c.name)
	}
	require.ElementsMatch(t, declared, covered)
}

func TestHTTPErrorMapsEverySentinel(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.FixedZone("", -5*3600))
	for _, c := range wireErrorCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const secret = "db=10.0.0.3 password=hunter2"
			detail := fmt.Errorf("%w: task-42", c.err)
			wantDetail := c.message
			if c.detailed {
				wantDetail = c.message + ": task-42"
			}
			type variant struct {
				err         error
				wantMessage string
			}
			variants := map[string]variant{
				"bare": {c.err, c.message},
				// Context wrapped around the sentinel never reaches the client.
				"prefixed":       {fmt.Errorf("pgstore: %s: %w", secret, c.err), c.message},
				"twice":          {fmt.Errorf("service: %w", fmt.Errorf("store (%s): %w", secret, c.err)), c.message},
				"detail":         {detail, wantDetail},
				"detail wrapped": {fmt.Errorf("%s: %w", secret, detail), wantDetail},
			}
			for name, v := range variants {
				status, code, msg := taskbridge.HTTPError(v.err)
				require.Equal(t, c.status, status, name)
				require.Equal(t, c.code, code, name)
				require.Equal(t, v.wantMessage, msg, name)
				require.NotContains(t, msg, "hunter2", name)
				require.NotContains(t, msg, "taskbridge:", name)

				envStatus, env := taskbridge.NewErrorEnvelope(v.err, now)
				require.Equal(t, c.status, envStatus, name)
				require.Equal(t, taskbridge.ErrorEnvelope{
					Code: c.code, Message: v.wantMessage, Details: map[string]any{}, Timestamp: now.UTC(),
				}, env, name)
				b, err := json.Marshal(env)
				require.NoError(t, err)
				protocoltest.ValidateErrorResponse(t, b)
			}
		})
	}
}

func TestHTTPErrorHidesUnknownErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		errors.New("pq: password authentication failed for user admin"),
		fmt.Errorf("executor: %w", io.ErrUnexpectedEOF),
		context.DeadlineExceeded,
		fmt.Errorf("taskbridge: recording resume hand-off: %w", errors.New("disk full")),
	} {
		status, code, msg := taskbridge.HTTPError(err)
		require.Equal(t, http.StatusInternalServerError, status)
		require.Equal(t, taskbridge.CodeInternal, code)
		require.Equal(t, "Internal server error", msg)
		_, env := taskbridge.NewErrorEnvelope(err, time.Now())
		b, jerr := json.Marshal(env)
		require.NoError(t, jerr)
		require.NotContains(t, string(b), err.Error())
		protocoltest.ValidateErrorResponse(t, b)
	}

	// A sentinel with a fixed message hides what it wraps.
	status, _, msg := taskbridge.HTTPError(fmt.Errorf("%w: %w", taskbridge.ErrSubmission, errors.New("queue at 10.0.0.7 full")))
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.NotContains(t, msg, "10.0.0.7")
}

// wireSentinelLike is an error that is a sentinel through Is but does not
// carry its text.
type wireSentinelLike struct{ target error }

func (e wireSentinelLike) Error() string        { return "custom failure with internals" }
func (e wireSentinelLike) Is(target error) bool { return target == e.target }

func TestHTTPErrorCustomIsUsesSentinelText(t *testing.T) {
	t.Parallel()
	status, code, msg := taskbridge.HTTPError(wireSentinelLike{taskbridge.ErrEventsExpired})
	require.Equal(t, http.StatusGone, status)
	require.Equal(t, taskbridge.CodeEventsExpired, code)
	require.Equal(t, "Events after cursor have expired", msg)
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	var nilErr *taskbridge.ValidationError
	require.NoError(t, nilErr.Err())
	var verr taskbridge.ValidationError
	require.NoError(t, verr.Err())

	verr.Add("maxEvents", "must be between 1 and %d", 500)
	verr.Add("waitTimeoutMs", "must be between 0 and %d", 60000)
	err := verr.Err()
	require.Error(t, err)
	require.Equal(t, "taskbridge: request validation failed: maxEvents: must be between 1 and 500; "+
		"waitTimeoutMs: must be between 0 and 60000", err.Error())

	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	for _, e := range []error{err, fmt.Errorf("poll: %w", err)} {
		status, code, msg := taskbridge.HTTPError(e)
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Equal(t, taskbridge.CodeValidation, code)
		require.Equal(t, "Request validation failed", msg)

		status, env := taskbridge.NewErrorEnvelope(e, now)
		require.Equal(t, http.StatusUnprocessableEntity, status)
		b, jerr := json.Marshal(env)
		require.NoError(t, jerr)
		require.JSONEq(t, `{
			"code": "REQUEST_VALIDATION_ERROR",
			"message": "Request validation failed",
			"details": {"errors": [
				{"field": "maxEvents", "message": "must be between 1 and 500"},
				{"field": "waitTimeoutMs", "message": "must be between 0 and 60000"}
			]},
			"timestamp": "2026-05-04T12:00:00.000Z"
		}`, string(b))
		protocoltest.ValidateErrorResponse(t, b)
	}

	// A ValidationError built without fields still lists an (empty) array.
	_, env := taskbridge.NewErrorEnvelope(&taskbridge.ValidationError{}, now)
	b, err := json.Marshal(env)
	require.NoError(t, err)
	require.JSONEq(t, `{"errors":[]}`, string(wireRawMember(t, b, "details")))
}

func wireRawMember(t *testing.T, b []byte, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	return m[name]
}

// TestErrorEnvelopesMatchTheOpenAPIDocument checks that every mapped
// status, as an HTTP response of each documented operation, is accepted by
// the v1 OpenAPI document. (Which statuses each operation answers with is
// the served document's business: httpapi's tests check it.)
func TestErrorEnvelopesMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	requests := []*http.Request{
		httptest.NewRequest(http.MethodPost, "/api/v1/tasks", nil),
		httptest.NewRequest(http.MethodGet, "/api/v1/tasks/task-1/events", nil),
		httptest.NewRequest(http.MethodPost, "/api/v1/tasks/task-1/actions", nil),
		httptest.NewRequest(http.MethodPost, "/api/v1/tasks/task-1/cancel", nil),
	}
	verr := &taskbridge.ValidationError{}
	verr.Add("taskType", "is required")
	errs := []error{verr}
	for _, c := range wireErrorCases {
		errs = append(errs, c.err)
	}
	for _, err := range errs {
		status, env := taskbridge.NewErrorEnvelope(err, time.Now())
		body, jerr := json.Marshal(env)
		require.NoError(t, jerr)
		for _, req := range requests {
			require.NoError(t, protocoltest.V1ResponseError(req, status, http.Header{"Content-Type": {"application/json"}}, body))
		}
	}
}

func ExampleHTTPError() {
	err := fmt.Errorf("pgstore: loading task: %w", fmt.Errorf("%w: task-42", taskbridge.ErrTaskNotFound))
	status, code, message := taskbridge.HTTPError(err)
	fmt.Println(status, code, message)

	status, code, message = taskbridge.HTTPError(errors.New("dial tcp 10.0.0.3:5432: connection refused"))
	fmt.Println(status, code, message)
	// Output:
	// 404 TASK_NOT_FOUND Task not found: task-42
	// 500 INTERNAL_ERROR Internal server error
}

// TestErrorEnvelopeIsBounded checks that an error answer stays small
// whatever the request held: at most taskbridge.MaxFieldErrors field errors
// (with the total in details.errorCount), and clipped field names, field
// messages and messages.
func TestErrorEnvelopeIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	var verr taskbridge.ValidationError
	long := strings.Repeat("é", 100_000)
	verr.Add("f0", "unknown status %q", long)
	verr.Add("f1"+long, "is not allowed")
	for i := 2; i < 100_000; i++ {
		verr.Add(fmt.Sprint("f", i), "unknown status %q", "x")
	}
	status, env := taskbridge.NewErrorEnvelope(&verr, now)
	require.Equal(t, http.StatusUnprocessableEntity, status)
	b, err := json.Marshal(env)
	require.NoError(t, err)
	require.Less(t, len(b), 16<<10, "the envelope must stay small")
	protocoltest.ValidateErrorResponse(t, b)

	var got struct {
		Details struct {
			Errors     []taskbridge.FieldError `json:"errors"`
			ErrorCount int                     `json:"errorCount"`
		} `json:"details"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	require.Len(t, got.Details.Errors, taskbridge.MaxFieldErrors)
	require.Equal(t, 100_000, got.Details.ErrorCount)
	require.Equal(t, "f0", got.Details.Errors[0].Field, "the first errors are kept, in order")
	for _, fe := range got.Details.Errors {
		require.True(t, utf8.ValidString(fe.Field) && utf8.ValidString(fe.Message), "clipping keeps UTF-8 valid")
		require.LessOrEqual(t, len(fe.Field), 128+len("…"))
		require.LessOrEqual(t, len(fe.Message), 256+len("…"))
	}
	require.Less(t, len(verr.Error()), 16<<10, "Error() is bounded too")

	// Sentinel messages echo what the wrap adds: clipped as well.
	_, env = taskbridge.NewErrorEnvelope(fmt.Errorf("%w: %s", taskbridge.ErrInvalidRequest, long), now)
	require.LessOrEqual(t, len(env.Message), 512+len("…"))
	require.True(t, utf8.ValidString(env.Message))
	require.True(t, strings.HasPrefix(env.Message, "Invalid request: éé"))
}
