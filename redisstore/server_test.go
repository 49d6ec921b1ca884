package redisstore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// server is a private redis-server for tests that stop, restart or count
// the connections of Redis, which they must not do to the shared one. It
// keeps its data in an append-only file in a temporary directory, so a
// restart keeps what was written.
type server struct {
	t    testing.TB
	bin  string
	dir  string
	addr string

	cmd     *exec.Cmd
	drained chan struct{} // closed when the process's output is drained
}

// startServer starts a private redis-server on a free loopback port; it is
// stopped when t ends. It skips t when redis-server is not installed.
func startServer(t testing.TB) *server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server is not installed (apt-get install redis-server); it runs the private Redis of this test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s := &server{t: t, bin: bin, dir: t.TempDir(), addr: addr}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs redis-server and returns once it accepts connections (it
// says so on its log, which goes to the pipe).
func (s *server) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", s.dir, "--logfile", "")
	out, err := cmd.StdoutPipe()
	require.NoError(s.t, err)
	require.NoError(s.t, cmd.Start())
	s.cmd, s.drained = cmd, make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(s.drained)
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
	case <-s.drained:
		_ = cmd.Wait()
		s.cmd = nil
		s.t.Fatalf("redis-server on %s exited before it was ready", s.addr)
	case <-time.After(30 * time.Second):
		s.stop()
		s.t.Fatalf("redis-server on %s was not ready within 30s", s.addr)
	}
}

// stop shuts the server down (SIGTERM) and waits for it.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.drained
	_ = s.cmd.Wait()
	s.cmd = nil
}

// client returns a client of the server with opts' pool settings, closed
// when the test ends.
func (s *server) client(opts redis.Options) *redis.Client {
	opts.Addr = s.addr
	rdb := redis.NewClient(&opts)
	s.t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// connectedClients returns the server's connected_clients.
func connectedClients(ctx context.Context, t testing.TB, rdb redis.UniversalClient) int {
	t.Helper()
	info, err := rdb.Info(ctx, "clients").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no connected_clients in INFO clients: %q", info)
	return 0
}

// subscriptionConn returns the id of the connection named name that is in
// subscribed state (the store's subscription connection), or "" if there
// is none.
func subscriptionConn(ctx context.Context, t testing.TB, rdb redis.UniversalClient, name string) string {
	t.Helper()
	list, err := rdb.ClientList(ctx).Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(list, "\n") {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == name && fields["sub"] != "" && fields["sub"] != "0" {
			return fields["id"]
		}
	}
	return ""
}

func TestServerHelper(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	rdb := srv.client(redis.Options{})
	ctx := t.Context()
	require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
	srv.stop()
	require.Error(t, rdb.Get(ctx, "k").Err())
	srv.start()
	v, err := rdb.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v, "the append-only file survives a restart")
	require.Positive(t, connectedClients(ctx, t, rdb))
	require.Equal(t, "", subscriptionConn(ctx, t, rdb, fmt.Sprint("nobody-", time.Now().UnixNano())))
}
