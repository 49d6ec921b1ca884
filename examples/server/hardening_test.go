package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// upload creates a greet task with one attached file, as the Android SDK
// sends it, and returns the task id.
func (e *env) upload(t *testing.T, user string) string {
	t.Helper()
	body, contentType := uploadBody(t, fmt.Sprintf("upload-%d", e.seq.Add(1)))
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+"/api/v1/tasks", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+user)
	resp, err := e.ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", b)
	var created taskbridge.CreateTaskResponse
	require.NoError(t, json.Unmarshal(b, &created))
	return created.TaskID
}

func uploadBody(t *testing.T, clientRequestID string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("clientRequestId", clientRequestID))
	require.NoError(t, mw.WriteField("taskType", taskGreet))
	require.NoError(t, mw.WriteField("input", `{"stepDelayMs":0}`))
	fw, err := mw.CreateFormFile("attachments", "photo.png")
	require.NoError(t, err)
	_, err = fw.Write(bytes.Repeat([]byte("p"), 4096))
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return buf.Bytes(), mw.FormDataContentType()
}

func uploadedFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// TestUploadsAreRemoved: a task's uploaded files are removed when it ends,
// and the upload directory when the server shuts down.
func TestUploadsAreRemoved(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.upload(t, "alice")
	evs := readUntil(t, e.follow(t, "poll", "alice", id), nil)
	require.Equal(t, completed, evs[len(evs)-1].Type)
	require.Empty(t, uploadedFiles(t, e.app.uploadDir), "the file went with its task")

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, e.app.shutdown(ctx))
	require.NoDirExists(t, e.app.uploadDir)

	// A directory the host chose is the host's: it stays.
	dir := t.TempDir()
	e = setup(t, config{UploadDir: dir})
	require.Equal(t, dir, e.app.uploadDir)
	require.NoError(t, e.app.shutdown(ctx))
	require.DirExists(t, dir)
}

// TestShutdownEndsStalledUploads: a client that stops sending its upload
// does not hold up the shutdown, and its partial file is removed.
func TestShutdownEndsStalledUploads(t *testing.T) {
	t.Parallel()
	app, err := newServer(config{Logger: testLogger(t), TaskGrace: time.Millisecond})
	require.NoError(t, err)
	entered := make(chan struct{}, 1)
	e := serve(t, app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			entered <- struct{}{}
		}
		app.ServeHTTP(w, r)
	}), nil)

	body, contentType := uploadBody(t, "stalled")
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /api/v1/tasks HTTP/1.1\r\nHost: demo\r\nAuthorization: Bearer alice\r\n"+
		"Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s", contentType, len(body), body[:len(body)-100])
	require.NoError(t, err)
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	require.NoError(t, e.ts.Config.Shutdown(ctx), "the server's shutdown does not wait for the upload")
	require.NoError(t, app.shutdown(ctx))
	require.Less(t, time.Since(start), 5*time.Second)

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(testTimeout)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	requireError(t, resp, b, http.StatusServiceUnavailable, taskbridge.CodeUnavailable)
	require.NoDirExists(t, app.uploadDir, "no partial upload is left")
}

// TestLiveTaskQuota: a user with as many unfinished tasks as the quota gets
// 429 for another, until one of them ends.
func TestLiveTaskQuota(t *testing.T) {
	t.Parallel()
	e := setup(t, config{MaxLiveTasksPerOwner: 1})
	waiting := e.create(t, "alice", taskApproval, nil)
	resp, b := e.request(t, http.MethodPost, "/api/v1/tasks", "alice",
		map[string]any{"clientRequestId": "over", "taskType": taskGreet})
	requireError(t, resp, b, http.StatusTooManyRequests, taskbridge.CodeTooManyTasks)
	e.create(t, "bob", taskApproval, nil) // per user

	e.cancel(t, "alice", waiting, nil)
	readUntil(t, e.follow(t, "poll", "alice", waiting), nil)
	e.create(t, "alice", taskGreet, map[string]any{"stepDelayMs": 0})

	unlimited := setup(t, config{MaxLiveTasksPerOwner: -1})
	for range defaultMaxLiveTasks + 1 {
		unlimited.create(t, "alice", taskApproval, nil)
	}
}
