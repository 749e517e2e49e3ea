package dashboard_test

import (
	"log"
	"net/http"

	"github.com/ferrybus/ferry/dashboard"
	"github.com/ferrybus/ferry/queue"
)

// Mount the dashboard under /ferry/ of a program's own server.
func ExampleNew() {
	conns := queue.NewConnections(map[string]string{"default": "sqlite://./ferry.db"}, queue.Options{})
	defer conns.Close()
	h, err := dashboard.New(conns, dashboard.Config{
		Prefix:      "/ferry",
		Queues:      map[string][]string{"sql://default/orders": {"orders.inbox"}},
		ErrorQueues: []string{"sql://default/error"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle("/ferry/", h)
	_ = http.ListenAndServe("127.0.0.1:8089", mux) // loopback: no token configured
}
