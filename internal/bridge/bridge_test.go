package bridge_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/bridge"
	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

type service struct{ name string }
type auth struct{ subject string }

func TestFor(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	at := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	bridge.Install(bridge.Hooks[service, auth]{
		Logger: func(*service) *slog.Logger { return logger },
		Now:    func(*service) time.Time { return at },
		Subscribe: func(_ context.Context, svc *service, a auth, taskID, _ string, _ fanout.SubscribeOpts) (*fanout.Subscription, error) {
			require.Equal(t, "svc", svc.name)
			require.Equal(t, "alice", a.subject)
			require.Equal(t, "t1", taskID)
			return nil, nil
		},
	})
	h := bridge.For[service, auth]()
	svc := &service{name: "svc"}
	require.Same(t, logger, h.Logger(svc))
	require.Equal(t, at, h.Now(svc))
	_, err := h.Subscribe(context.Background(), svc, auth{"alice"}, "t1", "", fanout.SubscribeOpts{})
	require.NoError(t, err)

	require.Panics(t, func() { bridge.For[service, string]() }, "other types than those installed")
}
