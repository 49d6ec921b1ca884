package riverexec_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
	"github.com/taskbridge-go/taskbridge/pgstore/pgtest"
	"github.com/taskbridge-go/taskbridge/riverexec"
)

const waitTimeout = 20 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// db is a private schema with taskbridge's and River's tables.
type db struct{ *pgtest.DB }

func newDB(t testing.TB) *db {
	t.Helper()
	d := pgtest.NewDB(t, "tbriver", 10)
	require.NoError(t, riverexec.Migrate(t.Context(), d.Pool, d.Schema))
	return &db{d}
}

// immediately retries failed jobs at once.
type immediately struct{}

func (immediately) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

// node is one process: a store, an executor and a service.
type node struct {
	store *pgstore.Store
	exec  *riverexec.Executor
	svc   *taskbridge.Service
}

// newNode starts a process on d. cfg.Store and River's schema are filled
// in; Workers defaults to 4 (-1 means none).
func (d *db) newNode(t testing.TB, cfg riverexec.Config, svcOpts ...func(*taskbridge.Config)) *node {
	t.Helper()
	pool := pgtest.Pool(t, d.URL, 10)
	store, err := pgstore.New(pool, pgstore.Config{Schema: d.Schema, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	_, err = store.Migrate(t.Context())
	require.NoError(t, err)
	cfg.Store = store
	switch {
	case cfg.Workers == 0:
		cfg.Workers = 4
	case cfg.Workers < 0:
		cfg.Workers = 0
	}
	cfg.River.Schema = d.Schema
	if cfg.River.Logger == nil {
		cfg.River.Logger = quiet
	}
	if cfg.River.RetryPolicy == nil {
		cfg.River.RetryPolicy = immediately{}
	}
	cfg.River.FetchPollInterval = 50 * time.Millisecond
	cfg.River.FetchCooldown = 10 * time.Millisecond
	cfg.River.TestOnly = true
	cfg.Logger = quiet
	exec, err := riverexec.New(pool, cfg)
	require.NoError(t, err)
	svcCfg := taskbridge.Config{Store: exec.Store(), Executor: exec, Logger: quiet}
	for _, o := range svcOpts {
		o(&svcCfg)
	}
	svc, err := taskbridge.New(svcCfg)
	require.NoError(t, err)
	require.NoError(t, exec.Start(t.Context(), svc))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, exec.Stop(ctx))
		require.NoError(t, svc.Shutdown(ctx))
	})
	return &node{store: store, exec: exec, svc: svc}
}

var alice = taskbridge.AuthContext{Subject: "alice"}

func (n *node) create(t *testing.T, taskType, requestID string) string {
	t.Helper()
	resp, err := n.svc.CreateTask(t.Context(), alice, taskbridge.CreateTaskRequest{ClientRequestID: requestID, TaskType: taskType})
	require.NoError(t, err)
	return resp.TaskID
}

// waitFor reads the task's log until done says it has what it waits for,
// waking on appends (never polling), and returns the log.
func (n *node) waitFor(t *testing.T, taskID string, done func([]taskbridge.TaskEvent) bool) []taskbridge.TaskEvent {
	t.Helper()
	wake := make(chan struct{}, 1)
	stop := n.store.Watch(taskID, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer stop()
	timeout := time.After(waitTimeout)
	var evs []taskbridge.TaskEvent
	for {
		more, err := n.store.Read(t.Context(), taskID, int64(len(evs)), 500)
		require.NoError(t, err)
		evs = append(evs, more...)
		if done(evs) {
			return evs
		}
		select {
		case <-wake:
		case <-timeout:
			t.Fatalf("task %s: still waiting after %v; events so far: %v", taskID, waitTimeout, types(evs))
		}
	}
}

func (n *node) waitTerminal(t *testing.T, taskID string) []taskbridge.TaskEvent {
	t.Helper()
	return n.waitFor(t, taskID, func(evs []taskbridge.TaskEvent) bool {
		return len(evs) > 0 && evs[len(evs)-1].Terminal()
	})
}

func (n *node) waitType(t *testing.T, taskID string, et taskbridge.EventType) []taskbridge.TaskEvent {
	t.Helper()
	return n.waitFor(t, taskID, func(evs []taskbridge.TaskEvent) bool {
		for _, ev := range evs {
			if ev.Type == et {
				return true
			}
		}
		return false
	})
}

func types(evs []taskbridge.TaskEvent) []taskbridge.EventType {
	out := make([]taskbridge.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func payload(t *testing.T, ev taskbridge.TaskEvent) taskbridge.Payload {
	t.Helper()
	p, err := taskbridge.DecodePayload(ev)
	require.NoError(t, err)
	return p
}

// jobs lists the task jobs in the given states.
func (n *node) jobs(t testing.TB, states ...rivertype.JobState) []*rivertype.JobRow {
	t.Helper()
	res, err := n.exec.Client().JobList(t.Context(), river.NewJobListParams().Kinds(riverexec.JobKind).States(states...).First(100))
	require.NoError(t, err)
	return res.Jobs
}
