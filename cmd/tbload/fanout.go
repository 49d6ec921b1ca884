package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// fanoutConfig configures a fan-out run.
type fanoutConfig struct {
	Server      serverAPI
	Transport   string
	Subscribers int
	Tasks       int
	// Events is the number of events published per task; the last one is
	// terminal.
	Events int
	// Rate is the total publish rate in events per second; 0 publishes as
	// fast as the server takes them.
	Rate            float64
	DialConcurrency int
	BufSize         int
	Timeout         time.Duration
	// ServerProfile, when set, is where the server writes a CPU profile of
	// the publish-to-last-delivery window.
	ServerProfile string
}

func (c *fanoutConfig) validate() error {
	switch {
	case c.Transport != transportSSE && c.Transport != transportWS:
		return fmt.Errorf("-transport must be sse or ws, not %q", c.Transport)
	case c.Subscribers < 1, c.Tasks < 1, c.Events < 1, c.DialConcurrency < 1:
		return errors.New("-subscribers, -tasks, -events and -dial-concurrency must be positive")
	case c.Tasks > c.Subscribers:
		return errors.New("-tasks must not exceed -subscribers")
	case c.Rate < 0:
		return errors.New("-rate must not be negative")
	case c.BufSize < 4096:
		return errors.New("-buffer must be at least 4096")
	}
	return nil
}

// fanoutResult is what a fan-out run measured.
type fanoutResult struct {
	// Deliveries counts the events received in order by all subscribers.
	Deliveries int64
	// Wall runs from the first publish to the last delivery.
	Wall time.Duration
	// Publish runs from the first publish to the last.
	Publish time.Duration
	// Latency is publish-to-read time of every delivered event but the
	// terminal one (which carries no publish time).
	Latency histogram
	// ServerLatency is the server's own append-to-hand-off time of the
	// run's deliveries (nil unless it runs with -delivery-latency).
	ServerLatency *histogram
	// ClientCPU and ServerCPU are the CPU time used during Wall.
	ClientCPU, ServerCPU time.Duration
	// ServerSysCPU is the part of ServerCPU spent in the kernel (0 where
	// the server does not report it apart).
	ServerSysCPU time.Duration
	// ServerGCs and ServerGCPause are the server's collections in Wall.
	ServerGCs     uint32
	ServerGCPause time.Duration
	// MachineCPU is the CPU time every process on the machine used during
	// the run, out of MachineTotal (all CPUs); what client and server did
	// not use went to other processes (zero where not measured).
	MachineCPU, MachineTotal time.Duration
	// Heartbeats counts heartbeat frames received during the run.
	Heartbeats int
	// Failures describes every subscriber that did not get exactly the
	// published events, in order, then the end of its stream.
	Failures []string
}

// rate returns deliveries per second.
func (r *fanoutResult) rate() float64 { return float64(r.Deliveries) / r.Wall.Seconds() }

// subscriber verifies one stream's events.
type subscriber struct {
	s      stream
	events int
	expect int64 // the next event id
	count  int   // events received in order
	last   int64 // when the terminal event was read (Unix ns)
	hbs    int
	hist   histogram
	err    error
}

// run reads the stream until it ends and checks that it held exactly the
// events startedSeq+1 .. startedSeq+events, in order, the last one
// terminal, and nothing after it.
func (sub *subscriber) run() {
	defer sub.s.close()
	sub.expect = startedSeq + 1
	for {
		m, err := sub.s.next()
		switch {
		case errors.Is(err, io.EOF):
			if sub.count < sub.events {
				sub.err = fmt.Errorf("stream ended after %d of %d events", sub.count, sub.events)
			}
			return
		case err != nil:
			sub.err = fmt.Errorf("after %d of %d events: %w", sub.count, sub.events, err)
			return
		}
		switch m.kind {
		case msgHeartbeat:
			sub.hbs++
			continue
		case msgOther:
			continue
		}
		switch {
		case sub.count == sub.events:
			sub.err = fmt.Errorf("event %d after the terminal event", m.seq)
		case m.seq != sub.expect:
			sub.err = fmt.Errorf("got event %d, want %d (after %d of %d events)", m.seq, sub.expect, sub.count, sub.events)
		case m.terminal != (sub.count == sub.events-1):
			sub.err = fmt.Errorf("event %d: terminal=%v at position %d of %d", m.seq, m.terminal, sub.count+1, sub.events)
		}
		if sub.err != nil {
			return
		}
		sub.expect++
		sub.count++
		if m.sent > 0 {
			sub.hist.record(m.recv - m.sent)
		}
		if m.terminal {
			sub.last = m.recv
		}
	}
}

// runFanout runs a fan-out measurement against cfg.Server, logging
// progress to log.
func runFanout(ctx context.Context, cfg fanoutConfig, log io.Writer) (*fanoutResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	ctl := cfg.Server
	defer ctl.closeIdle()
	tasks, err := ctl.createTasks(ctx, cfg.Tasks)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "connecting %d %s subscribers to %d task(s)\n", cfg.Subscribers, cfg.Transport, cfg.Tasks)
	streams, err := dialAll(ctx, cfg.Subscribers, cfg.DialConcurrency, func(i int) (stream, error) {
		return ctl.dial(ctx, cfg.Transport, tasks[i%len(tasks)], cfg.BufSize)
	})
	if err != nil {
		return nil, err
	}
	subs := make([]*subscriber, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		subs[i] = &subscriber{s: s, events: cfg.Events}
		wg.Go(subs[i].run)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// On any early return, end the streams and wait for the readers.
	finished := false
	defer func() {
		if !finished {
			for _, s := range streams {
				_ = s.close()
			}
			<-done
		}
	}()

	before, err := ctl.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	if cfg.ServerProfile != "" {
		if err := ctl.startProfile(ctx, cfg.ServerProfile); err != nil {
			return nil, err
		}
	}
	cpuUser, cpuSys := cpuTime()
	machBusy, machTotal := machineCPU()
	fmt.Fprintf(log, "publishing %d events to each task\n", cfg.Events)
	pub, err := ctl.publish(ctx, publishRequest{TaskIDs: tasks, Events: cfg.Events, Rate: cfg.Rate, Terminal: true})
	if err != nil {
		return nil, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("subscribers incomplete after -timeout %s", cfg.Timeout)
	}
	finished = true
	user, sys := cpuTime()
	machBusy2, machTotal2 := machineCPU()
	if cfg.ServerProfile != "" {
		if err := ctl.stopProfile(ctx); err != nil {
			return nil, err
		}
	}
	after, err := ctl.stats(ctx, false)
	if err != nil {
		return nil, err
	}

	res := &fanoutResult{
		Publish:       time.Duration(pub.EndUnixNano - pub.StartUnixNano),
		ClientCPU:     user - cpuUser + sys - cpuSys,
		ServerCPU:     time.Duration(after.CPUUserNs + after.CPUSysNs - before.CPUUserNs - before.CPUSysNs),
		ServerSysCPU:  time.Duration(after.CPUSysNs - before.CPUSysNs),
		ServerGCs:     after.NumGC - before.NumGC,
		ServerGCPause: time.Duration(after.PauseTotalNs - before.PauseTotalNs),
		MachineCPU:    machBusy2 - machBusy,
		MachineTotal:  machTotal2 - machTotal,
		ServerLatency: serverLatency(before, after),
	}
	var last int64
	for i, sub := range subs {
		res.Deliveries += int64(sub.count)
		res.Heartbeats += sub.hbs
		res.Latency.merge(&sub.hist)
		last = max(last, sub.last)
		if sub.err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("subscriber %d (task %s): %v", i, tasks[i%len(tasks)], sub.err))
		}
	}
	res.Wall = time.Duration(last - pub.StartUnixNano)
	return res, nil
}

// dialAll opens n streams with at most conc dials at a time. On failure it
// closes the streams already open.
func dialAll(ctx context.Context, n, conc int, dial func(i int) (stream, error)) ([]stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]stream, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for i := range next {
				streams[i], errs[i] = dial(i)
				if errs[i] != nil {
					cancel()
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	err := ctx.Err()
	for i, e := range errs {
		if e != nil {
			err = fmt.Errorf("stream %d: %w", i, e)
			break
		}
	}
	if err != nil {
		for _, s := range streams {
			if s != nil {
				_ = s.close()
			}
		}
		return nil, err
	}
	return streams, nil
}

// printFanout writes a fan-out run's report.
func printFanout(w io.Writer, cfg fanoutConfig, res *fanoutResult) {
	rate := "max"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%g/s", cfg.Rate)
	}
	fmt.Fprintf(w, "fanout transport=%s subscribers=%d tasks=%d events/task=%d rate=%s\n",
		cfg.Transport, cfg.Subscribers, cfg.Tasks, cfg.Events, rate)
	want := int64(cfg.Subscribers) * int64(cfg.Events)
	if len(res.Failures) == 0 {
		fmt.Fprintf(w, "verified:    all %d subscribers got their task's %d events exactly once, in order, the last one terminal\n",
			cfg.Subscribers, cfg.Events)
	} else {
		fmt.Fprintf(w, "FAILED:      %d of %d subscribers did not get every event exactly once in order\n", len(res.Failures), cfg.Subscribers)
		for i, f := range res.Failures {
			if i == 10 {
				fmt.Fprintf(w, "             ... and %d more\n", len(res.Failures)-10)
				break
			}
			fmt.Fprintf(w, "             %s\n", f)
		}
	}
	fmt.Fprintf(w, "deliveries:  %d of %d in %s = %.0f deliveries/s\n", res.Deliveries, want, res.Wall.Round(time.Millisecond), res.rate())
	fmt.Fprintf(w, "publishing:  %s (%.0f events/s)\n", res.Publish.Round(time.Millisecond),
		float64(cfg.Events*cfg.Tasks)/res.Publish.Seconds())
	fmt.Fprintf(w, "latency:     p50 %s  p90 %s  p99 %s  max %s  (publish to client read, %d samples)\n",
		roundDur(res.Latency.quantile(0.5)), roundDur(res.Latency.quantile(0.9)), roundDur(res.Latency.quantile(0.99)),
		roundDur(time.Duration(res.Latency.max)), res.Latency.n)
	printServerLatency(w, res.ServerLatency)
	fmt.Fprintf(w, "client CPU:  %s = %.0f%% of one core", res.ClientCPU.Round(time.Millisecond), 100*res.ClientCPU.Seconds()/res.Wall.Seconds())
	if res.Deliveries > 0 {
		fmt.Fprintf(w, ", %s per delivery", roundDur(res.ClientCPU/time.Duration(res.Deliveries)))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "server CPU:  %s = %.0f%% of one core; %d GCs, %s paused\n", res.ServerCPU.Round(time.Millisecond),
		100*res.ServerCPU.Seconds()/res.Wall.Seconds(), res.ServerGCs, res.ServerGCPause.Round(time.Microsecond))
	printCPUPer(w, "delivery", "deliveries", res.ServerCPU, res.ServerSysCPU, res.Deliveries)
	if res.MachineTotal > 0 {
		cores := res.MachineTotal.Seconds() / res.Wall.Seconds()
		others := res.MachineCPU - res.ClientCPU - res.ServerCPU
		fmt.Fprintf(w, "machine:     %.0f%% of %.0f cores busy; other processes used about %.0f%% of one core\n",
			100*res.MachineCPU.Seconds()/res.MachineTotal.Seconds(), cores, 100*max(others, 0).Seconds()/res.Wall.Seconds())
	}
	if res.Heartbeats > 0 {
		fmt.Fprintf(w, "heartbeats:  %d received during the run\n", res.Heartbeats)
	}
}

// serverLatency returns the server's delivery latencies recorded between
// two of its stats, or nil if it does not record them.
func serverLatency(before, after serverStats) *histogram {
	if before.DeliveryLatency == nil || after.DeliveryLatency == nil {
		return nil
	}
	return after.DeliveryLatency.since(before.DeliveryLatency)
}

// printServerLatency reports the server's own share of the latency, when
// it recorded it: from the append to the hand-off to the transport, which
// writes at once. A client slower than the server (more CPU per delivery)
// adds its own queueing to the publish-to-read figures; this one has none.
// It is measured from the event's createdAt, which the service stores with
// millisecond precision, so each figure is up to 1ms high.
func printServerLatency(w io.Writer, h *histogram) {
	if h == nil || h.n == 0 {
		return
	}
	fmt.Fprintf(w, "server-side: p50 %s  p90 %s  p99 %s  max %s  (createdAt to hand-off to the transport, up to 1ms high; %d samples)\n",
		roundDur(h.quantile(0.5)), roundDur(h.quantile(0.9)), roundDur(h.quantile(0.99)), roundDur(time.Duration(h.max)), h.n)
}

// roundDur rounds d to three significant digits or so, for reports.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond)
	default:
		return d.Round(10 * time.Nanosecond)
	}
}

// printCPUPer reports the server's CPU time per unit of work (deliveries,
// wakes), and its inverse. The server's in-process publisher is included.
func printCPUPer(w io.Writer, unit, units string, cpu, sys time.Duration, n int64) {
	if n <= 0 || cpu <= 0 {
		return
	}
	per := cpu / time.Duration(n)
	fmt.Fprintf(w, "server CPU per %s: %s = %.0f %s per server CPU-second (publisher included)\n",
		unit, roundDur(per), float64(n)/cpu.Seconds(), units)
	if sys > 0 {
		fmt.Fprintf(w, "             %s in user space, %s in the kernel (%.0f%%)\n",
			roundDur((cpu-sys)/time.Duration(n)), roundDur(sys/time.Duration(n)), 100*sys.Seconds()/cpu.Seconds())
	}
}
