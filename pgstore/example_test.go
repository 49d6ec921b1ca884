package pgstore_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/pgstore"
)

// A store over the application's pool: create the tables, then write an
// order of the application and its task's event in one transaction.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool, pgstore.Config{Schema: "taskbridge"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "UPDATE orders SET state = 'shipped' WHERE id = $1", 42); err != nil {
		log.Fatal(err)
	}
	payload, err := taskbridge.EncodePayload(taskbridge.MessagePayload{Message: "Your order has shipped"})
	if err != nil {
		log.Fatal(err)
	}
	ev := taskbridge.TaskEvent{Type: taskbridge.EventTaskMessage, TaskID: "task-42", CreatedAt: time.Now(), Payload: payload}
	if _, err := store.AppendTx(ctx, tx, ev); err != nil {
		log.Fatal(err)
	}
	// Subscribers of task-42, in every process, are woken by the commit.
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
}
