package main

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// The README's flag table is the flags wshub -h prints: the same names, and
// the same defaults wherever the default is a value (a zero default, which
// means "derived" or "off", is described in words there).
func TestREADMEFlagTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "\n## Flags\n")
	if start < 0 {
		t.Fatal("README has no ## Flags section")
	}
	section = section[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	documented := map[string]string{} // flag -> default cell
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`--") {
			continue
		}
		names := strings.Split(cells[1], ",")
		defaults := strings.Split(cells[2], ",")
		for i, n := range names {
			n = strings.Trim(strings.TrimSpace(n), "`")
			d := strings.TrimSpace(cells[2])
			if len(defaults) == len(names) {
				d = strings.TrimSpace(defaults[i])
			}
			documented[strings.TrimPrefix(n, "--")] = strings.Trim(d, "`")
		}
	}
	fs := newFlagSet(&config{}, io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		d, ok := documented[f.Name]
		switch {
		case !ok:
			t.Errorf("--%s is not in the README's flag table", f.Name)
		case f.DefValue == "" || f.DefValue == "0" || f.DefValue == "false":
			// a derived or "off" default, described in words
		case sameDuration(d, f.DefValue):
		case d != f.DefValue:
			t.Errorf("--%s: README says the default is %q, wshub -h says %q", f.Name, d, f.DefValue)
		}
		delete(documented, f.Name)
	})
	for name := range documented {
		t.Errorf("the README documents --%s, which wshub does not have", name)
	}
}

// sameDuration reports whether a and b are one duration written two ways
// (the README's 10m is -h's 10m0s).
func sameDuration(a, b string) bool {
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}
