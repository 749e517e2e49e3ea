package bus_test

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/ferrybus/ferry/bus"
	"github.com/ferrybus/ferry/internal/testdb"
	"github.com/ferrybus/ferry/queue"
)

// BenchmarkIdleEndpoint measures the CPU an idle endpoint with 16 threads
// uses: each iteration is one idle second. Run it with
//
//	go test ./bus -run '^$' -bench IdleEndpoint -benchtime 10x
//
// and read the cpu-ms/idle-s metric (process CPU, user plus system).
func BenchmarkIdleEndpoint(b *testing.B) {
	for _, d := range testdb.Dialects() {
		b.Run(d, func(b *testing.B) {
			ctx := context.Background()
			conns := queue.NewConnections(map[string]string{"default": testdb.DSN(b, d)}, queue.Options{AutoMigrate: true})
			defer conns.Close()
			mux := bus.NewMux()
			mux.HandleFunc("*", func(context.Context, *bus.Message) error { return nil })
			ep, err := bus.New(ctx, conns, bus.Config{Name: "idle", Logger: slog.New(slog.DiscardHandler), Inbox: &bus.InboxConfig{
				WorkQueue: "sql://default/idle", ErrorQueue: "sql://default/error", Threads: 16}}, mux)
			if err != nil {
				b.Fatal(err)
			}
			if err := ep.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer ep.Stop(ctx)
			time.Sleep(3 * time.Second) // let the poll interval back off to its ceiling
			before := cpuTime()
			b.ResetTimer()
			for range b.N {
				time.Sleep(time.Second)
			}
			b.StopTimer()
			used := cpuTime() - before
			b.ReportMetric(float64(used.Microseconds())/1000/float64(b.N), "cpu-ms/idle-s")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
