package taskbridge_test

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// validateEvents checks each event, as it goes on the wire, against the
// protocol's event schema, and that it decodes into its typed payload.
func validateEvents(t *testing.T, events ...taskbridge.TaskEvent) {
	t.Helper()
	for _, ev := range events {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		protocoltest.ValidateEvent(t, raw)
		protocoltest.ValidateEvent(t, wire.AppendEvent(nil, string(ev.Type), ev.TaskID, ev.EventID, ev.CreatedAt, ev.Payload))
		_, err = taskbridge.DecodePayload(ev)
		require.NoError(t, err, "event %s %s", ev.EventID, ev.Type)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
