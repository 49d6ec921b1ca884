package cmdmain

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExitCode(t *testing.T) {
	var stderr bytes.Buffer
	require.Equal(t, 0, exitCode("cmd", nil, &stderr))
	require.Equal(t, 0, exitCode("cmd", flag.ErrHelp, &stderr))
	require.Equal(t, 2, exitCode("cmd", ErrUsage, &stderr))
	require.Empty(t, stderr.String())
	require.Equal(t, 1, exitCode("cmd", errors.New("boom"), &stderr))
	require.Equal(t, "cmd: boom\n", stderr.String())
}

func TestParse(t *testing.T) {
	fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
	n := fs.Int("n", 1, "a number")
	var stderr bytes.Buffer
	require.NoError(t, Parse(fs, []string{"-n", "3"}, &stderr))
	require.Equal(t, 3, *n)
	require.ErrorIs(t, Parse(fs, []string{"-nope"}, &stderr), ErrUsage)
	require.Contains(t, stderr.String(), "flag provided but not defined: -nope")
	require.ErrorIs(t, Parse(fs, []string{"-h"}, io.Discard), flag.ErrHelp)
}

// TestServe serves a request, then shuts down on ctx: OnShutdown and Stop
// run, Background ends, and Serve returns nil, not before OnShutdown has
// returned (http.Server.Shutdown does not wait for it: Serve used to return
// first, now and then).
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var onShutdown, stopped, backgroundEnded atomic.Bool
	release := make(chan struct{})
	urls := make(chan string, 1)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Server{
			Addr:       "127.0.0.1:0",
			Handler:    http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
			OnShutdown: []func(){func() { <-release; onShutdown.Store(true) }},
			Background: func(ctx context.Context) { <-ctx.Done(); backgroundEnded.Store(true) },
			Started:    func(url string) { urls <- url },
			Stop:       func(context.Context) error { stopped.Store(true); return nil },
		}, pw)
		_ = pw.Close()
	}()
	url := <-urls
	line := make([]byte, 64)
	n, _ := pr.Read(line)
	require.Equal(t, "listening on "+url+"\n", string(line[:n]))
	resp, err := http.Get(url)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "ok", string(body))

	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	select {
	case <-done:
		t.Fatal("Serve returned before its OnShutdown func did")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	require.True(t, onShutdown.Load(), "OnShutdown")
	require.True(t, stopped.Load(), "Stop")
	require.True(t, backgroundEnded.Load(), "Background")
}

// TestServeListenError still stops the application when it cannot listen.
func TestServeListenError(t *testing.T) {
	var stopped atomic.Bool
	err := Serve(context.Background(), Server{
		Addr: "256.0.0.1:0", Handler: http.NotFoundHandler(),
		Stop: func(context.Context) error { stopped.Store(true); return nil },
	}, io.Discard)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "256.0.0.1"), err.Error())
	require.True(t, stopped.Load())
}
