package taskbridge_test

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
)

// validateEvents checks events against the protocol's event schema.
func validateEvents(t *testing.T, events ...taskbridge.TaskEvent) {
	t.Helper()
	for _, ev := range events {
		_, err := taskbridge.DecodePayload(ev)
		require.NoError(t, err, "event %s %s", ev.EventID, ev.Type)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
