package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/httpapi"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// BenchmarkPoll measures what httpapi adds to a poll that finds its event
// at once (no wait): routing, authentication, the query, the service's
// checks and read, and the JSON answer, written to a recorder, so that
// net/http's connection handling is not in it. One op is one poll of one
// event on one of 1,000 tasks.
func BenchmarkPoll(b *testing.B) {
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: &fakeExec{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = svc.Shutdown(ctx) }()
	h, err := httpapi.New(svc, httpapi.Config{Auth: bearerAuth})
	if err != nil {
		b.Fatal(err)
	}
	const tasks = 1000
	reqs := make([]*http.Request, tasks)
	for i := range reqs {
		id := fmt.Sprintf("task-%04d", i)
		if _, _, err := store.CreateTask(ctx, storetest.NewTask(id, "alice", id, storetest.BaseTime)); err != nil {
			b.Fatal(err)
		}
		if _, err := store.Append(ctx, storetest.NewEvent(id, taskbridge.StartedPayload{Message: "rendering page 3 of 7"}, storetest.BaseTime)); err != nil {
			b.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/tasks/"+id+"/events?waitTimeoutMs=1000", nil)
		r.Header.Set("Authorization", "Bearer alice")
		reqs[i] = r
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := deadlineRecorder{httptest.NewRecorder()}
		h.ServeHTTP(w, reqs[i%tasks])
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
	}
}

// deadlineRecorder is a recorder that, like net/http's ResponseWriter,
// supports write deadlines: a poll sets one, and the recorder's error for
// it (built with fmt.Errorf) would be a cost no server has.
type deadlineRecorder struct{ *httptest.ResponseRecorder }

func (deadlineRecorder) SetWriteDeadline(time.Time) error { return nil }
