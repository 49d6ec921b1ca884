package sse_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
	"github.com/taskbridge-go/taskbridge/sse"
)

// flushSignal is a ResponseWriter that keeps nothing and signals each
// flush, so that a benchmark can wait for a stream's batch without a
// socket.
type flushSignal struct {
	h       http.Header
	flushed chan struct{}
}

func (w *flushSignal) Header() http.Header              { return w.h }
func (w *flushSignal) Write(b []byte) (int, error)      { return len(b), nil }
func (w *flushSignal) WriteHeader(int)                  {}
func (w *flushSignal) Flush()                           { w.flushed <- struct{}{} }
func (w *flushSignal) SetWriteDeadline(time.Time) error { return nil }
func (w *flushSignal) SetReadDeadline(time.Time) error  { return nil }

// BenchmarkServeHTTPDelivery measures SSE streams served inside ServeHTTP
// (the default) without sockets: one op emits an event to the streams'
// task and waits until every stream has written and flushed it, so it
// counts the emit, the wake-ups of the streams' goroutines, their steps and
// their waits for the next event. Streams=1 is a solo topic (the stream
// reads the store itself), Streams=2 and 8 shared ones (the topic's fetcher
// reads and encodes once for all). On one goroutine at a time (-test.cpu 1)
// the order of events is fixed, and under callgrind the instruction count
// repeats (see docs/BENCHMARKS.md).
//
// Quiet is Streams=1 with every step taken as a quiet stream's (events
// seconds apart, the usual pace of a task's progress): on a short-lived
// goroutine (see package internal/offstack).
func BenchmarkServeHTTPDelivery(b *testing.B) {
	for _, n := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("Streams=%d", n), func(b *testing.B) { benchmarkServeHTTPDelivery(b, n, false) })
	}
	b.Run("Quiet", func(b *testing.B) { benchmarkServeHTTPDelivery(b, 1, true) })
}

func benchmarkServeHTTPDelivery(b *testing.B, streams int, quiet bool) {
	env := streamtest.New(b, streamtest.Options{MaxEventsPerTask: 64})
	h, err := sse.NewHandler(env.Svc, sse.Config{Auth: streamtest.Auth, DisableHeartbeats: true})
	require.NoError(b, err)
	if quiet {
		sse.SetQuietAfter(h, 0)
	}
	defer func() { require.NoError(b, h.Shutdown(context.Background())) }()
	id := env.CreateTask(b, "alice")
	env.Started(b, id)
	ctx, cancel := context.WithCancel(context.Background())
	// One flush channel for all streams: an op waits for one flush each.
	flushed := make(chan struct{})
	done := make(chan struct{}, streams)
	for range streams {
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/tasks/"+id+"/events/stream", nil)
		r.Header.Set("Authorization", "Bearer alice")
		r.Header.Set("Last-Event-ID", "1")
		r.SetPathValue("taskId", id)
		w := &flushSignal{h: http.Header{}, flushed: flushed}
		go func() {
			defer func() { done <- struct{}{} }()
			h.ServeHTTP(w, r)
		}()
		<-flushed // the response head
	}
	env.EmitEach(b, id, func() {
		for range streams {
			<-flushed
		}
	})
	cancel()
	for range streams {
		<-done
	}
}

// BenchmarkServeHTTPOpen measures a client (re)connecting: one op serves a
// stream inside ServeHTTP from its checks and subscription through the
// response head and the replay of the task's one event, then ends it (the
// client leaves). The checks and the subscription run off the stream's
// goroutine (see package internal/offstack).
func BenchmarkServeHTTPOpen(b *testing.B) {
	env := streamtest.New(b, streamtest.Options{})
	h, err := sse.NewHandler(env.Svc, sse.Config{Auth: streamtest.Auth, DisableHeartbeats: true})
	require.NoError(b, err)
	defer func() { require.NoError(b, h.Shutdown(context.Background())) }()
	id := env.CreateTask(b, "alice")
	env.Started(b, id)
	w := &flushSignal{h: http.Header{}, flushed: make(chan struct{})}
	done := make(chan struct{})
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/tasks/"+id+"/events/stream", nil)
		r.Header.Set("Authorization", "Bearer alice")
		r.SetPathValue("taskId", id)
		clear(w.h)
		go func() {
			h.ServeHTTP(w, r)
			done <- struct{}{}
		}()
		<-w.flushed // the head and the replayed event
		cancel()
		<-done
	}
}
