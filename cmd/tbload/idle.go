package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// idleConfig configures an idle-streams run.
type idleConfig struct {
	Server    serverAPI
	Transport string
	Streams   int
	// Tasks spreads the streams over this many tasks; 0 gives every
	// stream its own task.
	Tasks            int
	DialConcurrency  int
	BufSize          int
	HeartbeatTimeout time.Duration
	// Probes is how many tasks get a live event to check delivery.
	Probes int
	// HealthChecks is how many /health requests are timed.
	HealthChecks int
	// Ping has every WebSocket stream send a ping once connected; the
	// measurement waits for every pong.
	Ping    bool
	Timeout time.Duration
}

func (c *idleConfig) validate() error {
	switch {
	case c.Transport != transportSSE && c.Transport != transportWS:
		return fmt.Errorf("-transport must be sse or ws, not %q", c.Transport)
	case c.Streams < 1, c.DialConcurrency < 1, c.Probes < 1, c.HealthChecks < 1, c.HeartbeatTimeout <= 0:
		return errors.New("-streams, -dial-concurrency, -probes, -health-checks and -heartbeat-timeout must be positive")
	case c.Tasks < 0 || c.Tasks > c.Streams:
		return errors.New("-tasks must be within 0..-streams")
	case c.BufSize < 512:
		return errors.New("-buffer must be at least 512")
	case c.Ping && c.Transport != transportWS:
		return errors.New("-ping needs -transport ws")
	}
	return nil
}

// idleResult is what an idle run measured: server statistics before the
// streams, with them open, after every stream got a heartbeat and after
// they were closed.
type idleResult struct {
	Streams                                    int
	Before, Connected, Heartbeated, AfterClose serverStats
	ConnectTime                                time.Duration
	// HeartbeatWait runs from the last stream's connection until every
	// stream had received a heartbeat.
	HeartbeatWait time.Duration
	// Health holds the timed /health round trips, sorted.
	Health []time.Duration
	// LiveStreams received a live event, within LiveMax of its publishing.
	LiveStreams int
	LiveMax     time.Duration
	// Released reports that the server's goroutine count went back to its
	// level before the streams once they were closed.
	Released bool
}

// idleStream reads an idle stream, counting heartbeats and live events.
type idleStream struct {
	s   stream
	run *idleRun
	hbs atomic.Int64
}

// idleRun is shared by an idle run's readers.
type idleRun struct {
	n          int64
	heartbeats atomic.Int64 // streams with at least one heartbeat
	allHB      chan struct{}
	pongs      atomic.Int64 // pongs to be received (-ping)
	allPongs   chan struct{}
	livePend   atomic.Int64 // streams yet to receive the probe event
	liveDone   chan struct{}
	liveMax    atomic.Int64
	closing    atomic.Bool // the streams are being closed: read errors are expected

	mu  sync.Mutex
	err error // the first stream failure
}

// fail records a stream's failure, unless the streams are being closed.
func (r *idleRun) fail(err error) {
	if r.closing.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// ping sends a ping on a WebSocket stream, before its reader starts, and
// has the reader count its pong.
func (r *idleRun) ping(s stream) error {
	ws, ok := s.(*wsStream)
	if !ok {
		return errors.New("-ping: not a WebSocket stream")
	}
	ws.onPong = func() {
		if r.pongs.Add(-1) == 0 {
			close(r.allPongs)
		}
	}
	_, err := ws.c.Write(wsframe.AppendClientFrame(nil, opPing, []byte("tbload")))
	return err
}

func (r *idleRun) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *idleStream) read() {
	first := true
	for {
		m, err := r.s.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the server ended the stream")
			}
			r.run.fail(err)
			return
		}
		switch m.kind {
		case msgHeartbeat:
			if r.hbs.Add(1) == 1 && r.run.heartbeats.Add(1) == r.run.n {
				close(r.run.allHB)
			}
		case msgEvent:
			if !first || m.seq != startedSeq+1 {
				r.run.fail(fmt.Errorf("unexpected event %d", m.seq))
				return
			}
			first = false
			lat := m.recv - m.sent
			for {
				cur := r.run.liveMax.Load()
				if lat <= cur || r.run.liveMax.CompareAndSwap(cur, lat) {
					break
				}
			}
			if r.run.livePend.Add(-1) == 0 {
				close(r.run.liveDone)
			}
		}
	}
}

// runIdle runs an idle-streams measurement against cfg.Server.
func runIdle(ctx context.Context, cfg idleConfig, log io.Writer) (*idleResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	ctl := cfg.Server
	defer ctl.closeIdle()
	nTasks := cfg.Tasks
	if nTasks == 0 {
		nTasks = cfg.Streams
	}
	fmt.Fprintf(log, "creating %d task(s)\n", nTasks)
	tasks, err := ctl.createTasks(ctx, nTasks)
	if err != nil {
		return nil, err
	}
	res := &idleResult{Streams: cfg.Streams}
	if res.Before, err = ctl.stats(ctx, true); err != nil {
		return nil, err
	}

	fmt.Fprintf(log, "opening %d idle %s streams\n", cfg.Streams, cfg.Transport)
	run := &idleRun{n: int64(cfg.Streams), allHB: make(chan struct{}), liveDone: make(chan struct{}), allPongs: make(chan struct{})}
	if cfg.Ping {
		run.pongs.Store(int64(cfg.Streams))
	}
	readers := make([]*idleStream, cfg.Streams)
	var wg sync.WaitGroup
	start := time.Now()
	streams, err := dialAll(ctx, cfg.Streams, cfg.DialConcurrency, func(i int) (stream, error) {
		s, err := ctl.dial(ctx, cfg.Transport, tasks[i%len(tasks)], cfg.BufSize)
		if err == nil && cfg.Ping {
			err = run.ping(s)
		}
		if err == nil {
			readers[i] = &idleStream{s: s, run: run}
			wg.Go(readers[i].read)
		}
		return s, err
	})
	closeAll := func() {
		run.closing.Store(true)
		for _, r := range readers {
			if r != nil {
				_ = r.s.close()
			}
		}
		wg.Wait()
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	res.ConnectTime = time.Since(start)
	connected := time.Now()
	defer func() {
		if streams != nil {
			closeAll()
		}
	}()
	if res.Connected, err = ctl.stats(ctx, true); err != nil {
		return nil, err
	}

	if cfg.Ping {
		fmt.Fprintf(log, "waiting for a pong on every stream\n")
		select {
		case <-run.allPongs:
		case <-time.After(cfg.HeartbeatTimeout):
			return nil, errors.Join(fmt.Errorf("after -heartbeat-timeout %s %d of %d streams had no pong",
				cfg.HeartbeatTimeout, run.pongs.Load(), cfg.Streams), run.failure())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fmt.Fprintf(log, "waiting for a heartbeat on every stream\n")
	select {
	case <-run.allHB:
		res.HeartbeatWait = time.Since(connected)
	case <-time.After(cfg.HeartbeatTimeout):
		return nil, errors.Join(fmt.Errorf("after -heartbeat-timeout %s only %d of %d streams had a heartbeat",
			cfg.HeartbeatTimeout, run.heartbeats.Load(), cfg.Streams), run.failure())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if res.Heartbeated, err = ctl.stats(ctx, true); err != nil {
		return nil, err
	}

	for range cfg.HealthChecks {
		d, err := ctl.health(ctx)
		if err != nil {
			return nil, err
		}
		res.Health = append(res.Health, d)
	}
	slices.Sort(res.Health)

	probes := tasks[:min(cfg.Probes, len(tasks))]
	for i := range cfg.Streams {
		if i%len(tasks) < len(probes) {
			res.LiveStreams++
		}
	}
	run.livePend.Store(int64(res.LiveStreams))
	if _, err := ctl.publish(ctx, publishRequest{TaskIDs: probes, Events: 1}); err != nil {
		return nil, err
	}
	select {
	case <-run.liveDone:
		res.LiveMax = time.Duration(run.liveMax.Load())
	case <-ctx.Done():
		return nil, fmt.Errorf("%d of %d probed streams did not receive the live event", run.livePend.Load(), res.LiveStreams)
	}
	if err := run.failure(); err != nil {
		return nil, fmt.Errorf("a stream failed: %w", err)
	}

	fmt.Fprintf(log, "closing the streams\n")
	closeAll()
	streams = nil
	// The server notices the closed connections asynchronously: poll its
	// goroutine count for a while.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res.AfterClose, err = ctl.stats(ctx, true); err != nil {
			return nil, err
		}
		res.Released = res.AfterClose.Goroutines <= res.Before.Goroutines
		if res.Released || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return res, nil
}

// perStream reports (b - a) / n for a statistic.
func perStream(a, b uint64, n int) float64 { return (float64(b) - float64(a)) / float64(n) }

// printIdle writes an idle run's report.
func printIdle(w io.Writer, cfg idleConfig, res *idleResult) {
	tasks := cfg.Tasks
	if tasks == 0 {
		tasks = cfg.Streams
	}
	fmt.Fprintf(w, "idle transport=%s streams=%d tasks=%d ping=%t\n", cfg.Transport, cfg.Streams, tasks, cfg.Ping)
	fmt.Fprintf(w, "connected:   %d streams in %s\n", res.Streams, res.ConnectTime.Round(time.Millisecond))
	for _, row := range []struct {
		name string
		st   serverStats
	}{{"connected", res.Connected}, {"heartbeated", res.Heartbeated}} {
		heap := perStream(res.Before.HeapAlloc, row.st.HeapAlloc, res.Streams)
		stack := perStream(res.Before.StackInuse, row.st.StackInuse, res.Streams)
		fmt.Fprintf(w, "%-12s heap %.0f B + stacks %.0f B = %.2f KiB/stream; %.2f goroutines/stream; RSS %+.2f KiB/stream\n",
			row.name+":", heap, stack, (heap+stack)/1024,
			float64(row.st.Goroutines-res.Before.Goroutines)/float64(res.Streams),
			perStream(res.Before.RSS, row.st.RSS, res.Streams)/1024)
	}
	fmt.Fprintf(w, "server:      heap %.1f MiB, stacks %.1f MiB, RSS %.1f MiB, %d goroutines with the streams open\n",
		mib(res.Heartbeated.HeapAlloc), mib(res.Heartbeated.StackInuse), mib(res.Heartbeated.RSS), res.Heartbeated.Goroutines)
	fmt.Fprintf(w, "heartbeats:  every stream had one %s after the last connected\n", res.HeartbeatWait.Round(time.Millisecond))
	fmt.Fprintf(w, "health:      %d requests, p50 %s, max %s\n", len(res.Health),
		roundDur(res.Health[len(res.Health)/2]), roundDur(res.Health[len(res.Health)-1]))
	fmt.Fprintf(w, "live event:  delivered to all %d probed streams, slowest %s after publishing\n", res.LiveStreams, roundDur(res.LiveMax))
	released := "released"
	if !res.Released {
		released = "NOT released"
	}
	fmt.Fprintf(w, "closed:      streams %s: %d goroutines (%d before the streams), heap %.1f MiB\n",
		released, res.AfterClose.Goroutines, res.Before.Goroutines, mib(res.AfterClose.HeapAlloc))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
