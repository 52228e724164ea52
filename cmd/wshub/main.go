// Command wshub is the WebSocket pub/sub gateway. See README.md and
// ../shared/PROTOCOL.md for what clients can do; `wshub -h` lists the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if err != nil {
		os.Exit(exitCode(err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(serve(ctx, cfg, newLogger(cfg, os.Stderr)))
}
