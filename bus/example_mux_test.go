package bus_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/queue"
)

// InvoiceIssued and InvoicePaid are the messages of the mux examples.
type InvoiceIssued struct {
	Number string  `json:"number"`
	Amount float64 `json:"amount"`
}

// InvoicePaid says an invoice was paid.
type InvoicePaid struct {
	Number string `json:"number"`
}

// muxExampleConns opens a fresh SQLite database in a temporary folder; the
// returned function closes and removes it.
func muxExampleConns() (*queue.Connections, func()) {
	dir, err := os.MkdirTemp("", "ferry-mux-example-")
	if err != nil {
		log.Fatalf("temp dir: %v", err)
	}
	conns := queue.NewConnections(map[string]string{"default": "sqlite://" + filepath.Join(dir, "ferry.db")},
		queue.Options{AutoMigrate: true})
	return conns, func() { conns.Close(); os.RemoveAll(dir) }
}

// A Mux routes each message type to its handler: typed handlers get the
// decoded body, and a pattern catches the types no exact name matches.
// Handle also names the Go type for sending, so Send needs no type name.
func ExampleMux() {
	conns, cleanup := muxExampleConns()
	defer cleanup()
	ctx := context.Background()

	handled := make(chan string)
	mux := bus.NewMux()
	bus.Handle(mux, "invoices.issued", func(ctx context.Context, m *bus.Message, inv InvoiceIssued) error {
		handled <- fmt.Sprintf("issued %s for %.2f", inv.Number, inv.Amount)
		return nil
	})
	bus.Handle(mux, "invoices.paid", func(ctx context.Context, m *bus.Message, p InvoicePaid) error {
		handled <- "paid " + p.Number
		return nil
	})
	mux.HandleFunc("invoices.*", func(ctx context.Context, m *bus.Message) error {
		handled <- "no handler of its own: " + m.Type
		return nil
	})
	bus.RegisterType[Greeting](mux, "invoices.greeting") // sent, handled by the pattern

	ep, err := bus.New(ctx, conns, bus.Config{
		Name:   "invoices",
		Logger: slog.New(slog.DiscardHandler),
		Inbox:  &bus.InboxConfig{WorkQueue: "sql://default/invoices", ErrorQueue: "sql://default/error", Threads: 1},
		Routes: []bus.Route{{Types: []string{"invoices.*"}, Queue: "sql://default/invoices"}},
	}, mux)
	if err != nil {
		log.Fatalf("endpoint: %v", err)
	}
	if err := ep.Start(ctx); err != nil {
		log.Fatalf("start: %v", err)
	}
	// One at a time, so the output has one order.
	for _, msg := range []any{InvoiceIssued{Number: "A-1", Amount: 120}, InvoicePaid{Number: "A-1"}, Greeting{Name: "accounts"}} {
		if err := ep.Send(ctx, msg); err != nil {
			log.Fatalf("send: %v", err)
		}
		select {
		case line := <-handled:
			fmt.Println(line)
		case <-time.After(30 * time.Second):
			log.Fatalf("timed out waiting for %T", msg)
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ep.Stop(stopCtx); err != nil {
		log.Fatalf("stop: %v", err)
	}
	// Output:
	// issued A-1 for 120.00
	// paid A-1
	// no handler of its own: invoices.greeting
}

// HandleTx runs the handler inside a transaction on the inbox's database
// that also acks the message: the row below is written exactly once, with
// the message's removal, or not at all.
func ExampleHandleTx() {
	conns, cleanup := muxExampleConns()
	defer cleanup()
	ctx := context.Background()

	store, err := conns.Store(ctx, "default")
	if err != nil {
		log.Fatalf("store: %v", err)
	}
	if _, err := store.DB().ExecContext(ctx, `CREATE TABLE ledger (number TEXT PRIMARY KEY, amount REAL)`); err != nil {
		log.Fatalf("create table: %v", err)
	}

	booked := make(chan struct{})
	mux := bus.NewMux()
	bus.HandleTx(mux, "invoices.issued", func(ctx context.Context, m *bus.Message, tx *sql.Tx, inv InvoiceIssued) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger (number, amount) VALUES (?, ?)`, inv.Number, inv.Amount); err != nil {
			return fmt.Errorf("book %s: %w", inv.Number, err)
		}
		close(booked)
		return nil
	})
	ep, err := bus.New(ctx, conns, bus.Config{
		Name:   "ledger",
		Logger: slog.New(slog.DiscardHandler),
		Inbox:  &bus.InboxConfig{WorkQueue: "sql://default/ledger", ErrorQueue: "sql://default/error", Threads: 1},
	}, mux)
	if err != nil {
		log.Fatalf("endpoint: %v", err)
	}
	if err := ep.Start(ctx); err != nil {
		log.Fatalf("start: %v", err)
	}
	if err := ep.Send(ctx, InvoiceIssued{Number: "A-2", Amount: 80}, bus.To("sql://default/ledger")); err != nil {
		log.Fatalf("send: %v", err)
	}
	select {
	case <-booked:
	case <-time.After(30 * time.Second):
		log.Fatal("timed out waiting for the booking")
	}
	// Stop waits for the handler's transaction to commit with the ack.
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ep.Stop(stopCtx); err != nil {
		log.Fatalf("stop: %v", err)
	}

	var amount float64
	if err := store.DB().QueryRowContext(ctx, `SELECT amount FROM ledger WHERE number = ?`, "A-2").Scan(&amount); err != nil {
		log.Fatalf("read ledger: %v", err)
	}
	q, err := conns.Queue(ctx, "sql://default/ledger")
	if err != nil {
		log.Fatalf("queue: %v", err)
	}
	c, err := q.Count(ctx)
	if err != nil {
		log.Fatalf("count: %v", err)
	}
	fmt.Printf("booked A-2: %.2f; messages left: %d\n", amount, c.Total())
	// Output: booked A-2: 80.00; messages left: 0
}
