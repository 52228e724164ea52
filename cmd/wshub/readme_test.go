package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// readmeSection is the README's section under heading, up to the next of
// its level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	level := heading[:strings.IndexByte(heading, ' ')+1]
	section := string(readme)
	start := strings.Index(section, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("README has no %s section", heading)
	}
	section = section[start+1+len(heading):]
	if end := strings.Index(section, "\n"+level); end >= 0 {
		section = section[:end]
	}
	return section
}

// The README's reference table is the settings table: every flag wshub -h
// prints with its variable and config key, every file-only key, and the
// same defaults wherever the default is a value (a zero default, which means
// "derived" or "off", is described in words there).
func TestREADMEFlagTable(t *testing.T) {
	type row struct{ flag, env, def string }
	documented := map[string]row{} // by config key ("" for --config)
	for _, line := range strings.Split(readmeSection(t, "## Configuration"), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 6 || !strings.Contains(cells[3]+cells[1], "`") {
			continue
		}
		cell := func(i int) string { return strings.Trim(strings.TrimSpace(cells[i]), "`") }
		key := cell(3)
		if _, dup := documented[key]; dup {
			t.Errorf("the README documents %q twice", key)
		}
		documented[key] = row{strings.TrimPrefix(cell(1), "--"), cell(2), cell(4)}
	}
	checkDefault := func(what, readme, def string) {
		switch {
		case def == "" || def == "0" || def == "false":
			// a derived or "off" default, described in words
		case sameDuration(readme, def):
		case readme != def:
			t.Errorf("%s: README says the default is %q, wshub says %q", what, readme, def)
		}
	}
	c := &config{}
	tab := c.settings()
	fs := flagSet(c, tab, io.Discard)
	for _, s := range append([]setting{{key: "", flag: "config"}}, tab...) {
		r, ok := documented[s.key]
		delete(documented, s.key)
		switch {
		case !ok:
			t.Errorf("%q (--%s) is not in the README's table", s.key, s.flag)
		case r.flag != s.flag:
			t.Errorf("%q: README says its flag is %q, wshub has %q", s.key, r.flag, s.flag)
		case s.flag != "" && r.env != envName(s.flag):
			t.Errorf("--%s: README says its variable is %q, want %q", s.flag, r.env, envName(s.flag))
		case s.flag == "" && r.env != "":
			t.Errorf("%q is file-only, README gives it a variable %q", s.key, r.env)
		case s.flag != "":
			checkDefault("--"+s.flag, r.def, fs.Lookup(s.flag).DefValue)
		default:
			if v, ok := s.v.(value); ok {
				checkDefault(s.key, r.def, v.String())
			}
		}
	}
	for key, r := range documented {
		t.Errorf("the README documents %q (%q), which wshub does not have", key, r.flag)
	}
}

// The README's example configuration file is one wshub accepts.
func TestREADMEConfigExample(t *testing.T) {
	section := readmeSection(t, "### Configuration file")
	start := strings.Index(section, "```yaml\n")
	end := strings.Index(section, "\n```\n")
	if start < 0 || end < start {
		t.Fatal("no ```yaml example in the README's Configuration file section")
	}
	c, err := parseWith(t, []string{"--config", writeConfig(t, section[start+8:end+1])}, nil)
	if err != nil {
		t.Fatalf("the README's example: %v", err)
	}
	if len(c.Namespaces) == 0 || !c.authEnabled() || len(c.AdminAPIKeys) == 0 || c.CommandsPerSec == 0 {
		t.Errorf("the README's example shows namespaces, auth, admin keys and limits: %+v", c)
	}
}

// sameDuration reports whether a and b are one duration written two ways
// (the README's 10m is -h's 10m0s).
func sameDuration(a, b string) bool {
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}
