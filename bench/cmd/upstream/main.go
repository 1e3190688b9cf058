// Command upstream is the protected API of the HTTP benchmark: it answers
// every request with 200 "ok", as cheaply as net/http allows, so that what is
// measured in front of it is the proxy.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	flag.Parse()
	body := []byte("ok")
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
		hdr["Content-Length"] = []string{"2"}
		w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
