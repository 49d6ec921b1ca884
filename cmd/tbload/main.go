package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `tbload measures taskbridge's streaming over real TCP.

Usage:
  tbload server          [flags]   serve taskbridge with the benchmark control endpoints
  tbload baseline-server [flags]   serve a minimal hand-written SSE broadcaster and long poll, for comparison
  tbload fanout          [flags]   fan events out to many subscribers; verify and time them
  tbload idle            [flags]   hold many idle streams; measure the server's memory per stream
  tbload longpoll        [flags]   park many long polls, publish one event each; verify and time the wakes

Run "tbload <mode> -h" for the flags of a mode.
`

// errUsage reports bad flags; the flag package has printed the details.
var errUsage = errors.New("usage")

// errFailed reports a run whose verification failed; its report says how.
var errFailed = errors.New("verification failed")

// run executes the tool with args (without the program name) and returns
// the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "server":
		err = serverMain(ctx, "server", args[1:], stdout, stderr)
	case "baseline-server":
		err = serverMain(ctx, "baseline-server", args[1:], stdout, stderr)
	case "fanout":
		err = fanoutMain(ctx, args[1:], stdout, stderr)
	case "idle":
		err = idleMain(ctx, args[1:], stdout, stderr)
	case "longpoll":
		err = longpollMain(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tbload: unknown mode %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errFailed):
		return 1
	}
	fmt.Fprintf(stderr, "tbload %s: %v\n", args[0], err)
	return 1
}

// newFlags returns a flag set for mode whose usage message starts with
// synopsis.
func newFlags(mode, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tbload %s [flags]\n\n%s\nFlags:\n", mode, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping errors other than -h to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}

// benchServer is one of the servers under test.
type benchServer interface {
	http.Handler
	// shutdown ends the streams; it runs before http.Server.Shutdown.
	shutdown(ctx context.Context) error
	// close releases the rest; it runs after http.Server.Shutdown.
	close(ctx context.Context) error
}

func serverMain(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) error {
	synopsis := "Serves taskbridge (memstore, Service, httpapi with the sse and ws handlers, Bearer auth)\n" +
		"and the benchmark control endpoints, until interrupted."
	if mode == "baseline-server" {
		synopsis = "Serves a minimal hand-written SSE broadcaster (one shared []byte per event, a buffered\n" +
			"channel per subscriber, no store or replay), a minimal long poll (a channel per task closed by\n" +
			"the next publish) and the benchmark control endpoints, until interrupted."
	}
	fs := newFlags(mode, synopsis, stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (port 0 picks a free port); printed as \"listening <addr>\"")
	var cfg serverConfig
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 0, "heartbeat interval of idle streams (0: 15s; negative: none)")
	if mode == "server" {
		fs.BoolVar(&cfg.SSEHijack, "sse-hijack", false, "serve SSE streams on the hijacked connection (sse.Config.Hijack)\n"+
			"instead of inside ServeHTTP")
		fs.BoolVar(&cfg.NoInline, "no-inline", false, "keep every write on the stream's goroutine (sse.Config.DisableInlineWrites\n"+
			"with -sse-hijack, ws.Config.DisableInlineWrites)")
		fs.BoolVar(&cfg.NoPacing, "no-pacing", false, "do not pace the fan-out's wake-ups (taskbridge.Config.DisableWakePacing)")
		fs.BoolVar(&cfg.DeliveryLatency, "delivery-latency", false, "record each delivery's latency on the server, from the event's append\n"+
			"to its hand-off to the transport (Diagnostics.Delivery); fanout and longpoll print it,\n"+
			"which tells the server's share of a latency from the load tool's")
	}
	if mode == "baseline-server" {
		fs.BoolVar(&cfg.Direct, "direct", false, "write each event to each SSE subscriber's hijacked connection from the\n"+
			"publisher's goroutine, with no goroutine, channel, heartbeat or write timeout per stream:\n"+
			"one write system call per delivery and nothing else (the one-write-per-event ceiling;\n"+
			"healthy clients only)")
	}
	contention := fs.Int("contention-rate", 0, "if positive, record mutex contention and blocking for\n"+
		"/debug/pprof/mutex and /debug/pprof/block (runtime.SetMutexProfileFraction and\n"+
		"SetBlockProfileRate with this rate; it slows the server)")
	memRate := fs.Int("memprofile-rate", 0, "if positive, set runtime.MemProfileRate to this (1: record every\n"+
		"allocation, so /debug/pprof/heap gives exact bytes per allocation site; it slows the server)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	if *contention > 0 {
		runtime.SetMutexProfileFraction(*contention)
		runtime.SetBlockProfileRate(*contention)
	}
	var srv benchServer
	if mode == "baseline-server" {
		srv = newBaselineServer(cfg)
	} else {
		s, err := newTBServer(cfg)
		if err != nil {
			return err
		}
		srv = s
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	return serve(ctx, ln, srv, stdout)
}

// serve serves srv on ln until ctx ends, then shuts it down.
func serve(ctx context.Context, ln net.Listener, srv benchServer, stdout io.Writer) error {
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := errors.Join(srv.shutdown(sctx), hs.Shutdown(sctx))
	<-served
	return errors.Join(err, srv.close(sctx))
}

// clientFlags are the flags shared by the client modes.
type clientFlags struct {
	target     target
	transport  string
	dialConc   int
	timeout    time.Duration
	cpuprofile string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	c.target.flags(fs)
	fs.StringVar(&c.transport, "transport", transportSSE, "sse or ws")
	fs.IntVar(&c.dialConc, "dial-concurrency", 64, "connections opened at a time")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of this client process to `file`")
}

// run runs a client mode: it parses args and checks them with validate,
// starts the server and the client's CPU profile, and runs measure, whose
// report (if any) goes to stdout with the machine's load. failed marks a
// run whose checks failed (exit status 1).
func (c *clientFlags) run(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer,
	validate func() error, measure func(serverAPI) (report func(io.Writer), failed bool, err error)) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	srv, stop, err := c.start(ctx)
	if err != nil {
		return err
	}
	load := loadAverage()
	report, failed, err := measure(srv)
	err = errors.Join(err, stop())
	if report != nil {
		report(stdout)
		printLoad(stdout, load)
		if failed {
			err = errors.Join(err, errFailed)
		}
	}
	return err
}

// start starts the target server and the client's CPU profile; the
// returned function undoes both.
func (c *clientFlags) start(ctx context.Context) (srv serverAPI, stop func() error, err error) {
	srv, stopServer, err := c.target.start(ctx)
	if err != nil {
		return nil, nil, err
	}
	if c.cpuprofile == "" {
		return srv, stopServer, nil
	}
	f, err := os.Create(c.cpuprofile)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		return nil, nil, errors.Join(err, stopServer())
	}
	return srv, func() error {
		pprof.StopCPUProfile()
		return errors.Join(f.Close(), stopServer())
	}, nil
}

func fanoutMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fanout", "Opens -subscribers streams spread over -tasks tasks, has the server publish -events events\n"+
		"to each task (the last one terminal), verifies that every subscriber got its task's events\n"+
		"exactly once and in order, and reports deliveries/s, latency and CPU. Exits 1 if any\n"+
		"subscriber missed, repeated or reordered an event.", stderr)
	var cf clientFlags
	cf.register(fs)
	var cfg fanoutConfig
	fs.IntVar(&cfg.Subscribers, "subscribers", 1000, "subscriber connections")
	fs.IntVar(&cfg.Tasks, "tasks", 1, "tasks the subscribers are spread over, round-robin")
	fs.IntVar(&cfg.Events, "events", 100_000, "events published per task, the last one terminal")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total publish rate in events/s (0: as fast as the server takes them)")
	fs.IntVar(&cfg.BufSize, "buffer", 64<<10, "read buffer per subscriber, bytes")
	fs.StringVar(&cfg.ServerProfile, "server-cpuprofile", "", "have the server write a CPU profile of the measured window to `file`")
	return cf.run(ctx, fs, args, stdout, stderr, func() error {
		cfg.Transport, cfg.DialConcurrency, cfg.Timeout = cf.transport, cf.dialConc, cf.timeout
		return cfg.validate()
	}, func(srv serverAPI) (func(io.Writer), bool, error) {
		cfg.Server = srv
		res, err := runFanout(ctx, cfg, stderr)
		if res == nil {
			return nil, false, err
		}
		return func(w io.Writer) { printFanout(w, cfg, res) }, len(res.Failures) > 0, err
	})
}

func idleMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("idle", "Opens -streams idle streams (one task each unless -tasks is set) and reports the server's\n"+
		"heap, goroutine stacks and goroutines per stream; checks that every stream gets a heartbeat,\n"+
		"that the server answers /health and delivers a live event, and that closing the streams\n"+
		"releases their goroutines. Each stream is a file descriptor in client and server: see ulimit -n.", stderr)
	var cf clientFlags
	cf.register(fs)
	var cfg idleConfig
	fs.IntVar(&cfg.Streams, "streams", 1000, "idle streams to open")
	fs.IntVar(&cfg.Tasks, "tasks", 0, "tasks the streams are spread over (0: one task per stream)")
	fs.IntVar(&cfg.BufSize, "buffer", 1024, "read buffer per stream, bytes")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", time.Minute, "how long to wait for a heartbeat on every stream")
	fs.IntVar(&cfg.Probes, "probes", 10, "tasks that get a live event to check delivery")
	fs.IntVar(&cfg.HealthChecks, "health-checks", 20, "timed /health requests while the streams are open")
	fs.BoolVar(&cfg.Ping, "ping", false, "WebSocket: every stream sends a ping once connected and waits for its pong (a client with a keep-alive ping)")
	return cf.run(ctx, fs, args, stdout, stderr, func() error {
		cfg.Transport, cfg.DialConcurrency, cfg.Timeout = cf.transport, cf.dialConc, cf.timeout
		return cfg.validate()
	}, func(srv serverAPI) (func(io.Writer), bool, error) {
		cfg.Server = srv
		res, err := runIdle(ctx, cfg, stderr)
		if res == nil {
			return nil, false, err
		}
		return func(w io.Writer) { printIdle(w, cfg, res) }, !res.Released, err
	})
}

func longpollMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("longpoll", "Parks -polls long polls spread over -tasks tasks (each after the task's first event),\n"+
		"waits until the server has them all waiting, has it publish one event to every task, verifies\n"+
		"that every poll returned exactly that event, and reports wake latency and server CPU per wake.\n"+
		"Exits 1 if any poll did not. A tbload server or baseline-server (not Centrifugo) serves long polls.", stderr)
	var cf clientFlags
	cf.register(fs)
	var cfg longpollConfig
	fs.IntVar(&cfg.Polls, "polls", 5000, "concurrent long polls")
	fs.IntVar(&cfg.Tasks, "tasks", 5000, "tasks the polls are spread over, round-robin")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total publish rate in events/s (0: as fast as the server takes them)")
	fs.DurationVar(&cfg.Wait, "wait", 30*time.Second, "the polls' wait timeout (waitTimeoutMs)")
	fs.StringVar(&cfg.ServerProfile, "server-cpuprofile", "", "have the server write a CPU profile of the measured window to `file`")
	fs.BoolVar(&cfg.Cold, "cold", false, "park each long poll as the first request of a new connection (default: its\n"+
		"connection first serves one poll that returns at once, as for a client polling in a loop)")
	return cf.run(ctx, fs, args, stdout, stderr, func() error {
		cfg.DialConcurrency, cfg.Timeout = cf.dialConc, cf.timeout
		return cfg.validate()
	}, func(srv serverAPI) (func(io.Writer), bool, error) {
		ctl, ok := srv.(*controlClient)
		if !ok {
			return nil, false, errors.New("long polls need a tbload server")
		}
		cfg.Server = ctl
		res, err := runLongPoll(ctx, cfg, stderr)
		if res == nil {
			return nil, false, err
		}
		return func(w io.Writer) { printLongPoll(w, cfg, res) }, len(res.Failures) > 0, err
	})
}

// printLoad reports the machine's load average before and after a run:
// other processes competing for the CPUs distort the numbers.
func printLoad(w io.Writer, before string) {
	if before != "" {
		fmt.Fprintf(w, "load avg:    %s before, %s after (1, 5, 15 min)\n", before, loadAverage())
	}
}
