package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// follower reads a task's log the way a stream does: Watch, then Read
// after its cursor, then wait for a wake-up; it never polls. It sends what
// it read on got and closes waiting each time it starts to wait.
func follower(ctx context.Context, s *pgstore.Store, taskID string, got chan<- taskbridge.TaskEvent, waiting chan<- struct{}) error {
	wake := make(chan struct{}, 1)
	stop := s.Watch(taskID, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer stop()
	after := int64(0)
	for {
		evs, err := s.Read(ctx, taskID, after, 100)
		if err != nil {
			// A read may fail while the server restarts or the pool
			// replaces dead connections; like the fan-out, try again.
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-ctx.Done():
				return fmt.Errorf("%w (last read: %v)", ctx.Err(), err)
			}
		}
		for _, ev := range evs {
			got <- ev
			after = ev.Seq
			if ev.Terminal() {
				return nil
			}
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case waiting <- struct{}{}:
		default:
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// follow starts a follower and returns its events and a channel that gets
// a value whenever it waits.
func follow(t *testing.T, s *pgstore.Store, taskID string) (<-chan taskbridge.TaskEvent, <-chan struct{}, <-chan error) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	got := make(chan taskbridge.TaskEvent, 1000)
	waiting := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- follower(ctx, s, taskID, got, waiting) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return got, waiting, done
}

// receive requires the next events to have Seqs from..to.
func receive(t *testing.T, got <-chan taskbridge.TaskEvent, from, to int64) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for want := from; want <= to; want++ {
		select {
		case ev := <-got:
			require.Equal(t, want, ev.Seq, "events arrive in order, none lost or repeated")
		case <-timeout:
			t.Fatalf("event %d did not arrive within %v", want, waitTimeout)
		}
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not happen within %v", what, waitTimeout)
	}
}

// TestListenerTerminated kills the store's LISTEN connection while a
// follower waits, appends while the listener is down, and requires that the
// follower gets every event once the listener is back.
func TestListenerTerminated(t *testing.T) {
	d := newDB(t)
	s := d.store(t, d.Pool, pgstore.Config{ReconnectDelay: 300 * time.Millisecond})
	ctx := t.Context()
	create(t, s, "task-1")
	appendP(t, s, "task-1", taskbridge.StartedPayload{})
	got, waiting, _ := follow(t, s, "task-1")
	receive(t, got, 1, 1)
	waitFor(t, waiting, "the follower waiting")

	for round := range 3 {
		// pg_terminate_backend does not wait for the backend to end: the
		// previous round's listener may have delivered that round's
		// events on its way out, before its successor connected. Kill
		// the listener once it is there.
		require.Eventually(t, func() bool {
			var killed int
			require.NoError(t, d.Pool.QueryRow(ctx,
				"SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) k",
				"listener-"+d.Schema).Scan(&killed))
			return killed >= 1 // a dying predecessor may still be listed
		}, waitTimeout, 20*time.Millisecond, "round %d: the store's listener connection is found by its application_name", round)
		// These appends commit while the listener is down (it waits
		// ReconnectDelay before reconnecting): their notifications are lost.
		first := int64(2 + 5*round)
		for i := range 5 {
			appendP(t, s, "task-1", taskbridge.MessagePayload{Message: fmt.Sprint(first + int64(i))})
		}
		receive(t, got, first, first+4)
	}
	// The last round's events may have come through the dying listener
	// (see above), before its successor connected: until then the store
	// reports the listener down, and then ready again.
	require.Eventually(t, func() bool { return s.CheckReady(ctx) == nil }, waitTimeout, 20*time.Millisecond,
		"the store is ready once the listener is back")
}

// cluster is a private PostgreSQL server started by a test, so that it can
// be restarted without disturbing the shared one.
type cluster struct {
	bin, dir string
	port     int
	cred     *syscall.Credential
}

// startCluster initialises and starts a private cluster on a free port,
// stopped and removed when the test ends. As root, the server runs as the
// postgres user (initdb refuses root). Without PostgreSQL binaries the test
// is skipped (or fails when services are required).
func startCluster(t *testing.T) *cluster {
	t.Helper()
	pgtest.URL(t) // the same skip-or-require rule as the other tests
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		pgtest.Unavailable(t, "no initdb under /usr/lib/postgresql/*/bin")
	}
	c := &cluster{bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "tbpg")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	c.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			pgtest.Unavailable(t, "running as root without a postgres user to run a private server")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		require.NoError(t, os.Chown(dir, uid, gid))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.port = l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	c.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	c.pgctl(t, "start")
	t.Cleanup(func() { c.pgctl(t, "stop", "-m", "immediate") })
	return c
}

func (c *cluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func (c *cluster) pgctl(t *testing.T, action string, args ...string) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir)
	c.run(t, "pg_ctl", append([]string{action, "-D", filepath.Join(c.dir, "data"), "-w", "-t", "60",
		"-l", filepath.Join(c.dir, "log"), "-o", opts}, args...)...)
}

func (c *cluster) run(t *testing.T, prog string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", prog, args, err, out, log)
	}
}

// TestPostgresRestart restarts the server under a store with a waiting
// follower: the pool and the listener reconnect, and the follower gets
// every event appended after the restart.
func TestPostgresRestart(t *testing.T) {
	c := startCluster(t)
	pool := pgtest.Pool(t, c.url(), 4)
	s, err := pgstore.New(pool, pgstore.Config{ListenerName: "restart-listener"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.Migrate(t.Context())
	require.NoError(t, err)
	create(t, s, "task-1")
	appendP(t, s, "task-1", taskbridge.StartedPayload{})
	got, waiting, _ := follow(t, s, "task-1")
	receive(t, got, 1, 1)
	waitFor(t, waiting, "the follower waiting")

	c.pgctl(t, "restart", "-m", "fast")

	// Connections of the pool died with the server: an operation may fail
	// once while the pool replaces them; the caller retries.
	var appendErr error
	for range 20 {
		_, appendErr = s.Append(t.Context(), storetest.NewEvent("task-1", taskbridge.MessagePayload{Message: "after"}, base))
		if appendErr == nil {
			break
		}
		require.False(t, errors.Is(appendErr, taskbridge.ErrTaskTerminal))
	}
	require.NoError(t, appendErr, "the store works again after the restart")
	appendP(t, s, "task-1", taskbridge.CompletedPayload{Result: "done"})
	receive(t, got, 2, 3)
	require.NoError(t, s.CheckReady(t.Context()))
}
