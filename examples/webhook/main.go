// Command webhook is a small HTTP target for ferry's http handler: it
// prints each message it receives and answers 200. With -fail N it answers
// 500 to every Nth request (to watch retries), with -reject N it answers 400
// to every Nth (a permanent failure: straight to the error queue).
//
//	go run ./examples/webhook -addr 127.0.0.1:8080
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	fail := flag.Int64("fail", 0, "answer 500 to every Nth request (0: never)")
	reject := flag.Int64("reject", 0, "answer 400 to every Nth request (0: never)")
	quiet := flag.Bool("quiet", false, "do not print each message")
	flag.Parse()

	var n atomic.Int64
	http.HandleFunc("POST /handle", func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		body, _ := io.ReadAll(r.Body)
		if !*quiet {
			fmt.Printf("%s %s attempt=%s from=%s body=%s\n", r.Header.Get("Ferry-Message-Type"), r.Header.Get("Ferry-Message-Id"),
				r.Header.Get("Ferry-Attempt"), r.Header.Get("Ferry-Endpoint"), body)
		}
		switch {
		case *reject > 0 && i%*reject == 0:
			http.Error(w, "rejected by the webhook example", http.StatusBadRequest)
		case *fail > 0 && i%*fail == 0:
			http.Error(w, "failed by the webhook example", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	log.Printf("webhook listening on http://%s/handle", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
