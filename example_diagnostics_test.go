package taskbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
)

// Diagnostics hooks see every stream's start, deliveries and end, whatever
// the transport (here a Go subscription; SSE, WebSocket and long polls
// call the same hooks).
func ExampleDiagnostics() {
	store := memstore.New(memstore.Config{})
	defer store.Close()
	svc, _ := taskbridge.New(taskbridge.Config{
		Store: store, Executor: greeter{}, Logger: slog.New(slog.DiscardHandler),
		Diagnostics: taskbridge.Diagnostics{
			ReplayStart: func(_ context.Context, i taskbridge.ReplayInfo) {
				fmt.Printf("start %s cursor=%q\n", i.Transport, i.Cursor)
			},
			Delivery: func(i taskbridge.DeliveryInfo) {
				fmt.Printf("delivered %s replayed=%v\n", i.EventID, i.Replayed)
			},
			Disconnect: func(i taskbridge.DisconnectInfo) {
				fmt.Printf("end %s: %s, %d delivered\n", i.Transport, i.Reason, i.Delivered)
			},
		},
	})
	defer svc.Shutdown(context.Background())
	ctx := context.Background()
	alice := taskbridge.AuthContext{Subject: "alice"}
	task, _ := svc.CreateTask(ctx, alice, taskbridge.CreateTaskRequest{
		ClientRequestID: "r1", TaskType: "greet", Input: json.RawMessage(`{"name":"Ada"}`),
	})

	sub, _ := svc.Subscribe(ctx, alice, task.TaskID, "1")
	for {
		if _, err := sub.Next(ctx); err == io.EOF {
			break
		}
	}
	sub.Close()
	// Output:
	// start go cursor="1"
	// delivered 2 replayed=true
	// delivered 3 replayed=true
	// end go: terminal, 2 delivered
}
