package main

import (
	"fmt"
	"io"
)

const configUsage = `Usage: wshub config check FILE    validate FILE as wshub --config FILE would (WSHUB_ variables included); exit 0 or 2
       wshub config print [flags]   print the configuration that flags, WSHUB_ variables and --config FILE make, as a file --config reads`

// configCommand is `wshub config check` and `wshub config print`.
func configCommand(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, configUsage)
		return 2
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			fmt.Fprintln(stderr, configUsage)
			return 2
		}
		if _, err := parseConfig([]string{"--config", args[1]}, lookupEnv, stderr); err != nil {
			return exitCode(err, stderr)
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return 0
	case "print":
		c, tab, err := loadConfig(args[1:], lookupEnv, stderr)
		if err == nil {
			// Validated as the gateway would, on a copy: the print keeps
			// the defaults that derive works out.
			v := *c
			v.derive()
			err = v.validate()
		}
		if err != nil {
			return exitCode(err, stderr)
		}
		if err := printConfig(stdout, tab); err != nil {
			fmt.Fprintln(stderr, "wshub:", err)
			return 1
		}
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, configUsage)
		return 0
	}
	fmt.Fprintf(stderr, "wshub config: unknown command %q\n%s\n", args[0], configUsage)
	return 2
}
