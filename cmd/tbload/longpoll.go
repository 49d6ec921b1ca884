package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// longpollConfig configures a long-poll run.
type longpollConfig struct {
	Server *controlClient
	// Polls long polls wait at once, spread over Tasks tasks round-robin.
	Polls, Tasks int
	// Rate is the publish rate of the one event per task, in events per
	// second in total; 0 publishes as fast as the server takes them.
	Rate float64
	// Wait is the polls' waitTimeoutMs.
	Wait time.Duration
	// Cold parks each long poll as the first request of a new connection.
	// Otherwise its connection has first served one poll that returned at
	// once, as for a client that polls in a loop on a kept-alive
	// connection: the server's per-connection buffers are then in use
	// already (the first response written on a connection costs page
	// faults on its freshly allocated write buffer).
	Cold bool
	// ServerProfile, when set, is where the server writes a CPU profile of
	// the measured window (from the first publish to the last answer).
	ServerProfile   string
	DialConcurrency int
	Timeout         time.Duration
}

func (c *longpollConfig) validate() error {
	switch {
	case c.Polls < 1, c.Tasks < 1, c.DialConcurrency < 1:
		return errors.New("-polls, -tasks and -dial-concurrency must be positive")
	case c.Tasks > c.Polls:
		return errors.New("-tasks must not exceed -polls")
	case c.Rate < 0:
		return errors.New("-rate must not be negative")
	case c.Wait < time.Second || c.Wait > time.Minute:
		return errors.New("-wait must be within 1s..1m")
	}
	return nil
}

// longpollResult is what a long-poll run measured.
type longpollResult struct {
	// Wakes counts the polls that returned exactly the published event.
	Wakes int64
	// Wall runs from the first publish to the last poll's answer.
	Wall time.Duration
	// Latency is publish-to-answer time of every woken poll.
	Latency histogram
	// ServerLatency is the server's own append-to-answer time of the
	// woken polls (nil unless it runs with -delivery-latency).
	ServerLatency *histogram
	// ServerCPU is the server's CPU time during Wall, ServerSysCPU its
	// part in the kernel (0 where the server does not report it apart).
	ServerCPU, ServerSysCPU time.Duration
	// Failures describes every poll that did not return exactly the one
	// published event.
	Failures []string
}

// polled is the part of a poll answer the run checks.
type polled struct {
	Events []struct {
		EventID string `json:"eventId"`
		Type    string `json:"type"`
		Payload struct {
			Message string `json:"message"`
		} `json:"payload"`
	} `json:"events"`
}

// runLongPoll parks cfg.Polls long polls after each task's first event,
// waits until the server has them all waiting, has it publish one event to
// every task, and checks that every poll returned exactly that event.
func runLongPoll(ctx context.Context, cfg longpollConfig, log io.Writer) (*longpollResult, error) {
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
	hc := &http.Client{Transport: &http.Transport{
		DisableCompression: true, MaxIdleConnsPerHost: cfg.Polls, MaxConnsPerHost: 0,
	}}
	defer hc.CloseIdleConnections()
	base, err := ctl.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "parking %d long polls on %d task(s)\n", cfg.Polls, cfg.Tasks)
	results := make([]pollOutcome, cfg.Polls)
	var wg sync.WaitGroup
	defer wg.Wait()
	for started := 0; started < cfg.Polls; {
		n := min(cfg.DialConcurrency, cfg.Polls-started)
		for i := started; i < started+n; i++ {
			wg.Go(func() {
				task := tasks[i%len(tasks)]
				if !cfg.Cold {
					if err := warmPoll(ctx, hc, ctl.addr, task); err != nil {
						results[i] = pollOutcome{err: fmt.Errorf("warm-up poll: %w", err)}
						return
					}
				}
				results[i] = longPoll(ctx, hc, ctl.addr, task, cfg.Wait)
			})
		}
		started += n
		// Wait until the batch waits (one watch per task), so that dials
		// do not pile up in the listen queue.
		want := base.Watching + int64(min(started, len(tasks)))
		progress, seen := time.Now(), int64(-1)
		for {
			st, err := ctl.stats(ctx, false)
			if err != nil {
				return nil, err
			}
			if st.Watching >= want {
				break
			}
			if st.Watching != seen {
				progress, seen = time.Now(), st.Watching
			} else if time.Since(progress) > 30*time.Second {
				return nil, fmt.Errorf("%d long polls waiting on the server for 30s, want %d (is it a tbload server or baseline-server?)",
					st.Watching-base.Watching, want-base.Watching)
			}
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return nil, fmt.Errorf("long polls not all waiting after -timeout %s", cfg.Timeout)
			}
		}
	}
	before, err := ctl.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	if cfg.ServerProfile != "" {
		if err := ctl.startProfile(ctx, cfg.ServerProfile); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "publishing one event to each task\n")
	pub, err := ctl.publish(ctx, publishRequest{TaskIDs: tasks, Events: 1, Rate: cfg.Rate})
	if err != nil {
		return nil, err
	}
	wg.Wait()
	if cfg.ServerProfile != "" {
		if err := ctl.stopProfile(ctx); err != nil {
			return nil, err
		}
	}
	after, err := ctl.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	res := &longpollResult{
		ServerCPU:     time.Duration(after.CPUUserNs + after.CPUSysNs - before.CPUUserNs - before.CPUSysNs),
		ServerSysCPU:  time.Duration(after.CPUSysNs - before.CPUSysNs),
		ServerLatency: serverLatency(before, after),
	}
	var last int64
	for i, r := range results {
		if r.err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("poll %d (task %s): %v", i, tasks[i%len(tasks)], r.err))
			continue
		}
		res.Wakes++
		res.Latency.record(r.recv - r.sent)
		last = max(last, r.recv)
	}
	res.Wall = time.Duration(last - pub.StartUnixNano)
	return res, nil
}

// pollOutcome is one poll's answer: when the event was published and when
// the answer was read (Unix ns), or why the poll failed.
type pollOutcome struct {
	sent, recv int64
	err        error
}

// warmPoll polls task after its first event without waiting, so that the
// long poll that follows on the same goroutine finds a connection that has
// served a request (the transport hands back the one it just released).
func warmPoll(ctx context.Context, hc *http.Client, addr, task string) error {
	p, _, err := poll(ctx, hc, addr, task, 0)
	if err == nil && len(p.Events) != 0 {
		err = fmt.Errorf("got %d events before any was published", len(p.Events))
	}
	return err
}

// longPoll polls task after its first event and checks that the answer
// holds exactly the event that follows it, a published TASK_PROGRESS.
func longPoll(ctx context.Context, hc *http.Client, addr, task string, wait time.Duration) pollOutcome {
	p, recv, err := poll(ctx, hc, addr, task, wait)
	switch {
	case err != nil:
		return pollOutcome{err: err}
	case len(p.Events) != 1:
		return pollOutcome{err: fmt.Errorf("got %d events, want exactly the published one", len(p.Events))}
	case p.Events[0].EventID != strconv.Itoa(startedSeq+1):
		return pollOutcome{err: fmt.Errorf("got event %s, want %d", p.Events[0].EventID, startedSeq+1)}
	}
	sent, err := strconv.ParseInt(p.Events[0].Payload.Message, 10, 64)
	if err != nil {
		return pollOutcome{err: fmt.Errorf("event %s carries no publish time: %w", p.Events[0].EventID, err)}
	}
	return pollOutcome{sent: sent, recv: recv}
}

// poll polls task after its first event, waiting up to wait, and returns
// the decoded answer and when it was read (Unix ns).
func poll(ctx context.Context, hc *http.Client, addr, task string, wait time.Duration) (polled, int64, error) {
	url := fmt.Sprintf("http://%s/api/v1/tasks/%s/events?afterEventId=%d&waitTimeoutMs=%d", addr, task, startedSeq, wait.Milliseconds())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return polled{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+benchSubject)
	resp, err := hc.Do(req)
	if err != nil {
		return polled{}, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return polled{}, 0, statusError(resp)
	}
	var p polled
	err = json.NewDecoder(resp.Body).Decode(&p)
	return p, time.Now().UnixNano(), err
}

// printLongPoll writes a long-poll run's report.
func printLongPoll(w io.Writer, cfg longpollConfig, res *longpollResult) {
	rate := "max"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%g/s", cfg.Rate)
	}
	fmt.Fprintf(w, "longpoll polls=%d tasks=%d rate=%s\n", cfg.Polls, cfg.Tasks, rate)
	if len(res.Failures) == 0 {
		fmt.Fprintf(w, "verified:    all %d polls returned their task's published event exactly once\n", cfg.Polls)
	} else {
		fmt.Fprintf(w, "FAILED:      %d of %d polls did not return exactly the published event\n", len(res.Failures), cfg.Polls)
		for i, f := range res.Failures {
			if i == 10 {
				fmt.Fprintf(w, "             ... and %d more\n", len(res.Failures)-10)
				break
			}
			fmt.Fprintf(w, "             %s\n", f)
		}
	}
	fmt.Fprintf(w, "wakes:       %d in %s\n", res.Wakes, res.Wall.Round(time.Millisecond))
	fmt.Fprintf(w, "wake latency: p50 %s  p90 %s  p99 %s  max %s  (publish to client read)\n",
		roundDur(res.Latency.quantile(0.5)), roundDur(res.Latency.quantile(0.9)), roundDur(res.Latency.quantile(0.99)),
		roundDur(time.Duration(res.Latency.max)))
	printServerLatency(w, res.ServerLatency)
	fmt.Fprintf(w, "server CPU:  %s\n", res.ServerCPU.Round(time.Millisecond))
	printCPUPer(w, "wake", "wakes", res.ServerCPU, res.ServerSysCPU, res.Wakes)
}
