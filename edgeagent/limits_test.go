package edgeagent

import (
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/protocol"
)

// limits.timeout and limits.memory are caps: an invocation whose spec asks for more is
// refused (rejected, so the engine may try another agent), not run with what it asked.
// A spec that asks nothing gets the function defaults (10s, 64Mi), lowered to the caps.
func TestLimitsAreCaps(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	cfg.Limits.Timeout = 30 * time.Second
	cfg.Limits.Memory = 48 << 20
	startAgent(t, cfg, cl)

	greedy := shInvocation("greedy-memory", `echo 1`)
	greedy.Spec.Memory = 10 << 30 // 10 GiB on a Pi
	slow := shInvocation("greedy-timeout", `echo 1`)
	slow.Spec.Timeout = protocol.Duration(10 * time.Minute)
	for _, tc := range []struct {
		inv  protocol.Invocation
		want string
	}{
		{greedy, "memory 10Gi exceeds this agent's limits.memory of 48Mi"},
		{slow, "timeout 10m0s exceeds this agent's limits.timeout of 30s"},
	} {
		res := cl.invoke(cfg.ID, tc.inv)
		if res.Status != protocol.StatusRejected || !strings.Contains(res.Error, tc.want) {
			t.Errorf("%s: %s %q, want rejected with %q", tc.inv.ID, res.Status, res.Error, tc.want)
		}
	}

	// Asking for nothing: 64Mi is above the cap, so the cap.
	plain := shInvocation("plain-limits", `cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max`)
	plain.Spec.Timeout, plain.Spec.Memory = 0, 0
	if res := cl.invoke(cfg.ID, plain); res.Status != protocol.StatusOK || string(res.Output) != "50331648" {
		t.Errorf("default memory: %s %s %q, want the 48Mi cap (50331648)", res.Status, res.Output, res.Error)
	}
	within := shInvocation("within-limits", `echo 1`)
	within.Spec.Memory = 32 << 20
	if res := cl.invoke(cfg.ID, within); res.Status != protocol.StatusOK {
		t.Errorf("within the caps: %+v", res)
	}
}

// An agent's own function asking more than the caps is a config error.
func TestLimitsCapLocalFunctions(t *testing.T) {
	_, err := ParseConfig([]byte(`
limits: {timeout: 5s, memory: 32Mi}
functions:
  big: {runtime: sh, code: "true", memory: 1Gi, timeout: 1m}
`))
	for _, want := range []string{"functions.big: memory 1Gi exceeds limits.memory of 32Mi", "functions.big: timeout 1m0s exceeds limits.timeout of 5s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v, want %q", err, want)
		}
	}
}
