// Command refhub runs the goroutine-per-connection reference hub that
// `make bench-e2e` compares wshub against. Flags mirror wshub's.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/wshub/wshub/bench/refhub"
)

func main() {
	addr := flag.String("addr", ":8080", "WebSocket listener (path /ws)")
	admin := flag.String("admin-addr", "127.0.0.1:9090", "admin listener (POST /api/publish, /healthz); empty disables")
	flag.Parse()
	raiseNoFile()
	h := refhub.New()
	go h.Run()
	if *admin != "" {
		go func() { log.Fatal(http.ListenAndServe(*admin, h.AdminHandler())) }()
	}
	go func() { log.Fatal(http.ListenAndServe(*addr, h.Handler())) }()
	fmt.Fprintf(os.Stderr, "refhub: ws on %s, admin on %s\n", *addr, *admin)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}

// raiseNoFile lifts the open-file soft limit to the hard limit, as wshub does.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
