package main

import (
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/redis"
)

func parseWith(t *testing.T, args []string, env map[string]string) (*config, error) {
	t.Helper()
	return parseConfig(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
}

func TestRedisFlags(t *testing.T) {
	c, err := parseWith(t, nil, nil)
	if err != nil || c.redisEnabled() || c.Registry || redis.ValidateInstanceID(c.InstanceID) != nil {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = parseWith(t, []string{"--redis", "redis://127.0.0.1:7000"}, nil)
	if err != nil || !c.Registry || c.HeartbeatInterval != 2*time.Second || c.RegistryTTL != 10*time.Minute {
		t.Fatalf("--redis: registry on by default, got %+v %v", c, err)
	}
	c, err = parseWith(t, []string{"--registry=false"}, map[string]string{
		"WSHUB_REDIS_CLUSTER": "127.0.0.1:7000, 127.0.0.1:7001", "WSHUB_INSTANCE_ID": "gw-7", "WSHUB_HEARTBEAT_INTERVAL": "500ms",
	})
	if err != nil || c.Registry || c.InstanceID != "gw-7" || c.HeartbeatInterval != 500*time.Millisecond ||
		strings.Join(c.clusterAddrs(), " ") != "127.0.0.1:7000 127.0.0.1:7001" {
		t.Fatalf("env and an explicit --registry=false: %+v %v", c, err)
	}
	c, err = parseWith(t, []string{"--redis", "redis://h:1"}, map[string]string{"WSHUB_REGISTRY": "false"})
	if err != nil || c.Registry {
		t.Fatalf("WSHUB_REGISTRY=false: %+v %v", c, err)
	}

	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--redis", "redis://h:1", "--redis-cluster", "h:2"}, "exclusive"},
		{[]string{"--redis", "http://h:1"}, "--redis"},
		{[]string{"--redis-cluster", "h:2,nocolon"}, `"nocolon" is not host:port`},
		{[]string{"--registry"}, "--registry needs --redis"},
		{[]string{"--instance-id", "has space"}, "--instance-id"},
		{[]string{"--instance-id", "a/b"}, "--instance-id"},
		{[]string{"--redis", "redis://h:1", "--heartbeat-interval", "10ms"}, "--heartbeat-interval"},
		{[]string{"--redis", "redis://h:1", "--heartbeat-interval", "2s", "--registry-ttl", "5s"}, "--registry-ttl"},
		{[]string{"--redis-probe-timeout", "0s"}, "--redis-probe-timeout"},
	} {
		if _, err := parseWith(t, tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.says)
		}
	}
}

// A bad setting stops the binary with exit code 2 and says which.
func TestBadRedisFlagExits2(t *testing.T) {
	cmd := exec.Command(wshubBin, "--redis", "redis://127.0.0.1:1", "--redis-cluster", "127.0.0.1:2")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "exclusive") {
		t.Fatalf("exit %v, output %q", err, out)
	}
}

func TestEnvAndPublishLimitDefaults(t *testing.T) {
	c, err := parseWith(t, nil, map[string]string{"WSHUB_ADMIN_ADDR": ""})
	if err != nil || c.AdminAddr != "" {
		t.Fatalf("WSHUB_ADMIN_ADDR= must disable the admin listener: %q %v", c.AdminAddr, err)
	}
	c, err = parseWith(t, []string{"--max-message", "4096"}, nil)
	if err != nil || c.MaxPublish != 4096-publishEnvelope {
		t.Fatalf("default --max-publish under --max-message 4096: %d %v", c.MaxPublish, err)
	}
	c, err = parseWith(t, []string{"--max-publish", "100000"}, nil)
	if err != nil || c.MaxPublish != 100000 {
		t.Fatalf("explicit --max-publish (HTTP publishers may send more): %d %v", c.MaxPublish, err)
	}
}
