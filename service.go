package taskbridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Request field limits.
const (
	maxIDLen     = 255
	maxReasonLen = 1024
)

// clock returns the service time used for records and events: UTC,
// truncated to milliseconds so that every store round-trips it exactly.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

func (s *Service) checkOpen() error {
	if s.isClosed() {
		return ErrClosed
	}
	return nil
}

// ownedTask loads a task the caller may see, without its Input, Metadata
// and Attachments (see [Service.taskHead]). Unknown, malformed and foreign
// ids all give ErrTaskNotFound, so ids cannot be probed.
func (s *Service) ownedTask(ctx context.Context, auth AuthContext, taskID string) (Task, error) {
	if auth.Subject == "" {
		return Task{}, ErrUnauthenticated
	}
	if !ValidTaskID(taskID) {
		return Task{}, taskNotFound(taskID)
	}
	t, err := s.taskHead(ctx, taskID)
	if errors.Is(err, ErrTaskNotFound) {
		return Task{}, taskNotFound(taskID)
	}
	if err != nil {
		return Task{}, err
	}
	if err := s.policy.CanAccess(ctx, auth, t); err != nil {
		if errors.Is(err, ErrAccessDenied) {
			return Task{}, taskNotFound(taskID)
		}
		return Task{}, err
	}
	return t, nil
}

// taskHead returns a task's record without its Input, Metadata and
// Attachments, through [TaskHeadGetter] when the store has it, so that the
// ownership check runs before they are loaded.
func (s *Service) taskHead(ctx context.Context, taskID string) (Task, error) {
	if g, ok := s.store.(TaskHeadGetter); ok {
		return g.GetTaskHead(ctx, taskID)
	}
	t, err := s.store.GetTask(ctx, taskID)
	t.Input, t.Metadata, t.Attachments = nil, nil, nil
	return t, err
}

func taskNotFound(taskID string) error {
	return fmt.Errorf("%w: %s", ErrTaskNotFound, truncate(taskID, 64))
}

// jsonObject normalises an optional JSON object: nil/empty/null → {}, an
// object → compacted, anything else → ok=false.
func jsonObject(raw json.RawMessage) (json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return json.RawMessage(`{}`), true
	}
	if raw[0] != '{' || !json.Valid(raw) {
		return nil, false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

// canonicalJSON re-encodes v with sorted object keys, so that equal values
// hash equally whatever their key order or spacing.
func canonicalJSON(raw json.RawMessage) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

func fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		l := len(p)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// taskFingerprint identifies the logical create request: task type, input
// and attachments. Metadata (tracing, app context) is not part of it.
func taskFingerprint(taskType string, input json.RawMessage, atts []Attachment) string {
	parts := [][]byte{[]byte(taskType), canonicalJSON(input)}
	for _, a := range atts {
		parts = append(parts, []byte(a.Field), []byte(a.Filename), []byte(a.ContentType),
			[]byte(strconv.FormatInt(a.Size, 10)), []byte(a.SHA256))
	}
	return fingerprint(parts...)
}

func actionFingerprint(suspendID, actionType string, payload json.RawMessage) string {
	return fingerprint([]byte(suspendID), []byte(actionType), canonicalJSON(payload))
}

// checkObject normalises an optional JSON object field, recording a field
// error when it is something else.
func checkObject(v *ValidationError, field string, raw json.RawMessage) json.RawMessage {
	obj, ok := jsonObject(raw)
	if !ok {
		v.Add(field, "must be a JSON object")
	}
	return obj
}

func checkID(v *ValidationError, field, value string) {
	if value == "" {
		v.Add(field, "is required")
	} else if msg := idProblem(value); msg != "" {
		v.Add(field, "%s", msg)
	}
}

// idProblem says what is wrong with a non-empty client-facing id, or "".
func idProblem(value string) string {
	switch {
	case len(value) > maxIDLen:
		return fmt.Sprintf("must be at most %d bytes", maxIDLen)
	case !utf8.ValidString(value):
		return "must be UTF-8 text"
	case strings.ContainsFunc(value, unicode.IsControl):
		return noControl
	}
	return ""
}

// noControl is the field error of a client-chosen identifier
// (clientRequestId, taskType, clientActionId, suspendId, actionType) that
// contains a control character (U+0000–U+001F, U+007F–U+009F): such ids
// are refused on every transport, as they would be invisible or cut short
// in logs, headers and other systems.
const noControl = "must not contain control characters"

// CreateTask creates a task and submits it to the executor. It is
// idempotent per (caller, ClientRequestID): repeating the same request
// returns the existing task with Deduplicated set; reusing the id with a
// different task type, input or attachments fails with
// [ErrIdempotencyConflict]. A denied create fails with [ErrTaskOwnership];
// invalid fields with a [*ValidationError]; a create beyond
// Config.MaxLiveTasksPerOwner with [ErrTaskQuota]. A [TaskAdmitter] executor
// may refuse the task before it exists ([ErrTooManyTasks], [ErrSubmission]).
// If the executor refuses the task in Submit, the task is failed with a
// TASK_FAILED event (so every stream of it ends) and CreateTask fails with
// [ErrSubmission].
func (s *Service) CreateTask(ctx context.Context, auth AuthContext, req CreateTaskRequest) (CreateTaskResponse, error) {
	if err := s.checkOpen(); err != nil {
		return CreateTaskResponse{}, err
	}
	if auth.Subject == "" {
		return CreateTaskResponse{}, ErrUnauthenticated
	}
	var verr ValidationError
	checkID(&verr, "clientRequestId", req.ClientRequestID)
	checkID(&verr, "taskType", req.TaskType)
	input := checkObject(&verr, "input", req.Input)
	metadata := checkObject(&verr, "metadata", req.Metadata)
	if err := verr.Err(); err != nil {
		return CreateTaskResponse{}, err
	}
	metadata = s.withTraceContext(ctx, metadata)
	req.Input, req.Metadata = input, metadata

	if err := s.policy.CanCreate(ctx, auth, req); err != nil {
		if errors.Is(err, ErrAccessDenied) {
			s.log.LogAttrs(ctx, slog.LevelWarn, "taskbridge: task create denied",
				slog.String("clientRequestId", req.ClientRequestID), slog.String("userId", auth.Subject),
				slog.String("outcome", "denied"))
			return CreateTaskResponse{}, fmt.Errorf("%w: %s may not create %s tasks", ErrTaskOwnership, auth.Subject, req.TaskType)
		}
		return CreateTaskResponse{}, err
	}
	if v, ok := s.exec.(TaskValidator); ok {
		if err := v.ValidateTask(ctx, req); err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) || errors.Is(err, ErrInvalidRequest) {
				return CreateTaskResponse{}, err
			}
			return CreateTaskResponse{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
	}

	release, err := s.admit(ctx, auth, req)
	if err != nil {
		return CreateTaskResponse{}, err
	}
	defer release()

	now := s.clock()
	id := s.newID()
	if !ValidTaskID(id) {
		return CreateTaskResponse{}, fmt.Errorf("taskbridge: Config.NewID returned invalid task id %q", id)
	}
	task := Task{
		ID:              id,
		OwnerID:         auth.Subject,
		ClientRequestID: req.ClientRequestID,
		TaskType:        req.TaskType,
		Input:           input,
		Metadata:        metadata,
		Attachments:     slices.Clone(req.Attachments),
		Fingerprint:     taskFingerprint(req.TaskType, input, req.Attachments),
		Status:          StatusAccepted,
		CreatedAt:       now,
		UpdatedAt:       now,
	}
	stored, created, err := s.storeTask(ctx, task)
	if err != nil {
		return CreateTaskResponse{}, err
	}
	logAttrs := []slog.Attr{
		slog.String("taskId", stored.ID), slog.String("clientRequestId", stored.ClientRequestID),
		slog.String("userId", auth.Subject),
	}
	if !created {
		if stored.Fingerprint != task.Fingerprint {
			s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: task create conflict",
				append(logAttrs, slog.String("outcome", "conflict"))...)
			return CreateTaskResponse{}, fmt.Errorf("%w: clientRequestId %q was used for a different task",
				ErrIdempotencyConflict, truncate(req.ClientRequestID, 64))
		}
		s.metrics.AddCounter(MetricDuplicates, 1)
		s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: task create deduplicated",
			append(logAttrs, slog.String("outcome", "deduplicated"))...)
		return CreateTaskResponse{TaskID: stored.ID, Status: stored.Status,
			ClientRequestID: stored.ClientRequestID, Deduplicated: true}, nil
	}

	// The task exists now: submit it, or fail it, even if the caller has
	// gone away meanwhile.
	bg := context.WithoutCancel(ctx)
	if err := s.exec.Submit(bg, stored, s.Emitter(stored.ID)); err != nil {
		_, ferr := s.Emitter(stored.ID).Emit(bg, FailedPayload{
			Code:      CodeSubmission,
			Message:   "The executor did not accept the task",
			Retryable: true,
		})
		s.log.LogAttrs(ctx, slog.LevelError, "taskbridge: task submission failed",
			append(logAttrs, slog.String("outcome", "submission_failed"), slog.Any("error", err),
				slog.Any("failEventError", ferr))...)
		return CreateTaskResponse{}, fmt.Errorf("%w: %w", ErrSubmission, err)
	}
	if s.relay != nil {
		// A cancel recorded by another process before the executor held
		// the task reached nobody: look at the task again.
		s.relay.notify(stored.ID)
	}
	s.metrics.AddCounter(MetricTaskStarts, 1)
	s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: task created",
		append(logAttrs, slog.String("outcome", "created"))...)
	return CreateTaskResponse{TaskID: stored.ID, Status: StatusAccepted, ClientRequestID: stored.ClientRequestID}, nil
}

// PollEvents returns up to req.MaxEvents events strictly after
// req.AfterEventID. When there are none it waits up to req.WaitTimeout for
// the first one; at the end of a finished task (the cursor is its terminal
// event) it waits the whole timeout and returns an empty page, as any long
// poll that gets no event does. Out-of-range parameters fail with
// a [*ValidationError]; a malformed cursor with [ErrInvalidCursor]; a cursor
// older than the retained log with [ErrEventsExpired].
func (s *Service) PollEvents(ctx context.Context, auth AuthContext, taskID string, req PollRequest) (PollResponse, error) {
	if err := s.checkOpen(); err != nil {
		return PollResponse{}, err
	}
	var verr ValidationError
	limit := req.MaxEvents
	if limit == 0 {
		limit = DefaultMaxEvents
	}
	if limit < 1 || limit > MaxMaxEvents {
		verr.Add("maxEvents", "must be between 1 and %d", MaxMaxEvents)
	}
	if req.WaitTimeout < 0 || req.WaitTimeout > MaxWaitTimeout {
		verr.Add("waitTimeoutMs", "must be between 0 and %d", MaxWaitTimeout.Milliseconds())
	}
	if err := verr.Err(); err != nil {
		return PollResponse{}, err
	}
	after, err := ParseEventID(req.AfterEventID)
	if err != nil {
		return PollResponse{}, err
	}
	task, err := s.ownedTask(ctx, auth, taskID)
	if err != nil {
		return PollResponse{}, err
	}
	if req.AfterEventID != "" {
		s.metrics.AddCounter(MetricReplays, 1)
	}
	info := StreamInfo{Transport: "poll", TaskID: taskID}
	s.replayStart(ctx, info, req.AfterEventID)
	read := func() ([]TaskEvent, error) {
		events, err := s.store.Read(ctx, taskID, after, limit+1)
		if errors.Is(err, ErrEventsExpired) {
			s.eventsExpired(info)
		}
		return events, err
	}
	events, err := read()
	if err != nil {
		return PollResponse{}, err
	}
	switch {
	case len(events) > 0 || req.WaitTimeout <= 0:
	case task.Status.Terminal():
		// Nothing can follow a terminal event, but the poll still waits
		// its timeout like any other: a client resuming at the end of a
		// finished task would otherwise poll in a tight loop.
		if err := s.hub.Hold(ctx, taskID, req.WaitTimeout); err != nil {
			return PollResponse{}, err
		}
	default:
		// The wait reads the store itself, after it starts watching the
		// task and on each signal of the fan-out, and ends with the
		// events it found.
		start := time.Now()
		err := s.hub.Wait(ctx, taskID, after, req.WaitTimeout, func() (bool, error) {
			var rerr error
			events, rerr = read()
			return len(events) > 0, rerr
		})
		if s.hist != nil {
			s.hist.Observe(MetricPollWait, time.Since(start).Seconds())
		}
		if err != nil {
			return PollResponse{}, err
		}
		if len(events) == 0 {
			// Timed out: read once more, since the fan-out may lag
			// behind the store (a notification that is late or lost).
			if events, err = read(); err != nil {
				return PollResponse{}, err
			}
		}
	}
	resp := PollResponse{TaskID: taskID, Events: events}
	if len(events) > limit {
		resp.Events, resp.HasMore = events[:limit], true
	}
	replayed := req.AfterEventID != ""
	for _, ev := range resp.Events {
		var at int64
		if !ev.CreatedAt.IsZero() {
			at = ev.CreatedAt.UnixNano()
		}
		s.delivered(info, ev.EventID, ev.Seq, at, replayed)
	}
	if replayed && s.hist != nil {
		s.hist.Observe(MetricReplaySize, float64(len(resp.Events)), labelsOf("poll")...)
	}
	if resp.Events == nil {
		resp.Events = []TaskEvent{}
	}
	switch {
	case len(resp.Events) > 0:
		id := resp.Events[len(resp.Events)-1].EventID
		resp.NextAfterEventID = &id
	case req.AfterEventID != "":
		id := req.AfterEventID
		resp.NextAfterEventID = &id
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "taskbridge: events polled",
		slog.String("taskId", taskID), slog.String("eventId", req.AfterEventID),
		slog.String("userId", auth.Subject), slog.String("transport", "poll"),
		slog.Int("events", len(resp.Events)), slog.String("outcome", "ok"))
	return resp, nil
}

// CancelTask requests cancellation of a task. A terminal task answers
// ALREADY_TERMINAL and the executor is not called. Otherwise the request is
// recorded and the executor is told once (on the first request); the
// executor then ends the task with TASK_CANCELLED. With several processes
// (see [LocalExecutor]) the process running the task is told through the
// store's [ControlFeed].
func (s *Service) CancelTask(ctx context.Context, auth AuthContext, taskID string, req CancelRequest) (CancelResponse, error) {
	if err := s.checkOpen(); err != nil {
		return CancelResponse{}, err
	}
	if len(req.Reason) > maxReasonLen {
		return CancelResponse{}, &ValidationError{Fields: []FieldError{{"reason", fmt.Sprintf("must be at most %d bytes", maxReasonLen)}}}
	}
	task, err := s.ownedTask(ctx, auth, taskID)
	if err != nil {
		return CancelResponse{}, err
	}
	attrs := []slog.Attr{slog.String("taskId", taskID), slog.String("userId", auth.Subject)}
	if !task.Status.Terminal() {
		var first bool
		task, first, err = s.store.RequestCancel(ctx, taskID, req.Reason, s.clock())
		if err != nil {
			return CancelResponse{}, err
		}
		if first && !task.Status.Terminal() {
			s.metrics.AddCounter(MetricCancels, 1)
			if err := s.exec.Cancel(context.WithoutCancel(ctx), task); err != nil {
				// The request is recorded (task.CancelRequested); executors
				// honour it when they next look at the task.
				s.log.LogAttrs(ctx, slog.LevelError, "taskbridge: executor cancel failed",
					append(attrs, slog.Any("error", err))...)
			}
		}
	}
	if task.Status.Terminal() {
		s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: cancel of terminal task",
			append(attrs, slog.String("outcome", "already_terminal"))...)
		return CancelResponse{TaskID: taskID, Status: CancelAlreadyTerminal}, nil
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "taskbridge: cancel requested",
		append(attrs, slog.String("outcome", "cancellation_requested"))...)
	return CancelResponse{TaskID: taskID, Status: CancelRequested}, nil
}

// GetTask returns a snapshot of a task the caller may see: status, type,
// timestamps, last event id and the suspension waiting for an action, if
// any.
func (s *Service) GetTask(ctx context.Context, auth AuthContext, taskID string) (TaskSnapshot, error) {
	if err := s.checkOpen(); err != nil {
		return TaskSnapshot{}, err
	}
	task, err := s.ownedTask(ctx, auth, taskID)
	if err != nil {
		return TaskSnapshot{}, err
	}
	snap := TaskSnapshot{TaskSummary: summarize(task)}
	if task.Status.Terminal() {
		return snap, nil
	}
	sus, err := s.store.ListSuspensions(ctx, taskID)
	if err != nil {
		return TaskSnapshot{}, err
	}
	now := s.clock()
	for i := len(sus) - 1; i >= 0; i-- {
		if sus[i].Status == SuspensionOpen && !sus[i].ExpiredAt(now) {
			p := sus[i].SuspendedPayload
			snap.Suspension = &p
			break
		}
	}
	return snap, nil
}

func summarize(t Task) TaskSummary {
	sum := TaskSummary{
		TaskID:          t.ID,
		Status:          t.Status,
		TaskType:        t.TaskType,
		ClientRequestID: t.ClientRequestID,
		CreatedAt:       t.CreatedAt.UTC(),
		UpdatedAt:       t.UpdatedAt.UTC(),
		CancelRequested: t.CancelRequested,
	}
	if t.LastSeq > 0 {
		id := FormatEventID(t.LastSeq)
		sum.LastEventID = &id
	}
	return sum
}

// ListTasks returns a page of the caller's tasks, newest first. The cursor
// is opaque; a malformed one fails with [ErrInvalidRequest].
func (s *Service) ListTasks(ctx context.Context, auth AuthContext, req ListTasksRequest) (TaskList, error) {
	if err := s.checkOpen(); err != nil {
		return TaskList{}, err
	}
	if auth.Subject == "" {
		return TaskList{}, ErrUnauthenticated
	}
	var verr ValidationError
	limit := req.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		verr.Add("limit", "must be between 1 and %d", MaxListLimit)
	}
	for _, st := range req.Statuses {
		if !st.Valid() {
			verr.Add("status", "%q is not a task status", truncate(string(st), 32))
		}
	}
	if err := verr.Err(); err != nil {
		return TaskList{}, err
	}
	q := TaskQuery{OwnerID: auth.Subject, Statuses: req.Statuses, Limit: limit + 1}
	if req.Cursor != "" {
		pos, err := decodeListCursor(req.Cursor)
		if err != nil {
			return TaskList{}, err
		}
		q.Before = &pos
	}
	tasks, err := s.store.ListTasks(ctx, q)
	if err != nil {
		return TaskList{}, err
	}
	list := TaskList{Tasks: make([]TaskSummary, 0, min(len(tasks), limit))}
	for i, t := range tasks {
		if i == limit {
			last := tasks[limit-1]
			c := encodeListCursor(TaskPosition{CreatedAt: last.CreatedAt, ID: last.ID})
			list.NextCursor = &c
			break
		}
		list.Tasks = append(list.Tasks, summarize(t))
	}
	return list, nil
}

func encodeListCursor(p TaskPosition) string {
	return base64.RawURLEncoding.EncodeToString(
		[]byte("v1:" + strconv.FormatInt(p.CreatedAt.UnixNano(), 10) + ":" + p.ID))
}

func decodeListCursor(c string) (TaskPosition, error) {
	bad := fmt.Errorf("%w: malformed cursor", ErrInvalidRequest)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return TaskPosition{}, bad
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != "v1" || !ValidTaskID(parts[2]) {
		return TaskPosition{}, bad
	}
	ns, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return TaskPosition{}, bad
	}
	return TaskPosition{CreatedAt: time.Unix(0, ns).UTC(), ID: parts[2]}, nil
}
