package main

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
)

// startServer serves a benchmark server ("taskbridge" or "baseline") in
// this process and returns its address; it is shut down when the test
// ends.
func startServer(t *testing.T, kind string, cfg serverConfig) string {
	t.Helper()
	var srv benchServer
	if kind == "baseline" {
		srv = newBaselineServer(cfg)
	} else {
		s, err := newTBServer(cfg)
		require.NoError(t, err)
		srv = s
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, srv, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
	})
	return ln.Addr().String()
}

// servers are the server and transport combinations the tool measures.
var servers = []struct {
	server, transport string
	sseHijack         bool
}{
	{"taskbridge", transportSSE, false},
	{"taskbridge", transportSSE, true},
	{"taskbridge", transportWS, false},
	{"baseline", transportSSE, false},
}

// serverName names a servers entry.
func serverName(server, transport string, sseHijack bool) string {
	name := server + "/" + transport
	if sseHijack {
		name += "/hijack"
	}
	return name
}

func TestFanout(t *testing.T) {
	t.Parallel()
	for _, tc := range servers {
		t.Run(serverName(tc.server, tc.transport, tc.sseHijack), func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, tc.server, serverConfig{SSEHijack: tc.sseHijack})
			cfg := fanoutConfig{
				Server: newControlClient(addr), Transport: tc.transport, Subscribers: 10, Tasks: 2, Events: 100,
				DialConcurrency: 4, BufSize: 64 << 10, Timeout: time.Minute,
			}
			res, err := runFanout(context.Background(), cfg, io.Discard)
			require.NoError(t, err)
			require.Empty(t, res.Failures)
			require.EqualValues(t, 10*100, res.Deliveries)
			require.EqualValues(t, 10*99, res.Latency.n, "every event but the terminal one carries its publish time")
			require.Positive(t, res.Wall)
			require.GreaterOrEqual(t, res.Wall, res.Latency.quantile(1))

			var out bytes.Buffer
			printFanout(&out, cfg, res)
			require.Contains(t, out.String(), "verified:    all 10 subscribers got their task's 100 events exactly once, in order, the last one terminal")
		})
	}
}

// The baseline's direct mode (the one-write-per-event ceiling) delivers
// every event exactly once in order, like the other servers.
func TestFanoutDirect(t *testing.T) {
	t.Parallel()
	addr := startServer(t, "baseline", serverConfig{Direct: true})
	cfg := fanoutConfig{
		Server: newControlClient(addr), Transport: transportSSE, Subscribers: 20, Tasks: 10, Events: 50,
		DialConcurrency: 4, BufSize: 4096, Timeout: time.Minute,
	}
	res, err := runFanout(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	require.Empty(t, res.Failures)
	require.EqualValues(t, 20*50, res.Deliveries)
}

func TestFanoutPaced(t *testing.T) {
	t.Parallel()
	addr := startServer(t, "taskbridge", serverConfig{})
	res, err := runFanout(context.Background(), fanoutConfig{
		Server: newControlClient(addr), Transport: transportSSE, Subscribers: 3, Tasks: 1, Events: 20, Rate: 200,
		DialConcurrency: 1, BufSize: 4096, Timeout: time.Minute,
	}, io.Discard)
	require.NoError(t, err)
	require.Empty(t, res.Failures)
	// 20 events at 200/s: the last is due 95ms after the first, and no
	// event leaves more than paceSlack early.
	require.GreaterOrEqual(t, res.Publish, 95*time.Millisecond-paceSlack)
}

// TestIdle runs serially (its subtests too): it compares the process's
// goroutine counts, which parallel tests would disturb.
func TestIdle(t *testing.T) {
	for _, tc := range servers {
		t.Run(serverName(tc.server, tc.transport, tc.sseHijack), func(t *testing.T) {
			addr := startServer(t, tc.server, serverConfig{Heartbeat: 50 * time.Millisecond, SSEHijack: tc.sseHijack})
			cfg := idleConfig{
				Server: newControlClient(addr), Transport: tc.transport, Streams: 20, Tasks: 5, DialConcurrency: 4, BufSize: 1024,
				HeartbeatTimeout: 10 * time.Second, Probes: 2, HealthChecks: 3, Timeout: time.Minute,
			}
			res, err := runIdle(context.Background(), cfg, io.Discard)
			require.NoError(t, err)
			require.True(t, res.Released, "the streams' goroutines end when they close")
			require.Equal(t, 8, res.LiveStreams, "streams 0,1,5,6,10,11,15,16 are on the probed tasks")
			require.Positive(t, res.HeartbeatWait)
			require.Len(t, res.Health, 3)
			require.GreaterOrEqual(t, res.Connected.Goroutines-res.Before.Goroutines, cfg.Streams,
				"every open stream holds at least one goroutine")

			var out bytes.Buffer
			printIdle(&out, cfg, res)
			require.Contains(t, out.String(), "live event:  delivered to all 8 probed streams")
		})
	}
}

// With -ping, every WebSocket stream's ping is answered before the
// measurement goes on; -ping needs WebSockets.
func TestIdlePing(t *testing.T) {
	t.Parallel()
	addr := startServer(t, "taskbridge", serverConfig{Heartbeat: 50 * time.Millisecond})
	cfg := idleConfig{
		Server: newControlClient(addr), Transport: transportWS, Streams: 10, DialConcurrency: 4, BufSize: 1024,
		HeartbeatTimeout: 10 * time.Second, Probes: 1, HealthChecks: 1, Timeout: time.Minute, Ping: true,
	}
	res, err := runIdle(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	require.True(t, res.Released)
	var out bytes.Buffer
	printIdle(&out, cfg, res)
	require.Contains(t, out.String(), "ping=true")

	cfg.Transport = transportSSE
	require.ErrorContains(t, cfg.validate(), "-ping needs -transport ws")
}

func TestIdleWithoutHeartbeatsFails(t *testing.T) {
	t.Parallel()
	addr := startServer(t, "taskbridge", serverConfig{Heartbeat: -1})
	_, err := runIdle(context.Background(), idleConfig{
		Server: newControlClient(addr), Transport: transportSSE, Streams: 2, DialConcurrency: 1, BufSize: 1024,
		HeartbeatTimeout: 100 * time.Millisecond, Probes: 1, HealthChecks: 1, Timeout: time.Minute,
	}, io.Discard)
	require.ErrorContains(t, err, "only 0 of 2 streams had a heartbeat")
}

// scripted is a stream that returns prepared messages, then io.EOF.
type scripted struct{ msgs []message }

func (s *scripted) next() (message, error) {
	if len(s.msgs) == 0 {
		return message{}, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *scripted) close() error { return nil }

func TestSubscriberVerifies(t *testing.T) {
	t.Parallel()
	ev := func(seq int64) message { return message{kind: msgEvent, seq: seq, sent: 1, recv: 2} }
	end := func(seq int64) message { return message{kind: msgEvent, seq: seq, recv: 3, terminal: true} }
	hb := message{kind: msgHeartbeat}
	for _, tc := range []struct {
		name string
		msgs []message
		err  string
	}{
		{"in order", []message{ev(2), hb, ev(3), end(4)}, ""},
		{"gap", []message{ev(2), ev(4), end(5)}, "got event 4, want 3 (after 1 of 3 events)"},
		{"duplicate", []message{ev(2), ev(2), ev(3), end(4)}, "got event 2, want 3"},
		{"reordered", []message{ev(3), ev(2), end(4)}, "got event 3, want 2"},
		{"missing terminal", []message{ev(2), ev(3), ev(4)}, "event 4: terminal=false at position 3 of 3"},
		{"early terminal", []message{ev(2), end(3)}, "event 3: terminal=true at position 2 of 3"},
		{"truncated", []message{ev(2), ev(3)}, "stream ended after 2 of 3 events"},
		{"after the end", []message{ev(2), ev(3), end(4), ev(5)}, "event 5 after the terminal event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub := &subscriber{s: &scripted{msgs: tc.msgs}, events: 3}
			sub.run()
			if tc.err == "" {
				require.NoError(t, sub.err)
				require.Equal(t, 3, sub.count)
				require.Equal(t, 1, sub.hbs)
				require.EqualValues(t, 3, sub.last)
				require.EqualValues(t, 2, sub.hist.n)
				return
			}
			require.ErrorContains(t, sub.err, tc.err)
		})
	}
}

// drainStream reads s to its clean end.
func drainStream(t *testing.T, s stream) []message {
	t.Helper()
	var got []message
	for {
		m, err := s.next()
		if err == io.EOF {
			return got
		}
		require.NoError(t, err)
		got = append(got, m)
	}
}

func TestSSEParsing(t *testing.T) {
	t.Parallel()
	wire := ": preamble\n\n" +
		"id: 2\ndata: {\"type\":\"TASK_PROGRESS\",\"taskId\":\"t\",\"eventId\":\"2\",\"payload\":{\"progress\":0,\"message\":\"12345\"}}\n\n" +
		"data: {\"type\":\"HEARTBEAT\",\"taskId\":\"t\",\"eventId\":\"hb-1\",\"payload\":{\"live\":true}}\n\n" +
		"id: 3\r\ndata: {\"type\":\"TASK_COMPLETED\",\"taskId\":\"t\",\"eventId\":\"3\",\"payload\":{\"result\":{}}}\r\n\r\n"
	s := &sseStream{c: &timedConn{last: 99}, r: bufio.NewReader(strings.NewReader(wire))}
	require.Equal(t, []message{
		{kind: msgOther, recv: 99},
		{kind: msgEvent, seq: 2, sent: 12345, recv: 99},
		{kind: msgHeartbeat, recv: 99},
		{kind: msgEvent, seq: 3, recv: 99, terminal: true},
	}, drainStream(t, s))

	s = &sseStream{c: &timedConn{}, r: bufio.NewReader(strings.NewReader("id: 2\ndata: {}\n"))}
	_, err := s.next()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a frame cut short is an error, not a clean end")
}

// serverFrame returns an unmasked server frame.
func serverFrame(op byte, payload string) string {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	default:
		b = append(b, 126, byte(n>>8), byte(n))
	}
	return string(b) + payload
}

func TestWSParsing(t *testing.T) {
	t.Parallel()
	long := fmt.Sprintf(`{"type":"TASK_PROGRESS","taskId":"t","eventId":"3","payload":{"progress":0,"stage":"%s","message":"7"}}`,
		strings.Repeat("x", 300))
	wire := serverFrame(opText, `{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t","replayStartedAfterEventId":"1","live":true}`) +
		serverFrame(opText, `{"type":"TASK_PROGRESS","taskId":"t","eventId":"2","createdAt":"x","payload":{"progress":0,"message":"42"}}`) +
		serverFrame(opText, `{"type":"HEARTBEAT","taskId":"t","live":true}`) +
		serverFrame(opPong, "") +
		serverFrame(opText, long) +
		serverFrame(opText, `{"type":"TASK_FAILED","taskId":"t","eventId":"4","payload":{}}`) +
		serverFrame(opClose, "\x03\xe8")
	s := &wsStream{c: &timedConn{last: 7}, r: bufio.NewReader(strings.NewReader(wire))}
	require.Equal(t, []message{
		{kind: msgOther, recv: 7},
		{kind: msgEvent, seq: 2, sent: 42, recv: 7},
		{kind: msgHeartbeat, recv: 7},
		{kind: msgEvent, seq: 3, sent: 7, recv: 7},
		{kind: msgEvent, seq: 4, recv: 7, terminal: true},
	}, drainStream(t, s))

	s = &wsStream{c: &timedConn{}, r: bufio.NewReader(strings.NewReader(serverFrame(opClose, "\x03\xf0going away")))}
	_, err := s.next()
	require.ErrorContains(t, err, `WebSocket closed with 1008 "going away"`)
}

func TestHistogram(t *testing.T) {
	t.Parallel()
	var h histogram
	for i := int64(1); i <= 10_000; i++ {
		h.record(i * int64(time.Microsecond))
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * float64(10*time.Millisecond)
		require.InEpsilon(t, want, float64(h.quantile(q)), 0.07, "q=%v", q)
	}
	require.Equal(t, 10*time.Millisecond, h.quantile(1))

	var merged histogram
	merged.merge(&h)
	merged.record(-5)
	require.EqualValues(t, 10_001, merged.n)
	require.Equal(t, time.Duration(0), merged.quantile(0.00001))
	for v := uint64(0); v < 1<<20; v += 997 {
		b := histBucket(v)
		require.LessOrEqual(t, histLow(b), v)
		require.Greater(t, histLow(b+1), v)
	}
}

// A histogram survives the stats endpoint's JSON, and since subtracts an
// earlier snapshot.
func TestHistogramJSON(t *testing.T) {
	t.Parallel()
	var h histogram
	for i := int64(1); i <= 100; i++ {
		h.record(i * int64(time.Millisecond))
	}
	earlier := h
	for i := int64(1); i <= 50; i++ {
		h.record(i * int64(time.Microsecond))
	}
	b, err := json.Marshal(&h)
	require.NoError(t, err)
	var back histogram
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, h, back)
	d := back.since(&earlier)
	require.EqualValues(t, 50, d.n)
	require.InEpsilon(t, float64(25*time.Microsecond), float64(d.quantile(0.5)), 0.07)
	require.Error(t, json.Unmarshal([]byte(`{"counts":{"5000":1}}`), &back))
}

// TestCommandLine runs the tool as a user would, with -spawn starting this
// test binary as the server (see TestMain). Not parallel: it sets an
// environment variable for the child.
func TestCommandLine(t *testing.T) {
	t.Setenv(asMainEnv, "1")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"fanout", "-spawn", "taskbridge", "-transport", "ws",
		"-subscribers", "4", "-events", "30"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "verified:    all 4 subscribers got their task's 30 events exactly once")
	require.Contains(t, out.String(), "deliveries:  120 of 120")

	out.Reset()
	code = run(context.Background(), []string{"idle", "-spawn", "baseline", "-spawn-heartbeat", "20ms",
		"-streams", "5"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "live event:  delivered to all 5 probed streams")

	out.Reset()
	code = run(context.Background(), []string{"idle", "-spawn", "taskbridge", "-spawn-sse-hijack", "-spawn-heartbeat", "20ms",
		"-streams", "5"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "live event:  delivered to all 5 probed streams")

	errOut.Reset()
	require.Equal(t, 1, run(context.Background(), []string{"idle", "-spawn", "baseline", "-spawn-sse-hijack"}, &out, &errOut))
	require.Contains(t, errOut.String(), "-spawn-sse-hijack needs -spawn taskbridge")

	errOut.Reset()
	require.Equal(t, 2, run(context.Background(), []string{"fanout", "-transport", "carrier-pigeon"}, &out, &errOut))
	require.Contains(t, errOut.String(), "-transport must be sse or ws")
	require.Equal(t, 1, run(context.Background(), []string{"fanout"}, &out, &errOut))
	require.Contains(t, errOut.String(), "either -addr or -spawn is required")
	require.Equal(t, 2, run(context.Background(), []string{"nonsense"}, &out, &errOut))

	errOut.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"idle", "-h"}, &out, &errOut))
	require.Contains(t, errOut.String(), "-streams int")
}

func TestCentrifugoParsing(t *testing.T) {
	t.Parallel()
	pub := func(seq int, typ, msg string) string {
		return fmt.Sprintf(`{"channel":"c","pub":{"data":{"type":"%s","taskId":"c","eventId":"%d","payload":{"message":"%s"}}}}`, typ, seq, msg)
	}
	want := []message{
		{kind: msgOther, recv: 5},
		{kind: msgEvent, seq: 2, sent: 11, recv: 5},
		{kind: msgHeartbeat, recv: 5},
		{kind: msgEvent, seq: 3, sent: 12, recv: 5},
		{kind: msgEvent, seq: 4, recv: 5, terminal: true},
	}

	// WebSocket, with two messages joined in one frame; nothing is read
	// after the terminal event.
	wire := serverFrame(opText, `{"connect":{"client":"x","subs":{"c":{}}}}`) +
		serverFrame(opText, pub(2, "TASK_PROGRESS", "11")) +
		serverFrame(opText, "{}") +
		serverFrame(opText, pub(3, "TASK_PROGRESS", "12")+"\n"+pub(4, "TASK_COMPLETED", "")) +
		"garbage"
	ws := &wsStream{c: &timedConn{last: 5}, r: bufio.NewReader(strings.NewReader(wire)), ender: ender{on: true}}
	require.Equal(t, want, drainStream(t, ws))

	// SSE.
	wire = "data: {\"connect\":{\"client\":\"x\"}}\n\n" +
		"data: " + pub(2, "TASK_PROGRESS", "11") + "\n\n" +
		"data: {}\n\n" +
		"data: " + pub(3, "TASK_PROGRESS", "12") + "\n\n" +
		"data: " + pub(4, "TASK_COMPLETED", "") + "\n\n" +
		"garbage"
	sse := &sseStream{c: &timedConn{last: 5}, r: bufio.NewReader(strings.NewReader(wire)), ender: ender{on: true}}
	require.Equal(t, want, drainStream(t, sse))
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 86
go_gc_duration_seconds{quantile="0.5"} 5e-05
go_gc_duration_seconds_sum 0.5
go_gc_duration_seconds_count 4
go_memstats_heap_alloc_bytes 9.834736e+06
go_memstats_heap_inuse_bytes 1.1943936e+07
go_memstats_stack_inuse_bytes 753664
go_memstats_sys_bytes 2.2649096e+07
process_cpu_seconds_total 0.26
process_resident_memory_bytes 5.4546432e+07
centrifugo_node_num_clients 0
`
	st, err := parseMetrics(strings.NewReader(text))
	require.NoError(t, err)
	require.Equal(t, serverStats{
		HeapAlloc: 9834736, HeapInuse: 11943936, StackInuse: 753664, Sys: 22649096, RSS: 54546432,
		Goroutines: 86, NumGC: 4, PauseTotalNs: 5e8, CPUUserNs: 26e7,
	}, st)

	_, err = parseMetrics(strings.NewReader("go_goroutines 86\n"))
	require.ErrorContains(t, err, "found 1 of the 9")
}

func TestPrintCPUPer(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	printCPUPer(&out, "delivery", "deliveries", 2*time.Second, 1500*time.Millisecond, 100_000)
	require.Equal(t, "server CPU per delivery: 20µs = 50000 deliveries per server CPU-second (publisher included)\n"+
		"             5µs in user space, 15µs in the kernel (75%)\n", out.String())

	out.Reset()
	printCPUPer(&out, "wake", "wakes", time.Second, 0, 1_000_000)
	require.Equal(t, "server CPU per wake: 1µs = 1000000 wakes per server CPU-second (publisher included)\n", out.String(),
		"no split where the server does not report its kernel time apart")
}

// TestManyTasksSmoke is the CI smoke run of issue 14's shapes, small: a
// paced fan-out to one subscriber per task over many tasks, on each
// transport, then long polls on many tasks; every subscriber and every
// poll must get its events exactly once, in order. No timing assertions.
func TestManyTasksSmoke(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{transportSSE, transportWS} {
		t.Run("fanout/"+transport, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, "taskbridge", serverConfig{DeliveryLatency: true})
			cfg := fanoutConfig{
				Server: newControlClient(addr), Transport: transport, Subscribers: 50, Tasks: 50, Events: 20, Rate: 5000,
				DialConcurrency: 8, BufSize: 4096, Timeout: time.Minute,
			}
			res, err := runFanout(context.Background(), cfg, io.Discard)
			require.NoError(t, err)
			require.Empty(t, res.Failures)
			require.EqualValues(t, 50*20, res.Deliveries)
			require.NotNil(t, res.ServerLatency)
			require.EqualValues(t, 50*20, res.ServerLatency.n, "the server saw every delivery")
			// The server measures from the event's createdAt, which has
			// millisecond precision: up to 1ms more than the truth, which
			// the client's figure cannot be below (histogram buckets are
			// within 7%).
			require.LessOrEqual(t, res.ServerLatency.quantile(0.5), res.Latency.quantile(0.5)*107/100+time.Millisecond,
				"the server hands an event over before the client reads it")
			var out bytes.Buffer
			printFanout(&out, cfg, res)
			require.Contains(t, out.String(), "server-side: p50 ")
			require.Contains(t, out.String(), "verified:    all 50 subscribers got their task's 20 events exactly once")
			require.Contains(t, out.String(), "server CPU per delivery:")
		})
	}
	for _, kind := range []string{"taskbridge", "baseline"} {
		t.Run("longpoll/"+kind, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, kind, serverConfig{DeliveryLatency: true})
			cfg := longpollConfig{
				Server: newControlClient(addr), Polls: 100, Tasks: 100, Rate: 10_000, Wait: 30 * time.Second,
				DialConcurrency: 16, Timeout: time.Minute,
			}
			res, err := runLongPoll(context.Background(), cfg, io.Discard)
			require.NoError(t, err)
			require.Empty(t, res.Failures)
			require.EqualValues(t, 100, res.Wakes)
			require.EqualValues(t, 100, res.Latency.n)
			var out bytes.Buffer
			printLongPoll(&out, cfg, res)
			require.Contains(t, out.String(), "verified:    all 100 polls returned their task's published event exactly once")
			if kind == "taskbridge" {
				require.NotNil(t, res.ServerLatency)
				require.EqualValues(t, 100, res.ServerLatency.n)
				require.Contains(t, out.String(), "server-side: p50 ")
			} else {
				require.Nil(t, res.ServerLatency, "the baseline records no delivery latency")
			}
		})
	}
}

// A long poll that gets no event, or another one, is a failure.
func TestLongPollVerifies(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"taskbridge", "baseline"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testLongPollVerifies(t, kind)
		})
	}
}

func testLongPollVerifies(t *testing.T, kind string) {
	addr := startServer(t, kind, serverConfig{})
	ctl := newControlClient(addr)
	ctx := context.Background()
	tasks, err := ctl.createTasks(ctx, 1)
	require.NoError(t, err)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	r := longPoll(ctx, hc, addr, tasks[0], time.Second) // times out: no event
	require.ErrorContains(t, r.err, "got 0 events, want exactly the published one")
	_, err = ctl.publish(ctx, publishRequest{TaskIDs: tasks, Events: 2})
	require.NoError(t, err)
	r = longPoll(ctx, hc, addr, tasks[0], time.Second)
	require.ErrorContains(t, r.err, "got 2 events")
}
