package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
)

func TestCreateJSON(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := map[string]any{"clientRequestId": "req-1", "taskType": "demo", "input": map[string]any{"n": 1}, "metadata": map[string]any{"app": "x"}}

	resp := e.alice.postJSON("/api/v1/tasks", body)
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	require.Contains(t, string(resp.Body), `"deduplicated":false`)
	var created taskbridge.CreateTaskResponse
	resp.decode(&created)
	require.Equal(t, "req-1", created.ClientRequestID)
	require.Equal(t, taskbridge.StatusAccepted, created.Status)
	require.True(t, taskbridge.ValidTaskID(created.TaskID))

	tasks := e.exec.tasks()
	require.Len(t, tasks, 1)
	require.Equal(t, created.TaskID, tasks[0].ID)
	require.Equal(t, "alice", tasks[0].OwnerID)
	require.JSONEq(t, `{"n":1}`, string(tasks[0].Input))
	require.JSONEq(t, `{"app":"x"}`, string(tasks[0].Metadata))

	// Same request: the existing task, 200.
	resp = e.alice.postJSON("/api/v1/tasks", body)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	var dup taskbridge.CreateTaskResponse
	resp.decode(&dup)
	require.True(t, dup.Deduplicated)
	require.Equal(t, created.TaskID, dup.TaskID)
	require.Len(t, e.exec.tasks(), 1)

	// Same clientRequestId, different input: 409.
	body["input"] = map[string]any{"n": 2}
	e.alice.postJSON("/api/v1/tasks", body).errorEnvelope(http.StatusConflict, taskbridge.CodeIdempotencyConflict)

	// Idempotency is per owner: bob gets his own task.
	resp = e.bob.postJSON("/api/v1/tasks", body)
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	var bobs taskbridge.CreateTaskResponse
	resp.decode(&bobs)
	require.NotEqual(t, created.TaskID, bobs.TaskID)
}

func TestCreateJSONOptionalMembers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i, body := range []string{
		`{"clientRequestId":"a","taskType":"t"}`,
		`{"clientRequestId":"b","taskType":"t","input":null,"metadata":null}`,
		`{"clientRequestId":"c","taskType":"t","input":{},"metadata":{},"somethingElse":[1]}`,
		"  \n{\"clientRequestId\":\"d\",\"taskType\":\"t\"}\n  ",
	} {
		resp := e.alice.beyondDocument().postRaw("/api/v1/tasks", body)
		require.Equal(t, http.StatusCreated, resp.Status, "body %d: %s", i, resp.Body)
	}
	for _, task := range e.exec.tasks() {
		require.JSONEq(t, `{}`, string(task.Input))
		require.JSONEq(t, `{}`, string(task.Metadata))
	}
}

func TestCreateJSONMalformed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, body := range []string{
		``, `{`, `{"clientRequestId":"a",}`, `[]`, `"x"`, `null`, `42`,
		`{"clientRequestId":"a","taskType":"t"} {}`, `{"clientRequestId":"a","taskType":"t"}x`,
	} {
		t.Run(body, func(t *testing.T) {
			e.alice.on(t).postRaw("/api/v1/tasks", body).errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
		})
	}
	require.Empty(t, e.exec.tasks())
}

func TestCreateJSONValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		body   string
		fields []string
	}{
		{`{}`, []string{"clientRequestId", "taskType"}},
		{`{"clientRequestId":null,"taskType":null}`, []string{"clientRequestId", "taskType"}},
		{`{"clientRequestId":1,"taskType":""}`, []string{"clientRequestId", "taskType"}},
		{`{"clientRequestId":"  ","taskType":["t"]}`, []string{"clientRequestId", "taskType"}},
		{`{"clientRequestId":"a","taskType":"t","input":[],"metadata":"x"}`, []string{"input", "metadata"}},
		{`{"clientRequestId":"a","taskType":"` + long + `","input":1}`, []string{"taskType", "input"}},
	} {
		t.Run(tc.body[:min(len(tc.body), 40)], func(t *testing.T) {
			require.Equal(t, tc.fields, e.alice.on(t).postRaw("/api/v1/tasks", tc.body).fieldErrors())
		})
	}
	require.Empty(t, e.exec.tasks())
}

func TestCreateContentType(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := `{"clientRequestId":"a","taskType":"t"}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "%%%"} {
		t.Run(ct, func(t *testing.T) {
			e.alice.on(t).do(http.MethodPost, "/api/v1/tasks", strings.NewReader(body), ct).
				errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
		})
	}
	resp := e.alice.beyondDocument().do(http.MethodPost, "/api/v1/tasks", strings.NewReader(body), "application/vnd.api+json")
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
}

func TestCreateJSONTooLarge(t *testing.T) {
	t.Parallel()
	e := setup(t, withConfig(func(c *httpapi.Config) { c.MaxJSONBytes = 100 }))
	body := `{"clientRequestId":"a","taskType":"t","input":{"pad":"` + strings.Repeat("x", 200) + `"}}`
	env := e.alice.postRaw("/api/v1/tasks", body).errorEnvelope(http.StatusRequestEntityTooLarge, taskbridge.CodeInvalidRequest)
	require.EqualValues(t, 100, env.Details["limitBytes"])

	// Without a Content-Length the limit holds while reading.
	req := e.alice.newRequest(context.Background(), http.MethodPost, "/api/v1/tasks",
		io.MultiReader(strings.NewReader(body)), "application/json")
	req.ContentLength = -1
	status, header, b, err := send(req)
	require.NoError(t, err)
	e.alice.check(req, status, header, b).errorEnvelope(http.StatusRequestEntityTooLarge, taskbridge.CodeInvalidRequest)
	require.Empty(t, e.exec.tasks())
}

type denyCreate struct{ taskbridge.OwnerOnly }

func (denyCreate) CanCreate(context.Context, taskbridge.AuthContext, taskbridge.CreateTaskRequest) error {
	return taskbridge.ErrAccessDenied
}

func TestCreateForbidden(t *testing.T) {
	t.Parallel()
	e := setup(t, withService(func(c *taskbridge.Config) { c.Ownership = denyCreate{} }))
	resp := e.alice.postForm(sdkMultipart(t, "req-1", file("attachments", "a.txt", "text/plain", "hello")))
	resp.errorEnvelope(http.StatusForbidden, taskbridge.CodeTaskOwnership)
	require.Empty(t, e.spooled(), "files of a refused create are discarded")
}

func TestCreateSubmissionFailure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec.setSubmitErr(errors.New("queue is down: secret-host:5672"))
	resp := e.alice.postForm(sdkMultipart(t, "req-1", file("attachments", "a.txt", "text/plain", "hello")))
	env := resp.errorEnvelope(http.StatusServiceUnavailable, taskbridge.CodeSubmission)
	require.NotContains(t, env.Message, "secret-host")
	require.Empty(t, e.spooled())

	// The task exists and was failed, so its streams end.
	var list taskbridge.TaskList
	e.alice.get("/api/v1/tasks").decode(&list)
	require.Len(t, list.Tasks, 1)
	require.Equal(t, taskbridge.StatusFailed, list.Tasks[0].Status)
}

func TestCreateUnauthenticated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	resp := e.anon.postForm(sdkMultipart(t, "req-1", file("attachments", "a.txt", "text/plain", "hello")))
	resp.errorEnvelope(http.StatusUnauthorized, taskbridge.CodeAuthentication)
	require.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
	require.Empty(t, e.spooled(), "nothing is read before authentication")
	require.Empty(t, e.exec.tasks())
}

func TestAuthResolverFault(t *testing.T) {
	t.Parallel()
	e := setup(t, withConfig(func(c *httpapi.Config) {
		c.Auth = taskbridge.AuthFunc(func(*http.Request) (taskbridge.AuthContext, error) {
			return taskbridge.AuthContext{}, errors.New("token service at 10.0.0.7 unreachable")
		})
	}))
	env := e.alice.postRaw("/api/v1/tasks", `{"clientRequestId":"a","taskType":"t"}`).
		errorEnvelope(http.StatusInternalServerError, taskbridge.CodeInternal)
	require.NotContains(t, env.Message, "10.0.0.7")
}

// part is one multipart part to send.
type part struct {
	field, filename, contentType string
	body                         []byte
	// rawDisposition overrides the Content-Disposition header.
	rawDisposition string
}

func text(field, value string) part {
	return part{field: field, contentType: "text/plain; charset=utf-8", body: []byte(value)}
}

func file(field, filename, contentType, content string) part {
	return part{field: field, filename: filename, contentType: contentType, body: []byte(content)}
}

// multipartBody encodes parts like OkHttp does: quoted names, the file name
// written as given (OkHttp does not escape backslashes).
func multipartBody(t *testing.T, parts ...part) form {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		disp := p.rawDisposition
		if disp == "" {
			disp = `form-data; name="` + p.field + `"`
			if p.filename != "" {
				disp += `; filename="` + p.filename + `"`
			}
		}
		h := textproto.MIMEHeader{"Content-Disposition": {disp}}
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = w.Write(p.body)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return form{body: buf.Bytes(), contentType: mw.FormDataContentType()}
}

// form is an encoded multipart/form-data body.
type form struct {
	body        []byte
	contentType string
}

// postForm sends a multipart create.
func (c *client) postForm(f form) response {
	c.t.Helper()
	return c.do(http.MethodPost, "/api/v1/tasks", bytes.NewReader(f.body), f.contentType)
}

// sdkMultipart is the Android SDK's multipart create: clientRequestId,
// taskType, input and metadata as text parts, then the files.
func sdkMultipart(t *testing.T, clientRequestID string, files ...part) form {
	t.Helper()
	parts := append([]part{
		text("clientRequestId", clientRequestID), text("taskType", "upload"),
		text("input", `{"lang":"en"}`), text("metadata", `{}`),
	}, files...)
	return multipartBody(t, parts...)
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestCreateMultipartSDK(t *testing.T) {
	t.Parallel()
	e := setup(t)
	files := []part{
		file("attachments", `C:\Users\me\photo.png`, "image/png", "png-bytes"),
		file("attachments", "../../etc/passwd", "text/plain; charset=utf-8", "root:x"),
		file("attachment", "", "", "no name, no type"),
	}
	resp := e.alice.postForm(sdkMultipart(t, "req-1", files...))
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	var created taskbridge.CreateTaskResponse
	resp.decode(&created)

	tasks := e.exec.tasks()
	require.Len(t, tasks, 1)
	task := tasks[0]
	require.Equal(t, created.TaskID, task.ID)
	require.Equal(t, "upload", task.TaskType)
	require.JSONEq(t, `{"lang":"en"}`, string(task.Input))
	require.JSONEq(t, `{}`, string(task.Metadata))
	require.Len(t, task.Attachments, 3)
	want := []taskbridge.Attachment{
		{Field: "attachments", Filename: "photo.png", ContentType: "image/png", Size: 9, SHA256: sha("png-bytes")},
		{Field: "attachments", Filename: "passwd", ContentType: "text/plain", Size: 6, SHA256: sha("root:x")},
		{Field: "attachment", Filename: "upload.bin", ContentType: "application/octet-stream", Size: 16, SHA256: sha("no name, no type")},
	}
	for i, att := range task.Attachments {
		require.Equal(t, e.sinkDir, filepath.Dir(att.Ref))
		content, err := os.ReadFile(att.Ref)
		require.NoError(t, err)
		require.Equal(t, string(files[i].body), string(content))
		att.Ref = ""
		require.Equal(t, want[i], att)
	}
	require.Len(t, e.spooled(), 3)

	// A retry of the same request is deduplicated and its files discarded.
	resp = e.alice.postForm(sdkMultipart(t, "req-1", files...))
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	var dup taskbridge.CreateTaskResponse
	resp.decode(&dup)
	require.True(t, dup.Deduplicated)
	require.Equal(t, created.TaskID, dup.TaskID)
	require.Len(t, e.spooled(), 3, "only the created task's files remain")

	// Different file content under the same clientRequestId conflicts.
	files[0].body = []byte("other bytes")
	e.alice.postForm(sdkMultipart(t, "req-1", files...)).
		errorEnvelope(http.StatusConflict, taskbridge.CodeIdempotencyConflict)
	require.Len(t, e.spooled(), 3)
}

func TestCreateMultipartFilenames(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for i, tc := range []struct{ disposition, want string }{
		{`form-data; name="attachments"; filename="C:\Users\me\My Doc.pdf"`, "My Doc.pdf"},
		{`form-data; name="attachments"; filename="a/b\\c/d.txt"`, "d.txt"},
		{`form-data; name="attachments"; filename="dir/"`, "upload.bin"},
		{`form-data; name="attachments"; filename=".."`, "upload.bin"},
		{`form-data; name="attachments"; filename="  spaced.txt  "`, "spaced.txt"},
		{`form-data; name="attachments"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt`, "résumé.txt"},
		{`form-data; name="attachments"; filename="` + strings.Repeat("é", 200) + `"`, strings.Repeat("é", 127)},
	} {
		resp := e.alice.postForm(multipartBody(t,
			text("clientRequestId", fmt.Sprintf("req-%d", i)), text("taskType", "t"),
			part{rawDisposition: tc.disposition, body: []byte("x")}))
		require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
		tasks := e.exec.tasks()
		require.Equal(t, tc.want, tasks[len(tasks)-1].Attachments[0].Filename, tc.disposition)
	}
}

func TestCreateMultipartValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct {
		name   string
		parts  []part
		fields []string
	}{
		{"missing", []part{text("input", "{}")}, []string{"clientRequestId", "taskType"}},
		{"blank and not an object", []part{text("clientRequestId", " "), text("taskType", "t"), text("input", "[1]"), text("metadata", `"x"`)},
			[]string{"clientRequestId", "input", "metadata"}},
		{"twice", []part{text("clientRequestId", "a"), text("clientRequestId", "b"), text("taskType", "t"), text("input", "{}"), text("input", "{}")},
			[]string{"clientRequestId", "input"}},
		{"not UTF-8", []part{text("clientRequestId", "a\xff"), text("taskType", "t")}, []string{"clientRequestId"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := append(tc.parts, file("attachments", "a.txt", "text/plain", "content"))
			require.Equal(t, tc.fields, e.alice.on(t).postForm(multipartBody(t, parts...)).fieldErrors())
		})
	}

	// A part that is not JSON at all is a malformed request, as a malformed
	// JSON body is, whatever else is wrong with it.
	for _, name := range []string{"input", "metadata"} {
		for _, bad := range []string{"{", `{"a":1}}`, "not json", "{\"a\":\xff}"} {
			resp := e.alice.postForm(multipartBody(t, text("clientRequestId", " "), text("taskType", "t"), text(name, bad),
				file("attachments", "a.txt", "text/plain", "content")))
			env := resp.errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
			require.Contains(t, env.Message, name, bad)
		}
	}
	require.Empty(t, e.spooled(), "files of invalid requests are discarded")

	// Empty input and metadata parts count as absent; unknown text parts
	// are ignored.
	resp := e.alice.postForm(multipartBody(t, text("clientRequestId", "ok"), text("taskType", "t"), text("input", ""),
		text("metadata", " "), text("extra", "ignored")))
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	require.Empty(t, e.exec.tasks()[0].Attachments)
	require.Empty(t, e.spooled())
}

func TestCreateMultipartMalformed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	f := sdkMultipart(t, "req-1", file("attachments", "a.txt", "text/plain", strings.Repeat("a", 10000)))
	e.alice.postForm(form{body: f.body[:5000], contentType: f.contentType}).
		errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	e.alice.postForm(form{body: []byte("garbage"), contentType: f.contentType}).
		errorEnvelope(http.StatusBadRequest, taskbridge.CodeInvalidRequest)
	require.Empty(t, e.spooled())
	require.Empty(t, e.exec.tasks())
}

// recordingPolicy refuses files named "blocked.txt" and fails on "boom.txt".
type recordingPolicy struct {
	mu   sync.Mutex
	seen []taskbridge.UploadInfo
}

func (p *recordingPolicy) AllowUpload(_ context.Context, auth taskbridge.AuthContext, f taskbridge.UploadInfo) error {
	p.mu.Lock()
	p.seen = append(p.seen, f)
	p.mu.Unlock()
	switch {
	case auth.Subject != "alice":
		return errors.New("unexpected subject")
	case f.Filename == "blocked.txt":
		return fmt.Errorf("%w: no text files for you", taskbridge.ErrUploadRejected)
	case f.Filename == "boom.txt":
		return errors.New("policy backend down")
	}
	return nil
}

func TestCreateMultipartLimits(t *testing.T) {
	t.Parallel()
	policy := &recordingPolicy{}
	e := setup(t, withConfig(func(c *httpapi.Config) {
		c.Uploads = httpapi.UploadLimits{
			MaxFileBytes: 1000, MaxRequestBytes: 4000, MaxFiles: 2,
			AllowedContentTypes: []string{"image/*", "Text/Plain"},
		}
		c.MaxJSONBytes = 200
		c.UploadPolicy = policy
	}))
	small := strings.Repeat("a", 10)
	for _, tc := range []struct {
		name   string
		files  []part
		status int
		code   string
	}{
		{"too many files", []part{file("attachments", "1.png", "image/png", small), file("attachments", "2.png", "image/png", small),
			file("attachment", "3.png", "image/png", small)}, http.StatusBadRequest, taskbridge.CodeUpload},
		{"type not allowed", []part{file("attachments", "1.png", "image/png", small), file("attachments", "doc.pdf", "application/pdf", small)},
			http.StatusBadRequest, taskbridge.CodeUpload},
		{"default type not allowed", []part{file("attachments", "x", "", small)}, http.StatusBadRequest, taskbridge.CodeUpload},
		{"invalid type", []part{file("attachments", "x", "image/", small)}, http.StatusBadRequest, taskbridge.CodeUpload},
		{"policy refuses", []part{file("attachments", "1.png", "image/png", small), file("attachments", "blocked.txt", "text/plain", small)},
			http.StatusBadRequest, taskbridge.CodeUpload},
		{"policy fails", []part{file("attachments", "boom.txt", "text/plain", small)}, http.StatusInternalServerError, taskbridge.CodeInternal},
		{"file too large", []part{file("attachments", "1.png", "image/png", small), file("attachments", "big.png", "image/png", strings.Repeat("b", 1001))},
			http.StatusRequestEntityTooLarge, taskbridge.CodeUpload},
		{"request too large", []part{file("attachments", "1.png", "image/png", strings.Repeat("b", 900)), file("attachments", "2.png", "image/png", strings.Repeat("b", 900)),
			text("extra", strings.Repeat("b", 3000))}, http.StatusRequestEntityTooLarge, taskbridge.CodeUpload},
		{"text part too large", []part{text("metadata", `{"x":"`+strings.Repeat("m", 300)+`"}`)}, http.StatusRequestEntityTooLarge, taskbridge.CodeUpload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := multipartBody(t, append([]part{text("clientRequestId", tc.name), text("taskType", "t")}, tc.files...)...)
			// Chunked, so the limits are enforced while reading rather
			// than from the Content-Length.
			req := e.alice.on(t).newRequest(context.Background(), http.MethodPost, "/api/v1/tasks",
				io.MultiReader(bytes.NewReader(f.body)), f.contentType)
			status, header, b, err := send(req)
			require.NoError(t, err)
			env := e.alice.on(t).check(req, status, header, b).errorEnvelope(tc.status, tc.code)
			if tc.status == http.StatusInternalServerError {
				require.NotContains(t, env.Message, "policy backend")
			}
			require.Empty(t, e.spooled(), "files of a rejected request are discarded")
		})
	}
	require.Empty(t, e.exec.tasks())

	// The policy saw sanitized names and indexes, before any bytes were stored.
	policy.mu.Lock()
	var blocked taskbridge.UploadInfo
	for _, s := range policy.seen {
		if s.Filename == "blocked.txt" {
			blocked = s
		}
	}
	policy.mu.Unlock()
	require.Equal(t, taskbridge.UploadInfo{Field: "attachments", Filename: "blocked.txt", ContentType: "text/plain", Index: 1}, blocked)

	// Within the limits (2 files of exactly 1000 bytes) the create succeeds.
	resp := e.alice.postForm(multipartBody(t, text("clientRequestId", "fits"), text("taskType", "t"),
		file("attachments", "1.png", "image/png", strings.Repeat("a", 1000)), file("attachment", "2.txt", "text/plain", "x")))
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	require.Len(t, e.spooled(), 2)

	// A declared Content-Length over the request limit is refused unread.
	e.alice.postForm(multipartBody(t, text("clientRequestId", "cl"), text("taskType", "t"),
		file("attachments", "1.png", "image/png", strings.Repeat("a", 5000)))).errorEnvelope(http.StatusRequestEntityTooLarge, taskbridge.CodeUpload)
}

// endlessFile is a multipart body whose single file never ends. It serves
// at most limit bytes and then blocks until release is closed or ctx ends,
// so a handler that reads further than that fails the test instead of
// passing.
type endlessFile struct {
	prefix  []byte
	limit   int
	release chan struct{}
	ctx     context.Context

	mu   sync.Mutex
	read int
}

func newEndlessFile(t *testing.T, limit int) (*endlessFile, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("clientRequestId", "endless"))
	require.NoError(t, mw.WriteField("taskType", "t"))
	_, err := mw.CreateFormFile("attachments", "huge.bin")
	require.NoError(t, err)
	return &endlessFile{prefix: buf.Bytes(), limit: limit, release: make(chan struct{}), ctx: t.Context()}, mw.FormDataContentType()
}

func (f *endlessFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	n := 0
	if f.read < len(f.prefix) {
		n = copy(p, f.prefix[f.read:])
	} else if f.read < f.limit {
		n = min(len(p), f.limit-f.read)
		for i := range n {
			p[i] = 'x'
		}
	}
	f.read += n
	f.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	select {
	case <-f.release:
	case <-f.ctx.Done():
	}
	return 0, errBlocked
}

func (f *endlessFile) bytesRead() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read
}

func TestCreateOversizedFileStopsReading(t *testing.T) {
	t.Parallel()
	const maxFile = 4096
	e := setup(t, withConfig(func(c *httpapi.Config) { c.Uploads.MaxFileBytes = maxFile }))

	t.Run("handler", func(t *testing.T) {
		// Straight into the handler: it reads the file limit plus at most
		// its buffers, never the rest of the body.
		body, ct := newEndlessFile(t, 1<<30)
		close(body.release)
		req := e.alice.on(t).newRequest(context.Background(), http.MethodPost, "/api/v1/tasks", body, ct)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		e.alice.on(t).check(req, rec.Code, rec.Header(), rec.Body.Bytes()).
			errorEnvelope(http.StatusRequestEntityTooLarge, taskbridge.CodeUpload)
		require.Less(t, body.bytesRead(), len(body.prefix)+maxFile+64<<10)
		require.Empty(t, e.spooled())
	})

	t.Run("server", func(t *testing.T) {
		// Over a real connection the client gets its 413 while its body is
		// stuck well short of its end. (net/http drains up to 256 KiB of
		// an unread body before replying, hence the headroom.)
		body, ct := newEndlessFile(t, 0)
		body.limit = len(body.prefix) + maxFile + 512<<10
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		body.ctx = ctx // a stuck request fails after 20s
		defer close(body.release)
		req := e.alice.on(t).newRequest(ctx, http.MethodPost, "/api/v1/tasks", body, ct)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		e.alice.on(t).check(req, resp.StatusCode, resp.Header, b).errorEnvelope(http.StatusRequestEntityTooLarge, taskbridge.CodeUpload)
		require.Empty(t, e.spooled())
	})
}

func TestCreateConcurrentIdentical(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 16
	type result struct {
		req    *http.Request
		status int
		header http.Header
		body   []byte
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		req := e.alice.newRequest(context.Background(), http.MethodPost, "/api/v1/tasks",
			strings.NewReader(`{"clientRequestId":"same","taskType":"t","input":{"k":"v"}}`), "application/json")
		wg.Go(func() {
			<-start
			r := result{req: req}
			r.status, r.header, r.body, r.err = send(req)
			results[i] = r
		})
	}
	close(start)
	wg.Wait()
	counts := map[int]int{}
	ids := map[string]bool{}
	for _, r := range results {
		require.NoError(t, r.err)
		resp := e.alice.check(r.req, r.status, r.header, r.body)
		counts[resp.Status]++
		var cr taskbridge.CreateTaskResponse
		resp.decode(&cr)
		require.Equal(t, resp.Status == http.StatusOK, cr.Deduplicated)
		ids[cr.TaskID] = true
	}
	require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusOK: n - 1}, counts)
	require.Len(t, ids, 1)
	require.Len(t, e.exec.tasks(), 1)
}

// failingSink fails to create files, or fails while writing them.
type failingSink struct {
	httpapi.TempDirSink
	failCreate bool
}

type failingWriter struct{ f *os.File }

func (w failingWriter) Write(p []byte) (int, error) {
	return 0, errors.New("disk full at /secret/path")
}
func (w failingWriter) Close() error { return w.f.Close() }

func (s *failingSink) Create(ctx context.Context, auth taskbridge.AuthContext, info taskbridge.UploadInfo) (string, io.WriteCloser, error) {
	if s.failCreate {
		return "", nil, errors.New("bucket /secret/path missing")
	}
	ref, w, err := s.TempDirSink.Create(ctx, auth, info)
	if err != nil {
		return "", nil, err
	}
	return ref, failingWriter{w.(*os.File)}, nil
}

func TestCreateSinkFailure(t *testing.T) {
	t.Parallel()
	for _, failCreate := range []bool{true, false} {
		t.Run(fmt.Sprint("failCreate=", failCreate), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			e := setup(t, withConfig(func(c *httpapi.Config) {
				c.Sink = &failingSink{TempDirSink: httpapi.TempDirSink{Dir: dir}, failCreate: failCreate}
			}))
			env := e.alice.on(t).postForm(sdkMultipart(t, "req", file("attachments", "a.txt", "text/plain", "abc"))).
				errorEnvelope(http.StatusInternalServerError, taskbridge.CodeInternal)
			require.NotContains(t, env.Message, "secret")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "a file whose writing failed is discarded")
		})
	}
}

func TestTempDirSinkDiscardStaysInDir(t *testing.T) {
	t.Parallel()
	dir, other := t.TempDir(), t.TempDir()
	outside := filepath.Join(other, "keep.txt")
	require.NoError(t, os.WriteFile(outside, []byte("x"), 0o600))
	s := &httpapi.TempDirSink{Dir: dir}
	require.Error(t, s.Discard(context.Background(), outside))
	require.Error(t, s.Discard(context.Background(), filepath.Join(dir, "..", filepath.Base(other), "keep.txt")))
	require.FileExists(t, outside)

	ref, w, err := s.Create(context.Background(), taskbridge.AuthContext{Subject: "a"}, taskbridge.UploadInfo{})
	require.NoError(t, err)
	_, err = w.Write([]byte("data"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	info, err := os.Stat(ref)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	require.NoError(t, s.Discard(context.Background(), ref))
	require.NoFileExists(t, ref)
	require.NoError(t, s.Discard(context.Background(), ref), "discarding twice is fine")
}
