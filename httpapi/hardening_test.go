package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

// TestErrorResponsesAreBounded sends requests with very many or very long
// invalid values: the answers list a bounded number of clipped field errors.
func TestErrorResponsesAreBounded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")

	list := e.alice.get("/api/v1/tasks?status=" + strings.Repeat("x,", 200_000))
	require.Less(t, len(list.Body), 8<<10, "a 400 KB status list")
	require.Len(t, list.fieldErrors(), taskbridge.MaxFieldErrors)
	var env struct {
		Details struct {
			ErrorCount int `json:"errorCount"`
		} `json:"details"`
	}
	list.decode(&env)
	require.Equal(t, 200_000, env.Details.ErrorCount)

	var b strings.Builder
	b.WriteString(`{"clientActionId":"a","suspendId":"s","actionType":"approve"`)
	for i := range 90_000 {
		fmt.Fprintf(&b, `,"u%d":0`, i)
	}
	b.WriteString("}")
	action := e.alice.postRaw("/api/v1/tasks/"+id+"/actions", b.String())
	require.Less(t, len(action.Body), 8<<10, "90,000 unknown members")
	require.Len(t, action.fieldErrors(), taskbridge.MaxFieldErrors)

	long, err := json.Marshal(map[string]any{strings.Repeat("k", 500_000): 1})
	require.NoError(t, err)
	action = e.alice.postRaw("/api/v1/tasks/"+id+"/actions", string(long))
	require.Less(t, len(action.Body), 8<<10, "a 500 KB member name")
	require.Contains(t, action.fieldErrors(), "clientActionId")
}

// TestIDsMustBeUTF8 checks that ids that are not UTF-8 text are refused over
// JSON as they are over multipart, instead of being stored with U+FFFD in
// place of the bad bytes (so that different ids would collide).
func TestIDsMustBeUTF8(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tc := range []struct{ body, field string }{
		{"{\"clientRequestId\":\"a\xff\",\"taskType\":\"t\"}", "clientRequestId"},
		{"{\"clientRequestId\":\"a\",\"taskType\":\"t\xc3\"}", "taskType"},
		{`{"clientRequestId":"a\ud800","taskType":"t"}`, "clientRequestId"}, // a lone surrogate
		{`{"clientRequestId":"a\udc00\ud800","taskType":"t"}`, "clientRequestId"},
	} {
		require.Equal(t, []string{tc.field}, e.alice.postRaw("/api/v1/tasks", tc.body).fieldErrors(), "%q", tc.body)
	}
	require.Empty(t, e.exec.tasks())

	// U+FFFD itself, literal or escaped, and valid surrogate pairs are text.
	for i, body := range []string{
		`{"clientRequestId":"a` + "\uFFFD" + `","taskType":"t"}`,
		`{"clientRequestId":"b\uFFFD","taskType":"t"}`,
		`{"clientRequestId":"c\ud83d\ude00","taskType":"t"}`,
	} {
		resp := e.alice.postRaw("/api/v1/tasks", body)
		require.Equal(t, http.StatusCreated, resp.Status, "body %d: %s", i, resp.Body)
	}

	id := e.createTask("req-1")
	for _, body := range []string{
		"{\"clientActionId\":\"a\xff\",\"suspendId\":\"s\",\"actionType\":\"approve\"}",
		`{"clientActionId":"a","suspendId":"s\udfff","actionType":"approve"}`,
		"{\"clientActionId\":\"a\",\"suspendId\":\"s\",\"actionType\":\"approve\xfe\"}",
	} {
		require.Len(t, e.alice.postRaw("/api/v1/tasks/"+id+"/actions", body).fieldErrors(), 1, "%q", body)
	}
}

// TestFilesInOtherFieldsAreRefused checks that a file part is never dropped:
// files are accepted in the configured fields only, and a file in any other
// field fails the request with 400 naming the accepted fields.
func TestFilesInOtherFieldsAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	resp := e.alice.postForm(sdkMultipart(t, "req-1", file("attachments", "a.txt", "text/plain", "kept"),
		file("file", "b.txt", "text/plain", "would be lost")))
	env := resp.errorEnvelope(http.StatusBadRequest, taskbridge.CodeUpload)
	require.Contains(t, env.Message, `"file"`)
	require.Contains(t, env.Message, "attachments, attachment")
	require.Empty(t, e.exec.tasks())
	require.Empty(t, e.spooled(), "the files of the refused request are discarded")

	// Text parts in other fields are still ignored, as unknown JSON members are.
	resp = e.alice.postForm(sdkMultipart(t, "req-2", text("extra", "ignored"), file("attachment", "a.txt", "text/plain", "x")))
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)

	// A host whose clients send files as "file" configures it.
	e2 := setup(t, withConfig(func(c *httpapi.Config) { c.FileFields = []string{"file", "attachments"} }))
	resp = e2.alice.postForm(sdkMultipart(t, "req-1", file("file", "b.txt", "text/plain", "kept"),
		file("attachments", "a.txt", "text/plain", "kept too")))
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	atts := e2.exec.tasks()[0].Attachments
	require.Len(t, atts, 2)
	require.Equal(t, "file", atts[0].Field)
	env = e2.alice.postForm(sdkMultipart(t, "req-2", file("attachment", "a.txt", "text/plain", "x"))).
		errorEnvelope(http.StatusBadRequest, taskbridge.CodeUpload)
	require.Contains(t, env.Message, "file, attachments")

	for _, fields := range [][]string{{"input"}, {""}, {"a", "a"}} {
		_, err := httpapi.New(e.svc, httpapi.Config{Auth: bearerAuth, FileFields: fields})
		require.Error(t, err, "%q", fields)
	}
}

// TestCrossSiteRequestsAreRefused checks the CSRF guard: a state-changing
// request a page on another site can send without a CORS preflight (no
// JSON Content-Type: an empty or form-typed cancel, a JSON body without a
// type, a multipart create) is 403 when the browser marks it cross-origin,
// and goes through for clients that send no browser headers (the Android
// SDK, curl) and for same-origin pages.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.createTask("req-1")
	cancel := "/api/v1/tasks/" + id + "/cancel"
	action := "/api/v1/tasks/" + id + "/actions"
	actionBody := `{"clientActionId":"a","suspendId":"s","actionType":"approve"}`
	upload := sdkMultipart(t, "req-up", file("attachments", "a.txt", "text/plain", "x"))

	post := func(path, body, contentType string, browser map[string]string) response {
		req := e.alice.newRequest(context.Background(), http.MethodPost, path, strings.NewReader(body), contentType)
		for k, v := range browser {
			req.Header.Set(k, v)
		}
		status, header, b, err := send(req)
		require.NoError(t, err)
		return e.alice.check(req, status, header, b)
	}
	crossSite := []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.example"},
		{"Origin": "https://evil.example"}, // an older browser: Origin only
	}
	for i, browser := range crossSite {
		for _, tc := range []struct{ path, body, contentType string }{
			{cancel, "", "application/x-www-form-urlencoded"},
			{cancel, "", "text/plain"},
			{cancel, "", ""},
			{action, actionBody, ""},
			{"/api/v1/tasks", string(upload.body), upload.contentType},
		} {
			post(tc.path, tc.body, tc.contentType, browser).errorEnvelope(http.StatusForbidden, taskbridge.CodeInvalidRequest)
			require.Empty(t, e.exec.cancels(), "case %d %s %q", i, tc.path, tc.contentType)
		}
	}
	require.Len(t, e.exec.tasks(), 1, "no multipart create went through")
	require.Empty(t, e.spooled(), "refused before any file was stored")

	// A JSON Content-Type needs a CORS preflight, which the host's CORS
	// policy answers: the guard leaves it alone.
	resp := post(cancel, "", "application/json", crossSite[0])
	require.Equal(t, http.StatusAccepted, resp.Status, "%s", resp.Body)

	// Same-origin pages and clients without browser headers.
	for i, browser := range []map[string]string{
		nil,
		{"Sec-Fetch-Site": "same-origin", "Origin": e.srv.URL},
		{"Sec-Fetch-Site": "none"},
		{"Origin": e.srv.URL},
	} {
		resp := post(cancel, "", "", browser)
		require.Equal(t, http.StatusAccepted, resp.Status, "case %d: %s", i, resp.Body)
		resp = post("/api/v1/tasks", string(upload.body), upload.contentType, browser)
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, resp.Status, "case %d: %s", i, resp.Body)
	}

	// A web front end on another origin is trusted through the config.
	cop := http.NewCrossOriginProtection()
	require.NoError(t, cop.AddTrustedOrigin("https://app.example"))
	e2 := setup(t, withConfig(func(c *httpapi.Config) { c.CrossOrigin = cop }))
	req := e2.alice.newRequest(context.Background(), http.MethodPost, "/api/v1/tasks", bytes.NewReader(upload.body), upload.contentType)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://app.example")
	status, _, b, err := send(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status, "%s", b)
}

// stalledRequest writes the head of a POST and the first bytes of its
// declared body over a raw connection, then sends nothing more: a client
// trickling its body, or gone silent. It returns the connection; the
// response can be read from it.
func stalledRequest(t *testing.T, e *env, path, contentType, bodyStart string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer alice\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		path, e.srv.Listener.Addr(), contentType, len(bodyStart)+1000, bodyStart)
	require.NoError(t, err)
	return conn
}

// readResponse reads the response to a stalled request; a server that never
// answers fails the test after 10s instead of hanging it.
func readResponse(t *testing.T, conn net.Conn) (int, []byte) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer to a stalled body")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// stalledUpload is the start of a multipart create whose file never ends.
func stalledUpload(t *testing.T) (contentType, start string) {
	t.Helper()
	f := sdkMultipart(t, "req-slow", file("attachments", "big.bin", "application/octet-stream", "first bytes"))
	// Cut the body inside the file part, before its closing boundary.
	i := bytes.Index(f.body, []byte("first bytes"))
	require.Positive(t, i)
	return f.contentType, string(f.body[:i+len("first bytes")])
}

// TestSlowBodiesAreCutOff checks that request bodies must arrive within
// their read timeout: a stalled upload or JSON body gets 408 and leaves no
// partial file behind.
func TestSlowBodiesAreCutOff(t *testing.T) {
	t.Parallel()
	created := make(chan string, 4)
	e := setup(t, withConfig(func(c *httpapi.Config) {
		c.BodyReadTimeout = 300 * time.Millisecond
		c.Uploads.ReadTimeout = 300 * time.Millisecond
		c.Sink = &signalSink{TempDirSink: httpapi.TempDirSink{Dir: t.TempDir()}, created: created}
	}))
	id := e.createTask("req-1")

	ct, start := stalledUpload(t)
	conn := stalledRequest(t, e, "/api/v1/tasks", ct, start)
	ref := <-created
	status, body := readResponse(t, conn)
	require.Equal(t, http.StatusRequestTimeout, status, "%s", body)
	protocoltest.ValidateErrorResponse(t, body)
	require.NoFileExists(t, ref, "the partial upload is removed")

	conn = stalledRequest(t, e, "/api/v1/tasks/"+id+"/cancel", "application/json", `{"reason":`)
	status, body = readResponse(t, conn)
	require.Equal(t, http.StatusRequestTimeout, status, "%s", body)
	require.Empty(t, e.exec.cancels())

	// A request refused before its body is read: net/http reads on to
	// drain the body before it answers, for a moment only.
	conn = stalledRequest(t, e, "/api/v1/tasks", "text/plain", "x")
	status, body = readResponse(t, conn)
	require.Equal(t, http.StatusBadRequest, status, "%s", body)

	// A body that arrives in time still works, over a connection whose
	// deadline was cleared after the body was read.
	resp := e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", `{"reason":"in time"}`)
	require.Equal(t, http.StatusAccepted, resp.Status, "%s", resp.Body)
}

// TestCloseEndsBodyReads checks Handler.Close, which a host registers with
// http.Server.RegisterOnShutdown: uploads still arriving end at once with
// 503 and their partial files removed, so a shutdown does not wait for them.
func TestCloseEndsBodyReads(t *testing.T) {
	t.Parallel()
	created := make(chan string, 4)
	e := setup(t, withConfig(func(c *httpapi.Config) {
		c.Sink = &signalSink{TempDirSink: httpapi.TempDirSink{Dir: t.TempDir()}, created: created}
	}))
	id := e.createTask("req-1")
	ct, start := stalledUpload(t)
	conn := stalledRequest(t, e, "/api/v1/tasks", ct, start)
	ref := <-created

	e.handler.Close()
	status, body := readResponse(t, conn)
	require.Equal(t, http.StatusServiceUnavailable, status, "%s", body)
	require.NoFileExists(t, ref)

	e.alice.postRaw("/api/v1/tasks/"+id+"/cancel", `{}`).errorEnvelope(http.StatusServiceUnavailable, taskbridge.CodeUnavailable)
	// A body that starts arriving after Close is refused at once, and not
	// drained.
	conn = stalledRequest(t, e, "/api/v1/tasks", ct, start)
	status, body = readResponse(t, conn)
	require.Equal(t, http.StatusServiceUnavailable, status, "%s", body)
	e.handler.Close() // idempotent
	require.Equal(t, http.StatusOK, e.alice.get("/api/v1/tasks/"+id).Status, "reads still work")
}

// signalSink is a TempDirSink that reports every file it creates.
type signalSink struct {
	httpapi.TempDirSink
	created chan<- string
}

func (s *signalSink) Create(ctx context.Context, auth taskbridge.AuthContext, info taskbridge.UploadInfo) (string, io.WriteCloser, error) {
	ref, w, err := s.TempDirSink.Create(ctx, auth, info)
	if err == nil {
		s.created <- ref
	}
	return ref, w, err
}

// TestCreateOverQuota: a create beyond the owner's live-task quota is 429
// TOO_MANY_TASKS (the Android SDK retries 429 with backoff), and the
// files of a refused multipart create are discarded.
func TestCreateOverQuota(t *testing.T) {
	t.Parallel()
	e := setup(t, withService(func(c *taskbridge.Config) { c.MaxLiveTasksPerOwner = 1 }))
	id := e.createTask("req-1")
	e.alice.postJSON("/api/v1/tasks", map[string]any{"clientRequestId": "req-2", "taskType": "demo"}).
		errorEnvelope(http.StatusTooManyRequests, taskbridge.CodeTooManyTasks)
	e.alice.postForm(sdkMultipart(t, "req-3", file("attachments", "a.txt", "text/plain", "x"))).
		errorEnvelope(http.StatusTooManyRequests, taskbridge.CodeTooManyTasks)
	require.Empty(t, e.spooled())

	resp := e.alice.postJSON("/api/v1/tasks", map[string]any{
		"clientRequestId": "req-1", "taskType": "demo", "input": map[string]any{}, "metadata": map[string]any{},
	})
	require.Equal(t, http.StatusOK, resp.Status, "a retry of the existing task: %s", resp.Body)

	e.emit(id, taskbridge.CompletedPayload{})
	resp = e.alice.postJSON("/api/v1/tasks", map[string]any{"clientRequestId": "req-2", "taskType": "demo"})
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
}
