package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// Multipart field names.
const (
	fieldClientRequestID = "clientRequestId"
	fieldTaskType        = "taskType"
	fieldInput           = "input"
	fieldMetadata        = "metadata"
	// fieldAttachments is the Android SDK's default file field; with
	// fieldAttachment, the default Config.FileFields.
	fieldAttachments = "attachments"
	fieldAttachment  = "attachment"
)

// textFields are the create request's text parts.
var textFields = []string{fieldClientRequestID, fieldTaskType, fieldInput, fieldMetadata}

// defaultFilename names a file part that has no usable file name.
const defaultFilename = "upload.bin"

// maxFilenameBytes bounds a stored file name.
const maxFilenameBytes = 255

// createTask serves POST Paths.Tasks: a JSON or multipart/form-data create.
// The files of a request that creates no task are discarded on every way
// out, a panic included.
func (h *Handler) createTask(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, _ string) {
	var (
		req  taskbridge.CreateTaskRequest
		refs []string // files not (yet) owned by a created task
	)
	defer func() { h.discard(r, refs) }()
	attrs := func() []slog.Attr {
		return []slog.Attr{
			slog.String("clientRequestId", req.ClientRequestID),
			slog.String("userId", auth.Subject),
			slog.Int("attachments", len(req.Attachments)),
		}
	}
	fail := func(err error) {
		// Discard before answering: the client may look right after.
		h.discard(r, refs)
		refs = nil
		h.fail(w, r, "create", err, attrs()...)
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && isJSONMediaType(mt):
		req, err = h.readCreateJSON(w, r)
	case err == nil && mt == "multipart/form-data":
		req, err = h.readCreateMultipart(w, r, auth, params["boundary"], &refs)
	default:
		err = &statusError{
			status: http.StatusBadRequest, code: taskbridge.CodeInvalidRequest,
			msg: "Content-Type must be application/json or multipart/form-data",
		}
	}
	if err != nil {
		fail(err)
		return
	}
	resp, err := h.svc.CreateTask(r.Context(), auth, req)
	if err != nil {
		fail(err)
		return
	}
	status, outcome := http.StatusCreated, "created"
	if resp.Deduplicated {
		// The existing task keeps the files of its own first request.
		h.discard(r, refs)
		status, outcome = http.StatusOK, "deduplicated"
	}
	refs = nil // the created task owns its files, or they are gone
	httpx.WriteJSON(w, status, resp)
	h.logOp(r, slog.LevelDebug, "create", outcome, append(attrs(), slog.String("taskId", resp.TaskID))...)
}

func isJSONMediaType(mt string) bool {
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// readCreateJSON parses a JSON create body. Unknown members are ignored, as
// the protocol allows them.
func (h *Handler) readCreateJSON(w http.ResponseWriter, r *http.Request) (taskbridge.CreateTaskRequest, error) {
	obj, err := h.readJSONObject(w, r)
	if err != nil {
		return taskbridge.CreateTaskRequest{}, err
	}
	var verr taskbridge.ValidationError
	req := taskbridge.CreateTaskRequest{
		ClientRequestID: obj.requiredID(&verr, fieldClientRequestID),
		TaskType:        obj.requiredID(&verr, fieldTaskType),
		Input:           obj.optionalObject(&verr, fieldInput),
		Metadata:        obj.optionalObject(&verr, fieldMetadata),
	}
	return req, verr.Err()
}

// readCreateMultipart streams a multipart create body (within
// UploadLimits.ReadTimeout, see [Handler.authed]): text parts are read
// into memory (each bounded by MaxJSONBytes), file parts go to the sink as
// they arrive. Every limit is checked while reading. It appends the ref of
// every file it starts storing to refs at once, so that the caller can
// discard them whatever happens next.
func (h *Handler) readCreateMultipart(w http.ResponseWriter, r *http.Request, auth taskbridge.AuthContext, boundary string, refs *[]string) (taskbridge.CreateTaskRequest, error) {
	lim := h.cfg.Uploads
	if boundary == "" {
		return taskbridge.CreateTaskRequest{}, invalidRequest("multipart/form-data without a boundary")
	}
	if r.ContentLength > lim.MaxRequestBytes {
		return taskbridge.CreateTaskRequest{}, h.requestTooLarge()
	}
	if r.Body == nil {
		return taskbridge.CreateTaskRequest{}, invalidRequest("the request has no body")
	}
	body := newEndWatcher(http.MaxBytesReader(w, r.Body, lim.MaxRequestBytes), boundary)
	mr := multipart.NewReader(body, boundary)
	text := map[string][][]byte{}
	var atts []taskbridge.Attachment
	for {
		part, err := mr.NextPart()
		if err == io.EOF { //nolint:errorlint // only the bare io.EOF can be a clean end; a wrapped one is a truncated body
			// NextPart also returns a bare io.EOF for a body cut off in a
			// part's headers: only the final delimiter ends it.
			if !body.ended {
				return taskbridge.CreateTaskRequest{}, invalidRequest("truncated multipart body: it ends before the final boundary")
			}
			bodyOf(r).complete()
			break
		}
		if err != nil {
			return taskbridge.CreateTaskRequest{}, h.readError(err)
		}
		switch name := part.FormName(); {
		case slices.Contains(h.cfg.FileFields, name):
			att, err := h.receiveFile(r.Context(), auth, part, len(atts), refs)
			if err != nil {
				return taskbridge.CreateTaskRequest{}, err
			}
			atts = append(atts, att)
		case isFilePart(part):
			// Never drop a file: refuse the request instead.
			return taskbridge.CreateTaskRequest{}, fmt.Errorf("%w: a file was sent in field %q; files go in: %s",
				taskbridge.ErrUploadRejected, truncate(name, 64), strings.Join(h.cfg.FileFields, ", "))
		case slices.Contains(textFields, name):
			b, err := io.ReadAll(io.LimitReader(part, h.cfg.MaxJSONBytes+1))
			if err != nil {
				return taskbridge.CreateTaskRequest{}, h.readError(err)
			}
			if int64(len(b)) > h.cfg.MaxJSONBytes {
				return taskbridge.CreateTaskRequest{}, fmt.Errorf("%w: part %q exceeds %d bytes",
					taskbridge.ErrUploadTooLarge, name, h.cfg.MaxJSONBytes)
			}
			text[name] = append(text[name], b)
		default:
			// Other text parts are ignored, as unknown JSON members are;
			// NextPart skips their bytes, which still count against
			// MaxRequestBytes.
		}
	}
	var verr taskbridge.ValidationError
	req := taskbridge.CreateTaskRequest{
		ClientRequestID: textField(&verr, fieldClientRequestID, text[fieldClientRequestID]),
		TaskType:        textField(&verr, fieldTaskType, text[fieldTaskType]),
		Attachments:     atts,
	}
	var err error
	if req.Input, err = optionalJSONPart(&verr, fieldInput, text[fieldInput]); err != nil {
		return taskbridge.CreateTaskRequest{}, err
	}
	if req.Metadata, err = optionalJSONPart(&verr, fieldMetadata, text[fieldMetadata]); err != nil {
		return taskbridge.CreateTaskRequest{}, err
	}
	return req, verr.Err()
}

// optionalJSONPart validates an optional multipart part holding a JSON
// object. A part that is not valid JSON fails the request with 400.
func optionalJSONPart(verr *taskbridge.ValidationError, name string, vals [][]byte) (json.RawMessage, error) {
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
		return jsonObjectText(verr, name, vals[0])
	}
	verr.Add(name, "must be given once")
	return nil, nil
}

// receiveFile checks a file part against the limits and the upload policy
// and streams it to the sink, hashing it on the way. The file's ref is
// appended to refs as soon as the sink created it, also when an error
// follows.
func (h *Handler) receiveFile(ctx context.Context, auth taskbridge.AuthContext, part *multipart.Part, index int, refs *[]string) (att taskbridge.Attachment, err error) {
	lim := h.cfg.Uploads
	if index >= lim.MaxFiles {
		return att, fmt.Errorf("%w: too many files (at most %d)", taskbridge.ErrUploadRejected, lim.MaxFiles)
	}
	declared := part.Header.Get("Content-Type")
	if declared == "" {
		declared = "application/octet-stream"
	}
	mt, _, perr := mime.ParseMediaType(declared)
	if perr != nil {
		return att, fmt.Errorf("%w: invalid content type for file %d", taskbridge.ErrUploadRejected, index+1)
	}
	if !lim.allowedType(mt) {
		return att, fmt.Errorf("%w: content type %s is not allowed", taskbridge.ErrUploadRejected, truncate(mt, 64))
	}
	info := taskbridge.UploadInfo{
		Field:       part.FormName(),
		Filename:    sanitizeFilename(partFilename(part)),
		ContentType: mt,
		Index:       index,
	}
	if err := h.cfg.UploadPolicy.AllowUpload(ctx, auth, info); err != nil {
		if errors.Is(err, taskbridge.ErrUploadRejected) {
			return att, err
		}
		return att, fmt.Errorf("httpapi: upload policy: %w", err)
	}
	ref, wc, err := h.cfg.Sink.Create(ctx, auth, info)
	if ref != "" {
		*refs = append(*refs, ref)
	}
	if err != nil {
		return att, fmt.Errorf("httpapi: attachment sink: %w", err)
	}
	size, sum, err := h.copyLimited(wc, part, lim.MaxFileBytes, info.Filename)
	cerr := wc.Close()
	if err != nil {
		return att, err
	}
	if cerr != nil {
		return att, fmt.Errorf("httpapi: attachment sink: %w", cerr)
	}
	return taskbridge.Attachment{
		Field:       info.Field,
		Filename:    info.Filename,
		ContentType: info.ContentType,
		Size:        size,
		SHA256:      sum,
		Ref:         ref,
	}, nil
}

// copyLimited copies src to dst, failing with ErrUploadTooLarge as soon as
// more than limit bytes arrive; bytes beyond the limit never reach dst.
func (h *Handler) copyLimited(dst io.Writer, src io.Reader, limit int64, name string) (int64, string, error) {
	hash := sha256.New()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			n += int64(nr)
			if n > limit {
				return n, "", fmt.Errorf("%w: file %q exceeds %d bytes", taskbridge.ErrUploadTooLarge, name, limit)
			}
			hash.Write(buf[:nr])
			if _, werr := dst.Write(buf[:nr]); werr != nil {
				return n, "", fmt.Errorf("httpapi: attachment sink: %w", werr)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return n, hex.EncodeToString(hash.Sum(nil)), nil
		}
		if rerr != nil {
			return n, "", h.readError(rerr)
		}
	}
}

// readError classifies an error reading a multipart body: the request
// limit (413) or a malformed or truncated body (400).
func (h *Handler) readError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return h.requestTooLarge()
	}
	if err := h.bodies.cutOff(err, taskbridge.CodeUpload, h.cfg.Uploads.ReadTimeout); err != nil {
		return err
	}
	return invalidRequest("malformed multipart body")
}

func (h *Handler) requestTooLarge() error {
	return fmt.Errorf("%w: request body exceeds %d bytes", taskbridge.ErrUploadTooLarge, h.cfg.Uploads.MaxRequestBytes)
}

// isFilePart reports whether p is a file: its Content-Disposition has a
// filename parameter, even an empty one.
func isFilePart(p *multipart.Part) bool {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return false
	}
	_, ok := params["filename"]
	return ok
}

// partFilename returns the file name a part declares, unprocessed (Part.FileName
// would apply the server's path rules).
func partFilename(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// sanitizeFilename reduces a client file name to its last path segment
// (either separator), without control characters, at most 255 bytes;
// nothing usable gives "upload.bin".
func sanitizeFilename(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > maxFilenameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == ".." {
		return defaultFilename
	}
	return name
}

// discard removes spooled files of a request that did not create a task.
// It runs even when the request's context has ended; nil refs do nothing.
func (h *Handler) discard(r *http.Request, refs []string) {
	ctx := context.WithoutCancel(r.Context())
	for _, ref := range refs {
		if err := h.cfg.Sink.Discard(ctx, ref); err != nil {
			h.log.WarnContext(ctx, "taskbridge: discarding upload failed",
				slog.String("transport", "http"), slog.Any("error", err))
		}
	}
}

// endWatcher passes a multipart body through and notes whether the final
// delimiter ("--boundary--" at the start of a line) went by, which is how
// a complete body is told from a truncated one.
type endWatcher struct {
	r     io.Reader
	final []byte // "\n--" + boundary + "--"
	tail  []byte // the last len(final)-1 bytes read, "\n" at first
	ended bool
}

func newEndWatcher(r io.Reader, boundary string) *endWatcher {
	return &endWatcher{r: r, final: []byte("\n--" + boundary + "--"), tail: []byte("\n")}
}

func (e *endWatcher) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if n > 0 && !e.ended {
		// The delimiter may straddle reads: look at the previous tail
		// joined to the start of p, then at p itself.
		w := len(e.final) - 1
		joint := append(e.tail, p[:min(n, w)]...)
		e.ended = bytes.Contains(joint, e.final) || bytes.Contains(p[:n], e.final)
		if n >= w {
			joint = p[n-w : n]
		} else if len(joint) > w {
			joint = joint[len(joint)-w:]
		}
		e.tail = append(e.tail[:0], joint...)
	}
	return n, err
}
