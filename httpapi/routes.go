package httpapi

import (
	"bytes"
	"context"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// Poll parameter defaults, as in the OpenAPI document.
const (
	defaultWaitTimeoutMs = 25000
	maxWaitTimeoutMs     = int64(taskbridge.MaxWaitTimeout / time.Millisecond)
	// pollWriteMargin is the time a long poll has to write its answer after
	// waiting.
	pollWriteMargin = 30 * time.Second
)

// Action request members (the schema allows no others).
const (
	fieldClientActionID = "clientActionId"
	fieldSuspendID      = "suspendId"
	fieldActionType     = "actionType"
	fieldPayload        = "payload"
)

// pollEvents serves GET Paths.Events: afterEventId (absent or empty: from
// the start), waitTimeoutMs 0..60000 (default 25000) and maxEvents 1..500
// (default 100). The wait ends early when the client goes away. The write
// deadline is extended to cover the wait.
func (h *Handler) pollEvents(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, taskID string) {
	// The log's attributes are made only when they are logged: a poll
	// that succeeds, the hot path, logs at debug level.
	fail := func(err error) {
		h.fail(w, r, "poll", err, slog.String("taskId", taskID), slog.String("userId", auth.Subject))
	}
	q, err := parseQuery(r)
	if err != nil {
		fail(err)
		return
	}
	var verr taskbridge.ValidationError
	waitMs := intParam(&verr, q, "waitTimeoutMs", 0, maxWaitTimeoutMs, defaultWaitTimeoutMs)
	maxEvents := intParam(&verr, q, "maxEvents", 1, taskbridge.MaxMaxEvents, taskbridge.DefaultMaxEvents)
	after := stringParam(&verr, q, "afterEventId")
	if err := verr.Err(); err != nil {
		fail(err)
		return
	}
	wait := time.Duration(waitMs) * time.Millisecond
	if wait > 0 {
		// A host's http.Server.WriteTimeout must not cut a long poll short:
		// allow the wait plus time to write the answer. Writers that do not
		// support deadlines are left alone.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + pollWriteMargin))
	}
	resp, err := h.svc.PollEvents(r.Context(), auth, taskID, taskbridge.PollRequest{
		AfterEventID: after,
		MaxEvents:    int(maxEvents),
		WaitTimeout:  wait,
	})
	if err != nil {
		fail(err)
		return
	}
	if resp.Events == nil {
		resp.Events = []taskbridge.TaskEvent{}
	}
	b, err := resp.MarshalJSON()
	httpx.WriteJSONBytes(w, http.StatusOK, b, err)
	if h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.logOp(r, slog.LevelDebug, "poll", "ok",
			slog.String("taskId", taskID), slog.String("userId", auth.Subject), slog.Int("events", len(resp.Events)))
	}
}

// query is a request's query string, parsed strictly: r.URL.Query drops
// the pairs it cannot decode (a bad %-escape, a ';' separator), so a value
// the client sent would silently become the default. Such a query is 400
// INVALID_REQUEST. A query with nothing to decode (letters, digits and
// "-._~", '=' and '&': every poll a client makes) is read where it is,
// without building url.Values; any other goes through url.ParseQuery.
type query struct {
	raw  string     // the query, when vals is nil
	vals url.Values // url.ParseQuery's values of a query with escapes
}

// maxPlainParams is url.ParseQuery's default limit on the parameters of a
// query: a plain query with more goes to it, for its error.
const maxPlainParams = 10000

func parseQuery(r *http.Request) (query, error) {
	raw := r.URL.RawQuery
	if plainQuery(raw) && strings.Count(raw, "&") < maxPlainParams {
		return query{raw: raw}, nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return query{}, invalidRequest("malformed query string (a bad %%-escape or a ';' separator)")
	}
	if q == nil {
		q = url.Values{}
	}
	return query{vals: q}, nil
}

// plainQuery reports whether raw has only unreserved characters, '=' and
// '&': nothing url.ParseQuery would decode or refuse.
func plainQuery(raw string) bool {
	for i := range len(raw) {
		switch c := raw[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '=', c == '&':
		default:
			return false
		}
	}
	return true
}

// values yields the values of the parameter name, in order.
func (q query) values(name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if q.vals != nil {
			for _, v := range q.vals[name] {
				if !yield(v) {
					return
				}
			}
			return
		}
		for seg := range strings.SplitSeq(q.raw, "&") {
			if k, v, _ := strings.Cut(seg, "="); k == name && seg != "" && !yield(v) {
				return
			}
		}
	}
}

// get returns the first value of the parameter name and how many times it
// was given.
func (q query) get(name string) (first string, n int) {
	for v := range q.values(name) {
		if n == 0 {
			first = v
		}
		n++
	}
	return first, n
}

// stringParam reads an optional query parameter that may be given once.
func stringParam(verr *taskbridge.ValidationError, q query, name string) string {
	v, n := q.get(name)
	if n > 1 {
		verr.Add(name, "must be given once")
		return ""
	}
	return v
}

// intParam reads an optional integer query parameter in [lo, hi], given at
// most once. The value is the ASCII digits 0-9 (leading zeros allowed):
// a sign, a space, an underscore or a base prefix is "must be an integer";
// a '-' before digits is a negative number, "must be between" like any
// value out of range (lo is never below 0).
func intParam(verr *taskbridge.ValidationError, q query, name string, lo, hi, def int64) int64 {
	v, count := q.get(name)
	if count == 0 {
		return def
	}
	if count > 1 {
		verr.Add(name, "must be given once")
		return def
	}
	digits, negative := strings.CutPrefix(v, "-")
	if !decimalDigits(digits) {
		verr.Add(name, "must be an integer (the digits 0-9 only)")
		return def
	}
	n, err := strconv.ParseInt(digits, 10, 64) // only ErrRange can fail here
	if negative || err != nil || n < lo || n > hi {
		verr.Add(name, "must be between %d and %d", lo, hi)
		return def
	}
	return n
}

// decimalDigits reports whether s is one or more ASCII digits 0-9.
// strconv.ParseInt alone would also take a leading '+' or '-'.
func decimalDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cancelTask serves POST Paths.Cancel. The body is optional: none, empty,
// null, {} or {"reason": "..."} (reason may be null). Always 202 on success.
func (h *Handler) cancelTask(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, taskID string) {
	attrs := []slog.Attr{slog.String("taskId", taskID), slog.String("userId", auth.Subject)}
	body, err := h.readJSONBody(w, r)
	if err != nil {
		h.fail(w, r, "cancel", err, attrs...)
		return
	}
	var req taskbridge.CancelRequest
	if b := bytes.TrimSpace(body); len(b) > 0 && string(b) != "null" {
		obj, err := decodeJSONObject(b)
		if err != nil {
			h.fail(w, r, "cancel", err, attrs...)
			return
		}
		var verr taskbridge.ValidationError
		req.Reason = obj.optionalString(&verr, "reason")
		if err := verr.Err(); err != nil {
			h.fail(w, r, "cancel", err, attrs...)
			return
		}
	}
	resp, err := h.svc.CancelTask(r.Context(), auth, taskID, req)
	if err != nil {
		h.fail(w, r, "cancel", err, attrs...)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, resp)
	h.logOp(r, slog.LevelDebug, "cancel", string(resp.Status), attrs...)
}

// submitAction serves POST Paths.Actions. The body follows
// task_client_action.schema.json: unknown members are 422.
func (h *Handler) submitAction(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, taskID string) {
	attrs := []slog.Attr{slog.String("taskId", taskID), slog.String("userId", auth.Subject)}
	obj, err := h.readJSONObject(w, r)
	if err != nil {
		h.fail(w, r, "action", err, attrs...)
		return
	}
	var verr taskbridge.ValidationError
	req := taskbridge.ActionRequest{
		ClientActionID: obj.requiredID(&verr, fieldClientActionID),
		SuspendID:      obj.requiredID(&verr, fieldSuspendID),
		ActionType:     obj.requiredID(&verr, fieldActionType),
		Payload:        obj.optionalObject(&verr, fieldPayload),
		Metadata:       obj.optionalObject(&verr, fieldMetadata),
	}
	obj.rejectUnknown(&verr, fieldClientActionID, fieldSuspendID, fieldActionType, fieldPayload, fieldMetadata)
	attrs = append(attrs, slog.String("clientActionId", req.ClientActionID), slog.String("suspendId", req.SuspendID))
	if err := verr.Err(); err != nil {
		h.fail(w, r, "action", err, attrs...)
		return
	}
	resp, err := h.svc.SubmitAction(r.Context(), auth, taskID, req)
	if err != nil {
		h.fail(w, r, "action", err, attrs...)
		return
	}
	status := http.StatusAccepted
	if resp.Status == taskbridge.ActionDeduplicated {
		status = http.StatusOK
	}
	httpx.WriteJSON(w, status, resp)
	h.logOp(r, slog.LevelDebug, "action", string(resp.Status), attrs...)
}

// getTask serves GET Paths.Task: the task's snapshot.
func (h *Handler) getTask(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, taskID string) {
	attrs := []slog.Attr{slog.String("taskId", taskID), slog.String("userId", auth.Subject)}
	snap, err := h.svc.GetTask(r.Context(), auth, taskID)
	if err != nil {
		h.fail(w, r, "get", err, attrs...)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, snap)
	h.logOp(r, slog.LevelDebug, "get", "ok", attrs...)
}

// listTasks serves GET Paths.Tasks: limit 1..100 (default 20), an opaque
// cursor, and status filters given as repeated parameters and/or
// comma-separated lists (case-insensitive).
func (h *Handler) listTasks(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, _ string) {
	attrs := []slog.Attr{slog.String("userId", auth.Subject)}
	q, err := parseQuery(r)
	if err != nil {
		h.fail(w, r, "list", err, attrs...)
		return
	}
	var verr taskbridge.ValidationError
	req := taskbridge.ListTasksRequest{
		Limit:  int(intParam(&verr, q, "limit", 1, taskbridge.MaxListLimit, taskbridge.DefaultListLimit)),
		Cursor: stringParam(&verr, q, "cursor"),
	}
	for v := range q.values("status") {
		for s := range strings.SplitSeq(v, ",") {
			st := taskbridge.TaskStatus(strings.ToUpper(strings.TrimSpace(s)))
			switch {
			case st == "":
			case !st.Valid():
				verr.Add("status", "unknown status %q", truncate(strings.TrimSpace(s), 32))
			default:
				req.Statuses = append(req.Statuses, st)
			}
		}
	}
	if err := verr.Err(); err != nil {
		h.fail(w, r, "list", err, attrs...)
		return
	}
	list, err := h.svc.ListTasks(r.Context(), auth, req)
	if err != nil {
		h.fail(w, r, "list", err, attrs...)
		return
	}
	if list.Tasks == nil {
		list.Tasks = []taskbridge.TaskSummary{}
	}
	httpx.WriteJSON(w, http.StatusOK, list)
	h.logOp(r, slog.LevelDebug, "list", "ok", append(attrs, slog.Int("tasks", len(list.Tasks)))...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// health serves the liveness probe.
func (h *Handler) health(w http.ResponseWriter, _ *http.Request, _ string) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ready serves the readiness probe: the service's composite readiness
// report, 200 when ready and 503 when not.
func (h *Handler) ready(w http.ResponseWriter, r *http.Request, _ string) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.ReadyTimeout)
	defer cancel()
	rep := h.svc.Readiness().Check(ctx)
	status := http.StatusOK
	if !rep.Ready() {
		status = http.StatusServiceUnavailable
	}
	httpx.WriteJSON(w, status, rep)
}
