// Command wshub is the WebSocket pub/sub gateway. See README.md and
// ../shared/PROTOCOL.md for what clients can do; `wshub -h` lists the flags.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// subcommands are the tools the binary carries besides the gateway, by the
// first argument (`wshub config check FILE`); each returns the exit code.
var subcommands = map[string]func(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int{
	"config": configCommand,
	"token":  tokenCommand,
}

func main() {
	if len(os.Args) > 1 {
		if cmd, ok := subcommands[os.Args[1]]; ok {
			os.Exit(cmd(os.Args[2:], os.LookupEnv, os.Stdout, os.Stderr))
		}
	}
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if err != nil {
		os.Exit(exitCode(err, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(serve(ctx, cfg, newLogger(cfg, os.Stderr)))
}
