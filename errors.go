package taskbridge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Stores, policies and executors return these (wrapped with
// %w as they like); [HTTPError] maps them to protocol error codes.
var (
	// ErrTaskNotFound: the task does not exist, or the caller may not see it.
	ErrTaskNotFound = errors.New("taskbridge: task not found")
	// ErrSuspensionNotFound: the task has no suspension with that id.
	ErrSuspensionNotFound = errors.New("taskbridge: suspension not found")
	// ErrReceiptNotFound: no action receipt for that (task, clientActionId).
	ErrReceiptNotFound = errors.New("taskbridge: action receipt not found")
	// ErrInvalidRequest: the request is malformed.
	ErrInvalidRequest = errors.New("taskbridge: invalid request")
	// ErrInvalidCursor: an event cursor is malformed or names no event the
	// task's log could have issued (it is ahead of the log).
	ErrInvalidCursor = errors.New("taskbridge: invalid event cursor")
	// ErrEventsExpired: events after the cursor were removed by retention, so
	// replay from it would skip events.
	ErrEventsExpired = errors.New("taskbridge: events after cursor have expired")
	// ErrIdempotencyConflict: a clientRequestId or clientActionId was reused
	// with a different payload.
	ErrIdempotencyConflict = errors.New("taskbridge: idempotency conflict")
	// ErrAccessDenied is returned by an [OwnershipPolicy] to deny an operation.
	ErrAccessDenied = errors.New("taskbridge: access denied")
	// ErrTaskOwnership: the caller may not create the task.
	ErrTaskOwnership = errors.New("taskbridge: task creation not allowed")
	// ErrUnauthenticated: the request carries no valid credentials.
	ErrUnauthenticated = errors.New("taskbridge: unauthenticated")
	// ErrSubmission: the executor did not accept the task.
	ErrSubmission = errors.New("taskbridge: task submission failed")
	// ErrTooManyTasks: the caller already has as many unfinished tasks as
	// the executor lets one owner have (see [TaskAdmitter]); a create may
	// succeed once one of them has ended. It maps to 429 TOO_MANY_TASKS
	// with a Retry-After header.
	ErrTooManyTasks = errors.New("taskbridge: too many tasks")
	// ErrTaskTerminal: the task already has a terminal event; nothing more is
	// appended to its log.
	ErrTaskTerminal = errors.New("taskbridge: task is terminal")
	// ErrInvalidTransition: the event is not allowed in the task's status
	// (for example TASK_PROGRESS before TASK_STARTED).
	ErrInvalidTransition = errors.New("taskbridge: invalid task status transition")
	// ErrInvalidEvent: an event or payload violates the protocol schema.
	ErrInvalidEvent = errors.New("taskbridge: invalid event")
	// ErrDuplicateSuspension: the suspendId was already used in the task.
	ErrDuplicateSuspension = errors.New("taskbridge: suspension id already used")
	// ErrUploadRejected: an upload broke a limit or the upload policy.
	ErrUploadRejected = errors.New("taskbridge: upload rejected")
	// ErrUploadTooLarge: an upload exceeded a size limit (wraps ErrUploadRejected).
	ErrUploadTooLarge = fmt.Errorf("%w: too large", ErrUploadRejected)
	// ErrClosed: the service, store or handler was shut down.
	ErrClosed = errors.New("taskbridge: closed")
	// ErrLeaseLost: the caller no longer holds the task's lease (see
	// [LeaseStore]); another process may be running the task.
	ErrLeaseLost = errors.New("taskbridge: task lease lost")
	// ErrTaskQuota: the caller already has as many unfinished tasks as
	// [Config].MaxLiveTasksPerOwner allows. It wraps ErrTooManyTasks (HTTP
	// 429 TOO_MANY_TASKS): clients retry with backoff, and a place frees up
	// when one of their tasks ends.
	ErrTaskQuota = fmt.Errorf("%w: live-task quota reached", ErrTooManyTasks)
)

// Protocol error codes.
const (
	CodeInvalidRequest      = "INVALID_REQUEST"
	CodeValidation          = "REQUEST_VALIDATION_ERROR"
	CodeAuthentication      = "AUTHENTICATION_ERROR"
	CodeTaskNotFound        = "TASK_NOT_FOUND"
	CodeTaskOwnership       = "TASK_OWNERSHIP_ERROR"
	CodeIdempotencyConflict = "IDEMPOTENCY_CONFLICT"
	CodeEventsExpired       = "EVENTS_EXPIRED"
	CodeSubmission          = "TASK_SUBMISSION_ERROR"
	CodeUpload              = "UPLOAD_VALIDATION_ERROR"
	CodeAlreadyTerminal     = "TASK_ALREADY_TERMINAL"
	CodeInvalidTaskState    = "INVALID_TASK_STATE"
	CodeUnavailable         = "SERVICE_UNAVAILABLE"
	CodeInternal            = "INTERNAL_ERROR"

	// CodeTooManyTasks (HTTP 429, with a Retry-After header) refuses a
	// create because the caller has too many unfinished tasks. No task was
	// created; a retry succeeds once some of the caller's tasks have ended.
	// It is an addition to the v1 codes: clients that do not know it retry
	// it as any 429.
	CodeTooManyTasks = "TOO_MANY_TASKS"
)

// FieldError names one invalid request field.
type FieldError struct {
	// Field is the request field (a JSON member, query parameter or form part).
	Field string `json:"field"`
	// Message says what is wrong with it.
	Message string `json:"message"`
}

// ValidationError reports well-formed requests with invalid fields. It maps
// to HTTP 422 REQUEST_VALIDATION_ERROR with details.errors listing Fields.
type ValidationError struct {
	Fields []FieldError
}

// Bounds of an error answer, so that it stays small whatever the request
// held (a query with 100,000 bad values, a body with 90,000 unknown
// members, a 1 MB member name).
const (
	// MaxFieldErrors is how many field errors an error envelope lists in
	// details.errors; details.errorCount then gives the total.
	MaxFieldErrors = 20
	// maxFieldBytes and maxFieldMessageBytes clip a listed field error;
	// maxMessageBytes clips an envelope's message.
	maxFieldBytes        = 128
	maxFieldMessageBytes = 256
	maxMessageBytes      = 512
)

// Error implements error. It lists at most [MaxFieldErrors] fields, clipped
// as in the error envelope.
func (e *ValidationError) Error() string {
	fields := boundedFields(e.Fields)
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Field + ": " + f.Message
	}
	msg := "taskbridge: request validation failed: " + strings.Join(parts, "; ")
	if more := len(e.Fields) - len(fields); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return msg
}

// boundedFields returns the first MaxFieldErrors of fields with their
// names and messages clipped.
func boundedFields(fields []FieldError) []FieldError {
	out := make([]FieldError, 0, min(len(fields), MaxFieldErrors))
	for _, f := range fields[:min(len(fields), MaxFieldErrors)] {
		out = append(out, FieldError{
			Field:   clipUTF8(f.Field, maxFieldBytes),
			Message: clipUTF8(f.Message, maxFieldMessageBytes),
		})
	}
	return out
}

// clipUTF8 shortens s to at most n bytes, on a rune boundary, marking the
// cut with "…".
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Add records a field error.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e (a copy of it) if it holds any field error, else nil.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	// A copy, so that e itself does not escape: a ValidationError
	// collected on the stack costs no allocation when nothing is wrong.
	c := *e
	return &c
}

// HTTPError returns the HTTP status, protocol error code and client-safe
// message for err. Errors not produced by taskbridge map to 500
// INTERNAL_ERROR with a generic message, so internals never reach clients.
//
// The message of a sentinel error is the sentinel's text and whatever err
// adds after it ("%w: detail"); context wrapped around it ("store: get: %w")
// is left out. An [ErrAccessDenied] that reaches HTTPError is reported as
// TASK_NOT_FOUND, so that task ids cannot be probed.
func HTTPError(err error) (status int, code, message string) {
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		return http.StatusUnprocessableEntity, CodeValidation, "Request validation failed"
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized, CodeAuthentication, "Authentication required"
	case errors.Is(err, ErrTaskNotFound):
		return http.StatusNotFound, CodeTaskNotFound, clientMessage(err, ErrTaskNotFound)
	case errors.Is(err, ErrSuspensionNotFound):
		return http.StatusNotFound, CodeTaskNotFound, clientMessage(err, ErrSuspensionNotFound)
	case errors.Is(err, ErrTaskOwnership):
		return http.StatusForbidden, CodeTaskOwnership, clientMessage(err, ErrTaskOwnership)
	case errors.Is(err, ErrAccessDenied):
		return http.StatusNotFound, CodeTaskNotFound, "Task not found"
	case errors.Is(err, ErrEventsExpired):
		return http.StatusGone, CodeEventsExpired, clientMessage(err, ErrEventsExpired)
	case errors.Is(err, ErrInvalidCursor):
		return http.StatusBadRequest, CodeInvalidRequest, clientMessage(err, ErrInvalidCursor)
	case errors.Is(err, ErrInvalidRequest):
		return http.StatusBadRequest, CodeInvalidRequest, clientMessage(err, ErrInvalidRequest)
	case errors.Is(err, ErrIdempotencyConflict):
		return http.StatusConflict, CodeIdempotencyConflict, clientMessage(err, ErrIdempotencyConflict)
	case errors.Is(err, ErrUploadTooLarge):
		return http.StatusRequestEntityTooLarge, CodeUpload, clientMessage(err, ErrUploadTooLarge)
	case errors.Is(err, ErrUploadRejected):
		return http.StatusBadRequest, CodeUpload, clientMessage(err, ErrUploadRejected)
	case errors.Is(err, ErrTooManyTasks):
		return http.StatusTooManyRequests, CodeTooManyTasks, clientMessage(err, ErrTooManyTasks)
	case errors.Is(err, ErrSubmission):
		return http.StatusServiceUnavailable, CodeSubmission, "The task could not be submitted; retry later"
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable, CodeUnavailable, "The service is shutting down; retry later"
	case errors.Is(err, ErrTaskTerminal):
		return http.StatusConflict, CodeAlreadyTerminal, clientMessage(err, ErrTaskTerminal)
	case errors.Is(err, ErrInvalidTransition):
		return http.StatusConflict, CodeInvalidTaskState, clientMessage(err, ErrInvalidTransition)
	}
	return http.StatusInternalServerError, CodeInternal, "Internal server error"
}

// clientMessage returns the part of err's text that starts with sentinel's
// text, without the "taskbridge: " prefix and capitalised:
// "store: taskbridge: task not found: x" gives "Task not found: x". When
// err's text does not contain the sentinel's (a custom Is or Error method),
// the sentinel's own text is used.
func clientMessage(err, sentinel error) string {
	msg, want := err.Error(), sentinel.Error()
	if i := strings.Index(msg, want); i >= 0 {
		msg = msg[i:]
	} else {
		msg = want
	}
	msg = strings.TrimPrefix(msg, "taskbridge: ")
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

// NewErrorEnvelope builds the protocol error body for err at time now, and
// returns it with its HTTP status. Field errors of a [ValidationError] go to
// details.errors: the first [MaxFieldErrors] of them, each field name
// clipped to 128 bytes and message to 256; when there are more,
// details.errorCount holds their number. The message is clipped to 512
// bytes. Clipped text ends in "…".
func NewErrorEnvelope(err error, now time.Time) (int, ErrorEnvelope) {
	status, code, msg := HTTPError(err)
	details := map[string]any{}
	var verr *ValidationError
	if errors.As(err, &verr) {
		details["errors"] = boundedFields(verr.Fields)
		if len(verr.Fields) > MaxFieldErrors {
			details["errorCount"] = len(verr.Fields)
		}
	}
	return status, ErrorEnvelope{Code: code, Message: clipUTF8(msg, maxMessageBytes), Details: details, Timestamp: now.UTC()}
}
