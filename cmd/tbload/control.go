package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	rpprof "runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// benchSubject owns every task made by /bench/tasks; clients authenticate
// as it with "Authorization: Bearer bench".
const benchSubject = "bench"

// startedSeq is the id of the one event (TASK_STARTED) a new benchmark task
// holds: clients subscribe after it and expect published events from
// startedSeq+1 on.
const startedSeq = 1

// backend is a server under test, driven by the control endpoints.
type backend interface {
	// createTask creates a started task owned by benchSubject.
	createTask(ctx context.Context) (string, error)
	// publish appends one event to the task: a TASK_PROGRESS carrying
	// sent as its message, or TASK_COMPLETED when terminal.
	publish(ctx context.Context, taskID string, progress float64, sent time.Time, terminal bool) error
}

// Control endpoint requests and responses.
type (
	tasksRequest struct {
		Count int `json:"count"`
	}
	tasksResponse struct {
		TaskIDs []string `json:"taskIds"`
	}
	publishRequest struct {
		TaskIDs  []string `json:"taskIds"`
		Events   int      `json:"events"`
		Rate     float64  `json:"rate"`
		Terminal bool     `json:"terminal"`
	}
	publishResponse struct {
		StartUnixNano int64 `json:"startUnixNano"`
		EndUnixNano   int64 `json:"endUnixNano"`
	}
)

// maxTasksPerRequest bounds /bench/tasks.
const maxTasksPerRequest = 100_000

// control serves the benchmark control endpoints for a backend.
type control struct {
	b backend
	// watching counts the live watches on the server's store (nil: not
	// counted).
	watching *atomic.Int64
	// latency holds the server's delivery latencies (nil: not recorded).
	latency *syncHist

	mu      sync.Mutex
	profile *os.File // CPU profile in progress
}

// register adds the control endpoints to mux.
func (c *control) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /bench/tasks", c.tasks)
	mux.HandleFunc("POST /bench/publish", c.publish)
	mux.HandleFunc("GET /debug/stats", c.stats)
	mux.HandleFunc("POST /debug/profile/start", c.startProfile)
	mux.HandleFunc("POST /debug/profile/stop", c.stopProfile)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

func (c *control) tasks(w http.ResponseWriter, r *http.Request) {
	var req tasksRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Count < 1 || req.Count > maxTasksPerRequest {
		http.Error(w, fmt.Sprintf("count must be within 1..%d", maxTasksPerRequest), http.StatusBadRequest)
		return
	}
	resp := tasksResponse{TaskIDs: make([]string, req.Count)}
	for i := range resp.TaskIDs {
		id, err := c.b.createTask(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp.TaskIDs[i] = id
	}
	writeJSON(w, resp)
}

func (c *control) publish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.TaskIDs) == 0 || req.Events < 1 || req.Rate < 0 {
		http.Error(w, "taskIds must not be empty, events must be positive and rate not negative", http.StatusBadRequest)
		return
	}
	start, end, err := publishEvents(r.Context(), c.b, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, publishResponse{StartUnixNano: start.UnixNano(), EndUnixNano: end.UnixNano()})
}

// paceSlack is how far ahead of its due time publishEvents may publish an
// event: waiting costs a timer round trip, which at tens of thousands of
// events per second would cost more than the pacing gains.
const paceSlack = time.Millisecond

// publishEvents publishes req.Events events to every task, round-robin
// (so each task gets every len(TaskIDs)-th event: the rate is spread over
// the tasks), paced to req.Rate events per second in total (0: unpaced).
// Pacing sleeps only when the schedule is at least paceSlack ahead, on
// one reused timer, so that a high rate costs no timer per event; events
// go out at most paceSlack early. It returns when the first and the
// last event were published.
func publishEvents(ctx context.Context, b backend, req publishRequest) (start, end time.Time, err error) {
	total := req.Events * len(req.TaskIDs)
	start = time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for j := range total {
		if req.Rate > 0 {
			due := start.Add(time.Duration(float64(j) / req.Rate * float64(time.Second)))
			if d := time.Until(due); d >= paceSlack {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-timer.C:
				case <-ctx.Done():
					return start, time.Now(), ctx.Err()
				}
			}
		}
		i := j / len(req.TaskIDs)
		terminal := req.Terminal && i == req.Events-1
		if err := b.publish(ctx, req.TaskIDs[j%len(req.TaskIDs)], float64(i)/float64(req.Events), time.Now(), terminal); err != nil {
			return start, time.Now(), fmt.Errorf("publishing event %d: %w", j, err)
		}
	}
	return start, time.Now(), nil
}

// serverStats is what /debug/stats reports.
type serverStats struct {
	// HeapAlloc, HeapInuse, StackInuse and Sys are runtime.MemStats fields.
	HeapAlloc  uint64 `json:"heapAlloc"`
	HeapInuse  uint64 `json:"heapInuse"`
	StackInuse uint64 `json:"stackInuse"`
	Sys        uint64 `json:"sys"`
	// RSS is the resident set size (Linux only, else 0).
	RSS        uint64 `json:"rss"`
	Goroutines int    `json:"goroutines"`
	NumGC      uint32 `json:"numGC"`
	// PauseTotalNs is the total GC stop-the-world pause time.
	PauseTotalNs uint64 `json:"pauseTotalNs"`
	// CPUUserNs and CPUSysNs are the process's CPU time so far.
	CPUUserNs int64 `json:"cpuUserNs"`
	CPUSysNs  int64 `json:"cpuSysNs"`
	// Watching is the number of live watches on the tbload server's store:
	// one per task with a waiting long poll or a stream (0 on other
	// servers).
	Watching int64 `json:"watching"`
	// DeliveryLatency is the tbload server's append-to-hand-off time of
	// every delivery so far, when it runs with -delivery-latency.
	DeliveryLatency *histogram `json:"deliveryLatency,omitempty"`
}

// readStats collects the process's statistics; with gc it first collects
// garbage several times (so idle goroutine stacks shrink and pooled buffers
// are dropped) and returns freed memory to the OS.
func readStats(gc bool) serverStats {
	if gc {
		for range 4 {
			runtime.GC()
		}
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	user, sys := cpuTime()
	return serverStats{
		HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys,
		RSS: residentBytes(), Goroutines: runtime.NumGoroutine(),
		NumGC: ms.NumGC, PauseTotalNs: ms.PauseTotalNs,
		CPUUserNs: user.Nanoseconds(), CPUSysNs: sys.Nanoseconds(),
	}
}

func (c *control) stats(w http.ResponseWriter, r *http.Request) {
	gc, _ := strconv.ParseBool(r.URL.Query().Get("gc"))
	st := readStats(gc)
	if c.watching != nil {
		st.Watching = c.watching.Load()
	}
	if c.latency != nil {
		st.DeliveryLatency = c.latency.snapshot()
	}
	writeJSON(w, st)
}

func (c *control) startProfile(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	if path == "" {
		http.Error(w, "path is required", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.profile != nil {
		http.Error(w, "a profile is already running", http.StatusConflict)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.profile = f
	w.WriteHeader(http.StatusNoContent)
}

func (c *control) stopProfile(w http.ResponseWriter, _ *http.Request) {
	if err := c.endProfile(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// endProfile stops a running CPU profile, if any.
func (c *control) endProfile() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.profile == nil {
		return nil
	}
	rpprof.StopCPUProfile()
	err := c.profile.Close()
	c.profile = nil
	return err
}

// decode reads a JSON request body into v, answering 400 on failure.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "bad request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// errNotFound is returned by backends for unknown tasks.
var errNotFound = errors.New("task not found")
