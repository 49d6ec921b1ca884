package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// centrifugoClient drives a Centrifugo v6 server (-kind centrifugo), for
// comparison. Tasks are channels; events are published one HTTP API call
// each, from this process, with the same JSON as taskbridge's events as
// publication data; subscribers use the unidirectional SSE and WebSocket
// transports and subscribe in their connect request. The server needs
// client.insecure (anonymous subscribers), http_api.insecure, uni_sse and
// uni_websocket enabled, and prometheus, debug and health enabled for
// statistics (see docs/BENCHMARKS.md).
type centrifugoClient struct {
	addr   string
	api    *controlClient // for its HTTP plumbing only
	prefix string         // makes this run's channel names unique

	mu   sync.Mutex
	seqs map[string]int64 // last event id per channel
}

func newCentrifugoClient(addr string) *centrifugoClient {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return &centrifugoClient{
		addr:   addr,
		api:    newControlClient(addr),
		prefix: "tbload_" + hex.EncodeToString(rnd[:]) + "_",
		seqs:   map[string]int64{},
	}
}

// centrifugoConnect is the connect request of a unidirectional connection
// subscribing to channel.
func centrifugoConnect(channel string) string {
	b, _ := json.Marshal(map[string]any{"subs": map[string]any{channel: map[string]any{}}})
	return string(b)
}

func (c *centrifugoClient) closeIdle() { c.api.closeIdle() }

func (c *centrifugoClient) dial(ctx context.Context, transport, channel string, bufSize int) (stream, error) {
	return dialStream(ctx, protoCentrifugo, transport, c.addr, channel, bufSize)
}

// createTasks names n new channels; as with taskbridge tasks, the first
// published event gets id startedSeq+1.
func (c *centrifugoClient) createTasks(_ context.Context, n int) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.prefix + strconv.Itoa(len(c.seqs))
		c.seqs[ids[i]] = startedSeq
	}
	return ids, nil
}

func (c *centrifugoClient) publish(ctx context.Context, req publishRequest) (publishResponse, error) {
	start, end, err := publishEvents(ctx, centrifugoPublisher{c}, req)
	return publishResponse{StartUnixNano: start.UnixNano(), EndUnixNano: end.UnixNano()}, err
}

// createTask creates one channel (see createTasks).
func (c *centrifugoClient) createTask(ctx context.Context) (string, error) {
	ids, err := c.createTasks(ctx, 1)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// centrifugoPublish is Centrifugo's HTTP API publish request.
type centrifugoPublish struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// publishOne publishes one event (see benchEventJSON) to channel with a
// POST /api/publish.
func (c *centrifugoClient) publishOne(ctx context.Context, channel string, progress float64, sent time.Time, terminal bool) error {
	c.mu.Lock()
	seq, ok := c.seqs[channel]
	if ok {
		seq++
		c.seqs[channel] = seq
	}
	c.mu.Unlock()
	if !ok {
		return errNotFound
	}
	data, err := benchEventJSON(channel, seq, progress, sent, terminal)
	if err != nil {
		return err
	}
	var reply struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := c.api.call(ctx, http.MethodPost, "/api/publish", centrifugoPublish{Channel: channel, Data: data}, &reply); err != nil {
		return err
	}
	if reply.Error != nil {
		return fmt.Errorf("publish: error %d %s", reply.Error.Code, reply.Error.Message)
	}
	return nil
}

// centrifugoPublisher is a centrifugoClient as the backend publishEvents
// drives.
type centrifugoPublisher struct{ *centrifugoClient }

func (p centrifugoPublisher) publish(ctx context.Context, channel string, progress float64, sent time.Time, terminal bool) error {
	return p.publishOne(ctx, channel, progress, sent, terminal)
}

// stats reads Centrifugo's Prometheus metrics; with gc it first has the
// server collect garbage (a heap profile with gc=1 does).
func (c *centrifugoClient) stats(ctx context.Context, gc bool) (serverStats, error) {
	if gc {
		if _, err := timeGet(ctx, c.api.http, c.addr, "/debug/pprof/heap?gc=1"); err != nil {
			return serverStats{}, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+"/metrics", nil)
	if err != nil {
		return serverStats{}, err
	}
	resp, err := c.api.http.Do(req)
	if err != nil {
		return serverStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverStats{}, fmt.Errorf("metrics: %w", statusError(resp))
	}
	return parseMetrics(resp.Body)
}

// parseMetrics picks the Go runtime and process metrics out of a
// Prometheus text exposition.
func parseMetrics(r io.Reader) (serverStats, error) {
	var st serverStats
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		found++
		switch name {
		case "go_memstats_heap_alloc_bytes":
			st.HeapAlloc = uint64(v)
		case "go_memstats_heap_inuse_bytes":
			st.HeapInuse = uint64(v)
		case "go_memstats_stack_inuse_bytes":
			st.StackInuse = uint64(v)
		case "go_memstats_sys_bytes":
			st.Sys = uint64(v)
		case "process_resident_memory_bytes":
			st.RSS = uint64(v)
		case "go_goroutines":
			st.Goroutines = int(v)
		case "go_gc_duration_seconds_count":
			st.NumGC = uint32(v)
		case "go_gc_duration_seconds_sum":
			st.PauseTotalNs = uint64(v * 1e9)
		case "process_cpu_seconds_total":
			st.CPUUserNs = int64(v * 1e9) // user and system together
		default:
			found--
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if found < 9 {
		return st, fmt.Errorf("metrics: found %d of the 9 Go runtime and process metrics; is prometheus enabled?", found)
	}
	return st, nil
}

func (c *centrifugoClient) health(ctx context.Context) (time.Duration, error) {
	return c.api.health(ctx)
}

var errCentrifugoProfile = errors.New("-server-cpuprofile is not supported with -kind centrifugo: " +
	"run go tool pprof on its /debug/pprof/profile?seconds=N during the run instead")

func (c *centrifugoClient) startProfile(context.Context, string) error { return errCentrifugoProfile }
func (c *centrifugoClient) stopProfile(context.Context) error          { return errCentrifugoProfile }
