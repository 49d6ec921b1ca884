// Command redisload measures taskbridge over the Redis store: appends,
// delivery from one replica to subscribers on several, the replay of missed
// events, and the Redis connections all of that takes. Each replica is a
// taskbridge.Service over its own redisstore.Store and its own go-redis
// client (its own pool and subscription connection, as a separate process
// would have), all in this process so that latencies share one clock.
// Subscribers use Service.Subscribe directly: the HTTP transports are
// measured by cmd/tbload against the in-memory store.
//
//	redisload append [-tasks 16] [-workers 16] [-duration 10s]
//	redisload fanout [-replicas 2] [-subscribers 1000] [-events 2000] [-rate 1000]
//	redisload replay [-events 10000] [-runs 5]
//	redisload many   [-replicas 2] [-tasks 5000] [-rate 10] [-duration 30s]
//
// Every mode takes -redis-url (default $TASKBRIDGE_REDIS_URL), -replicas
// and -pool (each replica's go-redis PoolSize and MaxActiveConns, default
// 10).
//
// append: workers append TASK_PROGRESS events, round-robin over the tasks,
// as fast as they can; prints appends per second.
//
// fanout: one task, subscribers spread round-robin over the replicas,
// events appended through replica 0 at rate per second (0: as fast as
// possible) and then a terminal event; every subscriber must receive every
// event once, in order. Prints deliveries per second and the latency from
// append to delivery (p50, p99, max).
//
// replay: a task with -events events; a subscriber on replica 1 that
// missed all of them subscribes from the start and reads to the end; prints
// the time that takes per run.
//
// many: -tasks tasks with one subscriber each, spread over the replicas,
// each task getting -rate events per second through replica 0 for
// -duration, from its own goroutine (as a runner runs each task in its
// own); prints the append rate achieved, the delivered rate and latencies.
//
// Every mode prints Redis's connected_clients while the subscribers are
// connected (compare with -pool × replicas + replicas) and uses keys under
// a fresh prefix that it deletes at the end.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/redisstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisload:", err)
		os.Exit(1)
	}
}

type options struct {
	url                         string
	replicas, pool              int
	tasks, workers, subscribers int
	events, runs                int
	rate                        float64
	duration                    time.Duration
	cpuProfile                  string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("redisload", flag.ContinueOnError)
	fs.StringVar(&o.url, "redis-url", os.Getenv("TASKBRIDGE_REDIS_URL"), "Redis `URL` (default $TASKBRIDGE_REDIS_URL)")
	fs.IntVar(&o.replicas, "replicas", 2, "replicas (services with their own client and store)")
	fs.IntVar(&o.pool, "pool", 10, "go-redis PoolSize and MaxActiveConns of each replica's client (pipelines use the same pool)")
	fs.IntVar(&o.tasks, "tasks", 0, "tasks (append: 16, many: 5000)")
	fs.IntVar(&o.workers, "workers", 16, "append: concurrent appenders")
	fs.IntVar(&o.subscribers, "subscribers", 1000, "fanout: subscribers")
	fs.IntVar(&o.events, "events", 0, "fanout: events (2000); replay: events to replay (10000)")
	fs.IntVar(&o.runs, "runs", 5, "replay: runs")
	fs.Float64Var(&o.rate, "rate", -1, "fanout: events per second in total (1000; 0: unthrottled); many: events per second per task (10)")
	fs.DurationVar(&o.duration, "duration", 0, "append: 10s; many: 30s")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `file`")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("the first argument is the mode: append, fanout, replay or many")
	}
	mode := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.url == "" {
		return errors.New("-redis-url (or TASKBRIDGE_REDIS_URL) is required")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	switch mode {
	case "append":
		def(&o.tasks, 16)
		if o.duration == 0 {
			o.duration = 10 * time.Second
		}
	case "fanout":
		def(&o.events, 2000)
		if o.rate < 0 {
			o.rate = 1000
		}
	case "replay":
		def(&o.events, 10000)
		o.replicas = max(o.replicas, 2)
	case "many":
		def(&o.tasks, 5000)
		if o.rate < 0 {
			o.rate = 10
		}
		if o.duration == 0 {
			o.duration = 30 * time.Second
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	b, err := newBench(ctx, o)
	if err != nil {
		return err
	}
	defer b.close()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(out, "mode=%s replicas=%d pool=%d prefix=%s\n", mode, o.replicas, o.pool, b.prefix)
	switch mode {
	case "append":
		return b.appendMode(ctx, out)
	case "fanout":
		return b.fanoutMode(ctx, out)
	case "replay":
		return b.replayMode(ctx, out)
	default:
		return b.manyMode(ctx, out)
	}
}

// bench is the replicas of one run.
type bench struct {
	o        options
	prefix   string
	admin    *redis.Client
	replicas []*replica
}

type replica struct {
	rdb   *redis.Client
	store *redisstore.Store
	svc   *taskbridge.Service
}

// nopExecutor accepts tasks; the bench appends their events itself.
type nopExecutor struct{}

func (nopExecutor) Submit(context.Context, taskbridge.Task, taskbridge.Emitter) error { return nil }
func (nopExecutor) Cancel(context.Context, taskbridge.Task) error                     { return nil }

var bencher = taskbridge.AuthContext{Subject: "bench"}

func newBench(ctx context.Context, o options) (*bench, error) {
	opt, err := redis.ParseURL(o.url)
	if err != nil {
		return nil, err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	b := &bench{o: o, prefix: "redisload:" + hex.EncodeToString(rnd[:]), admin: redis.NewClient(opt)}
	if err := b.admin.Ping(ctx).Err(); err != nil {
		_ = b.admin.Close()
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range o.replicas {
		ropt := *opt
		ropt.PoolSize, ropt.MaxActiveConns, ropt.PipelinePoolSize = o.pool, o.pool, -1
		r := &replica{rdb: redis.NewClient(&ropt)}
		b.replicas = append(b.replicas, r)
		if r.store, err = redisstore.New(r.rdb, redisstore.Config{Prefix: b.prefix, Logger: quiet}); err != nil {
			b.close()
			return nil, err
		}
		if r.svc, err = taskbridge.New(taskbridge.Config{Store: r.store, Executor: nopExecutor{}, Logger: quiet}); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *bench) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range b.replicas {
		if r.svc != nil {
			_ = r.svc.Shutdown(ctx)
		}
		if r.store != nil {
			_ = r.store.Close()
		}
		_ = r.rdb.Close()
	}
	iter := b.admin.Scan(ctx, 0, b.prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			b.admin.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		b.admin.Unlink(ctx, keys...)
	}
	_ = b.admin.Close()
}

// createTasks creates n started tasks through replica 0.
func (b *bench) createTasks(ctx context.Context, n int) ([]string, error) {
	ids := make([]string, n)
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
	)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				resp, err := b.replicas[0].svc.CreateTask(ctx, bencher, taskbridge.CreateTaskRequest{ClientRequestID: fmt.Sprint("c-", i), TaskType: "bench"})
				if err == nil {
					ids[i] = resp.TaskID
					_, err = b.replicas[0].svc.Emitter(resp.TaskID).Emit(ctx, taskbridge.StartedPayload{})
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	return ids, nil
}

// progress is an event carrying its append time, for latencies.
func progress(sent time.Time) taskbridge.ProgressPayload {
	return taskbridge.ProgressPayload{Progress: 50, Message: strconv.FormatInt(sent.UnixNano(), 10)}
}

func (b *bench) connectedClients(ctx context.Context) string {
	info, err := b.admin.Info(ctx, "clients").Result()
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
			return v
		}
	}
	return "?"
}

func (b *bench) appendMode(ctx context.Context, out io.Writer) error {
	ids, err := b.createTasks(ctx, b.o.tasks)
	if err != nil {
		return err
	}
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, b.o.duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range b.o.workers {
		wg.Go(func() {
			em := b.replicas[w%len(b.replicas)].svc.Emitter(ids[w%len(ids)])
			for ctx.Err() == nil {
				if _, err := em.Emit(ctx, progress(time.Now())); err != nil {
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Fprintf(out, "appends=%d in %v: %.0f appends/s (%d workers, %d tasks)\n", n.Load(), el.Round(time.Millisecond),
		float64(n.Load())/el.Seconds(), b.o.workers, b.o.tasks)
	return nil
}

// subscriber follows one task through one replica and records latencies.
type subscriber struct {
	sub       *taskbridge.Subscription
	latencies []time.Duration
	got       int64
	err       error
}

// follow reads sub until the end of its task, checking that the events
// arrive once and in order.
func (s *subscriber) follow(ctx context.Context, after int64) {
	last := after
	for {
		ev, err := s.sub.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			return
		case err != nil:
			s.err = err
			return
		}
		if ev.Seq != last+1 {
			s.err = fmt.Errorf("got event %d after %d", ev.Seq, last)
			return
		}
		last = ev.Seq
		s.got++
		if ns, ok := sentAt(ev.Payload); ok {
			s.latencies = append(s.latencies, time.Since(time.Unix(0, ns)))
		}
	}
}

// sentAt returns the append time that progress put in a payload, without
// decoding all of it (the clients must not be the bottleneck).
func sentAt(payload []byte) (int64, bool) {
	const key = `"message":"`
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := payload[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return ns, err == nil
}

// subscribe opens one subscriber per task in ids (repeated per count)
// spread over the replicas, and starts them.
func (b *bench) subscribe(ctx context.Context, ids []string, count int, after string, wg *sync.WaitGroup) ([]*subscriber, error) {
	subs := make([]*subscriber, count)
	for i := range subs {
		r := b.replicas[i%len(b.replicas)]
		sub, err := r.svc.Subscribe(ctx, bencher, ids[i%len(ids)], after)
		if err != nil {
			return nil, err
		}
		subs[i] = &subscriber{sub: sub}
		from, _ := taskbridge.ParseEventID(after)
		wg.Go(func() { subs[i].follow(ctx, from) })
	}
	return subs, nil
}

// report prints the deliveries and latencies of subs.
func report(out io.Writer, subs []*subscriber, want int64, elapsed time.Duration) error {
	var all []time.Duration
	var delivered int64
	for i, s := range subs {
		s.sub.Close()
		if s.err != nil {
			return fmt.Errorf("subscriber %d: %w", i, s.err)
		}
		if want > 0 && s.got != want {
			return fmt.Errorf("subscriber %d got %d events, want %d", i, s.got, want)
		}
		delivered += s.got
		all = append(all, s.latencies...)
	}
	slices.Sort(all)
	q := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))].Round(10 * time.Microsecond)
	}
	fmt.Fprintf(out, "delivered=%d in %v: %.0f deliveries/s; latency p50=%v p99=%v max=%v (%d samples)\n",
		delivered, elapsed.Round(time.Millisecond), float64(delivered)/elapsed.Seconds(), q(0.5), q(0.99), q(1), len(all))
	return nil
}

func (b *bench) fanoutMode(ctx context.Context, out io.Writer) error {
	ids, err := b.createTasks(ctx, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	subs, err := b.subscribe(ctx, ids, b.o.subscribers, "1", &wg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "subscribers=%d connected_clients=%s\n", len(subs), b.connectedClients(ctx))
	em := b.replicas[0].svc.Emitter(ids[0])
	start := time.Now()
	if err := emitPaced(ctx, b.o.events, b.o.rate, func(int) error {
		_, err := em.Emit(ctx, progress(time.Now()))
		return err
	}); err != nil {
		return err
	}
	if _, err := em.Emit(ctx, taskbridge.CompletedPayload{}); err != nil {
		return err
	}
	wg.Wait()
	return report(out, subs, int64(b.o.events)+1, time.Since(start))
}

// emitPaced calls emit n times at rate per second (0: unthrottled).
func emitPaced(ctx context.Context, n int, rate float64, emit func(i int) error) error {
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if err := emit(i); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) replayMode(ctx context.Context, out io.Writer) error {
	ids, err := b.createTasks(ctx, 1)
	if err != nil {
		return err
	}
	em := b.replicas[0].svc.Emitter(ids[0])
	for range b.o.events - 2 {
		if _, err := em.Emit(ctx, taskbridge.ProgressPayload{Progress: 50, Message: "missed while offline"}); err != nil {
			return err
		}
	}
	if _, err := em.Emit(ctx, taskbridge.CompletedPayload{}); err != nil {
		return err
	}
	var times []time.Duration
	for run := range b.o.runs {
		start := time.Now()
		var wg sync.WaitGroup
		subs, err := b.subscribe(ctx, ids, 1, "", &wg)
		if err != nil {
			return err
		}
		wg.Wait()
		el := time.Since(start)
		if subs[0].err != nil || subs[0].got != int64(b.o.events) {
			return fmt.Errorf("run %d: got %d events, want %d: %v", run, subs[0].got, b.o.events, subs[0].err)
		}
		subs[0].sub.Close()
		times = append(times, el)
	}
	slices.Sort(times)
	fmt.Fprintf(out, "replay of %d events from cursor 0 on the other replica: min=%v median=%v max=%v (%d runs)\n",
		b.o.events, times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond),
		times[len(times)-1].Round(time.Millisecond), len(times))
	return nil
}

func (b *bench) manyMode(ctx context.Context, out io.Writer) error {
	ids, err := b.createTasks(ctx, b.o.tasks)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.o.duration+5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	subs, err := b.subscribe(ctx, ids, len(ids), "1", &wg)
	if err != nil {
		return err
	}
	perTask := int(b.o.rate * b.o.duration.Seconds())
	fmt.Fprintf(out, "subscribers=%d connected_clients=%s; %d events per task at %.0f/s per task (%.0f/s in total)\n",
		len(subs), b.connectedClients(ctx), perTask, b.o.rate, b.o.rate*float64(len(ids)))
	// One emitter per task, as a runner has one goroutine per task, each
	// paced to rate events/s (started at random offsets within a period).
	start := time.Now()
	var emitters sync.WaitGroup
	var emitErr atomic.Pointer[error]
	for i, id := range ids {
		emitters.Go(func() {
			offset := time.Duration(float64(i) / float64(len(ids)) / b.o.rate * float64(time.Second))
			select {
			case <-time.After(offset):
			case <-ctx.Done():
				return
			}
			em := b.replicas[0].svc.Emitter(id)
			err := emitPaced(ctx, perTask, b.o.rate, func(int) error {
				_, err := em.Emit(ctx, progress(time.Now()))
				return err
			})
			if err == nil {
				_, err = em.Emit(ctx, taskbridge.CompletedPayload{})
			}
			if err != nil {
				emitErr.CompareAndSwap(nil, &err)
			}
		})
	}
	emitters.Wait()
	if p := emitErr.Load(); p != nil {
		cancel()
		wg.Wait()
		return *p
	}
	sent := time.Since(start)
	wg.Wait()
	fmt.Fprintf(out, "appended %d events in %v (%.0f/s)\n", (perTask+1)*len(ids), sent.Round(time.Millisecond),
		float64((perTask+1)*len(ids))/sent.Seconds())
	return report(out, subs, int64(perTask)+1, time.Since(start))
}
