// Package cmdmain holds what the example commands share: signal handling
// and exit codes ([Main]) and an HTTP server that shuts down gracefully
// ([Serve]).
package cmdmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// ErrUsage marks bad command-line arguments that the flag package has
// already reported; [Main] exits with status 2 on it.
var ErrUsage = errors.New("invalid arguments")

// RunFunc is a command's body: it parses args and runs until ctx ends.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Main runs run with the process's arguments and a context that ends on
// SIGINT or SIGTERM, then exits: 0 on success or -h, 2 on [ErrUsage] and 1
// on any other error, which it prints prefixed with name.
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(name, err, os.Stderr))
}

func exitCode(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// Server configures [Serve].
type Server struct {
	// Addr is the listen address; port 0 picks a free port.
	Addr string
	// Handler serves the requests.
	Handler http.Handler
	// Log receives the server's errors. Defaults to [slog.Default].
	Log *slog.Logger
	// ShutdownTimeout bounds the graceful shutdown. Defaults to 10s.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes is the http.Server's; zero is its default.
	MaxHeaderBytes int
	// OnShutdown are registered with [http.Server.RegisterOnShutdown]:
	// they end the streams, which Shutdown does not wait for otherwise.
	// Serve returns once they have returned (or ShutdownTimeout passed).
	OnShutdown []func()
	// Background, if set, runs from the moment the server listens until
	// the server and Stop have shut down (maintenance loops).
	Background func(ctx context.Context)
	// Started, if set, is called with the server's URL once it listens.
	Started func(url string)
	// Stop, if set, shuts the application down, at the same time as the
	// HTTP server (long polls end when the service shuts down).
	Stop func(ctx context.Context) error
}

// Serve listens on s.Addr and serves until ctx ends or serving fails, then
// shuts down within s.ShutdownTimeout. It prints "listening on URL" to
// stdout once the listener is open. When listening fails it still calls
// s.Stop.
func Serve(ctx context.Context, s Server, stdout io.Writer) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.ShutdownTimeout <= 0 {
		s.ShutdownTimeout = 10 * time.Second
	}
	stop := s.Stop
	if stop == nil {
		stop = func(context.Context) error { return nil }
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return errors.Join(err, stop(context.Background()))
	}
	// Timeouts that suit long-lived streams and uploads: the handlers bound
	// request bodies (httpapi's read deadlines) and writes themselves, per
	// request, so ReadTimeout and WriteTimeout stay unset.
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    s.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
	}
	// Shutdown starts the OnShutdown funcs on goroutines of their own and
	// does not wait for them; Serve does, so that it returns only once the
	// streams they end have ended.
	var hooks sync.WaitGroup
	for _, f := range s.OnShutdown {
		hooks.Add(1)
		srv.RegisterOnShutdown(func() {
			defer hooks.Done()
			f()
		})
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	bctx, stopBackground := context.WithCancel(context.Background())
	background := make(chan struct{})
	go func() {
		defer close(background)
		if s.Background != nil {
			s.Background(bctx)
		}
	}()
	url := "http://" + ln.Addr().String()
	if s.Started != nil {
		s.Started(url)
	}
	fmt.Fprintf(stdout, "listening on %s\n", url)

	var serveErr error
	select {
	case <-ctx.Done():
		s.Log.Info("shutting down")
	case serveErr = <-served:
		s.Log.Error("server failed", slog.Any("error", serveErr))
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	// srv.Shutdown stops accepting, closes the streams (OnShutdown) and
	// waits for the requests, SSE streams included; stop ends the
	// application, so long polls return, and waits for what it owns.
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Shutdown(sctx) }()
	stopErr := stop(sctx)
	httpErr := <-httpDone
	hooksDone := make(chan struct{})
	go func() { hooks.Wait(); close(hooksDone) }()
	select {
	case <-hooksDone:
	case <-sctx.Done():
		httpErr = errors.Join(httpErr, fmt.Errorf("shutdown hooks: %w", sctx.Err()))
	}
	if serveErr == nil {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	stopBackground()
	<-background
	return errors.Join(serveErr, httpErr, stopErr)
}

// Parse parses args with fs, reporting to stderr. A bad argument is
// [ErrUsage] (the flag package has printed why), -h is [flag.ErrHelp].
func Parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	switch err := fs.Parse(args); {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return err
	default:
		return ErrUsage
	}
}
