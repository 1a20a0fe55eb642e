package podman

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/edgeagent/internal/testenv"
	"github.com/deviceless/deviceless/protocol"
)

const shImage = "localhost/deviceless/sh"

func newRuntime(t testing.TB) *Runtime {
	t.Helper()
	rt, err := New(Config{
		Socket:     testenv.PodmanSocket(t),
		OCIRuntime: "runc",
		Agent:      "test-" + randomHex(3),
		User:       "65534:65534",
		CodeDir:    t.TempDir(),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return rt
}

func shJob(code string) container.Job {
	return container.Job{
		ID: "inv-" + randomHex(4), Function: "t", Image: shImage,
		Command: []string{"/bin/sh", container.CodePath}, Code: code,
		Stdin: []byte(`{"id":"x","args":{"n":1}}` + "\n"), Timeout: 20 * time.Second,
	}
}

func run(t testing.TB, rt *Runtime, job container.Job) container.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := rt.Run(ctx, job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return out
}

func TestRunEchoesStdinAndEnv(t *testing.T) {
	rt := newRuntime(t)
	out := run(t, rt, shJob(`read -r ev; printf '{"ev":%s,"fn":"%s","id":"%s"}' "$ev" "$DEVICELESS_FUNCTION" "$DEVICELESS_INVOCATION_ID"; echo oops >&2`))
	if out.ExitCode != 0 || out.TimedOut || out.OOMKilled || !out.Cold {
		t.Fatalf("outcome %+v", out)
	}
	if !strings.Contains(string(out.Stdout), `"ev":{"id":"x","args":{"n":1}}`) || !strings.Contains(string(out.Stdout), `"fn":"t"`) || !strings.Contains(string(out.Stdout), `"id":"inv-`) {
		t.Fatalf("stdout %q", out.Stdout)
	}
	if strings.TrimSpace(out.Stderr) != "oops" {
		t.Fatalf("stderr %q", out.Stderr)
	}
}

func TestStdinIsClosed(t *testing.T) {
	rt := newRuntime(t)
	out := run(t, rt, shJob(`wc -c`))
	if strings.TrimSpace(string(out.Stdout)) != "26" {
		t.Fatalf("stdout %q", out.Stdout)
	}
}

func TestExitCodeAndStderrTail(t *testing.T) {
	rt := newRuntime(t)
	out := run(t, rt, shJob(`i=0; while [ $i -lt 2000 ]; do echo "line $i" >&2; i=$((i+1)); done; exit 3`))
	if out.ExitCode != 3 {
		t.Fatalf("exit %d", out.ExitCode)
	}
	if len(out.Stderr) > 4096 || !strings.HasSuffix(out.Stderr, "line 1999\n") {
		t.Fatalf("stderr tail %d bytes, ends %q", len(out.Stderr), out.Stderr[len(out.Stderr)-20:])
	}
}

func TestDeadlineKills(t *testing.T) {
	rt := newRuntime(t)
	job := shJob(`sleep 600`)
	job.Timeout = 500 * time.Millisecond
	out := run(t, rt, job)
	if !out.TimedOut || out.OOMKilled {
		t.Fatalf("outcome %+v", out)
	}
}

func TestMemoryLimitOOM(t *testing.T) {
	rt := newRuntime(t)
	job := shJob(`x=a; while true; do x="$x$x"; done`)
	job.Memory = 16 << 20
	out := run(t, rt, job)
	if !out.OOMKilled || out.TimedOut {
		t.Fatalf("outcome %+v", out)
	}
}

func TestOutputCap(t *testing.T) {
	rt := newRuntime(t)
	out := run(t, rt, shJob(`head -c 8000000 /dev/zero | tr '\0' a`))
	if !out.Truncated || len(out.Stdout) != 1<<20 || out.ExitCode != 0 {
		t.Fatalf("truncated=%v len=%d exit=%d", out.Truncated, len(out.Stdout), out.ExitCode)
	}
}

func TestLockedDown(t *testing.T) {
	rt := newRuntime(t)
	out := run(t, rt, shJob(`
if touch /etc/x 2>/dev/null || touch /x 2>/dev/null; then echo rootfs-writable; fi
if touch /code/x 2>/dev/null; then echo code-writable; fi
if nc -w 1 127.0.0.1 1883 </dev/null 2>/dev/null; then echo net; fi
ip -o link 2>/dev/null | grep -v ' lo:' | grep -q . && echo links
grep -q '^CapEff:\s*0000000000000000' /proc/self/status || echo caps
grep -q '^NoNewPrivs:\s*1' /proc/self/status || echo nnp
[ "$(id -u)" = 65534 ] || echo root
echo ok > /tmp/scratch && cat /tmp/scratch`))
	if got := strings.TrimSpace(string(out.Stdout)); got != "ok" {
		t.Fatalf("container not locked down: %q (stderr %q)", got, out.Stderr)
	}
}

// The network probe from inside a function: the only interface is lo, there is no route,
// and neither the host's loopback nor any of its other addresses answers (a listener is
// opened on each of them for the probe). The probe checks its own tools first, so a
// missing nc cannot pass for isolation.
func TestNetworkIsolation(t *testing.T) {
	var targets []string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil || ipn.IP.IsLinkLocalUnicast() {
			continue // busybox nc speaks IPv4; link-local needs a zone
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ipn.IP.String(), "0"))
		if err != nil {
			t.Fatalf("listen on host address %s: %v", ipn.IP, err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("reached\n"))
				c.Close()
			}
		}()
		targets = append(targets, ln.Addr().String())
	}
	if len(targets) == 0 {
		t.Fatal("no host IPv4 address to probe")
	}
	var script strings.Builder
	script.WriteString(`command -v nc >/dev/null || { echo no-nc; exit 0; }
echo "ifaces:$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')"
echo "routes:$(tail -n +2 /proc/net/route | wc -l)"
`)
	for _, a := range targets {
		host, port, _ := net.SplitHostPort(a)
		fmt.Fprintf(&script, "if nc -w 1 %s %s </dev/null 2>/dev/null | grep -q reached; then echo reached-%s; fi\n", host, port, host)
	}
	rt := newRuntime(t)
	out := run(t, rt, shJob(script.String()))
	want := "ifaces:lo \nroutes:0"
	if got := strings.TrimSpace(string(out.Stdout)); got != want {
		t.Fatalf("network probe from inside (targets %v):\n%s\nwant:\n%s\n(stderr %q)", targets, got, want, out.Stderr)
	}
}

func TestMissingImage(t *testing.T) {
	rt := newRuntime(t)
	job := shJob(`true`)
	job.Image = "localhost/deviceless/does-not-exist"
	_, err := rt.Run(context.Background(), job)
	if !errors.Is(err, container.ErrImageNotFound) {
		t.Fatalf("err = %v, want ErrImageNotFound", err)
	}
}

func TestCrashLeavesNothingBehind(t *testing.T) {
	rt := newRuntime(t)
	out := run(t, rt, shJob(`sh -c 'kill -SEGV $$'`))
	if out.ExitCode != 139 {
		t.Fatalf("exit %d", out.ExitCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rt2, err := New(Config{Socket: rt.cfg.Socket, Agent: rt.cfg.Agent, CodeDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := rt2.Sweep(ctx)
	if err != nil || n != 0 {
		t.Fatalf("sweep after close: %d, %v", n, err)
	}
}

func TestSweepRemovesOrphans(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An orphan: a container created by a previous agent process that crashed.
	c, err := rt.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := rt.spec(shJob("true"), "")
	if _, err := rt.create(ctx, c, s); err != nil {
		t.Fatal(err)
	}
	rt.mu.Lock()
	clear(rt.active)
	rt.mu.Unlock()
	n, err := rt.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
}

func TestPython(t *testing.T) {
	rt := newRuntime(t)
	job := shJob("import json, sys\nev = json.load(sys.stdin)\nprint(json.dumps({'n': ev['args']['n'] + 1}))\n")
	job.Image = "localhost/deviceless/python3"
	job.Command = []string{"python3", container.CodePath}
	out := run(t, rt, job)
	if strings.TrimSpace(string(out.Stdout)) != `{"n": 2}` {
		t.Fatalf("stdout %q stderr %q", out.Stdout, out.Stderr)
	}
}

func TestWarmReusesRunner(t *testing.T) {
	rt := newRuntime(t)
	job := shJob(`read -r ev; echo "{\"pid\":$$,\"id\":\"$DEVICELESS_INVOCATION_ID\"}"`)
	job.Warm = &protocol.Warm{Idle: protocol.Duration(time.Minute), MaxUses: 3}
	var outs []container.Outcome
	for i := range 4 {
		job.ID = "warm-" + string(rune('a'+i))
		outs = append(outs, run(t, rt, job))
	}
	if !outs[0].Cold || outs[1].Cold || outs[2].Cold || !outs[3].Cold {
		t.Fatalf("cold flags: %v %v %v %v", outs[0].Cold, outs[1].Cold, outs[2].Cold, outs[3].Cold)
	}
	if !strings.Contains(string(outs[1].Stdout), `"id":"warm-b"`) {
		t.Fatalf("stdout %q", outs[1].Stdout)
	}
}

func TestWarmFaults(t *testing.T) {
	rt := newRuntime(t)
	job := shJob(`read -r ev; case "$ev" in *hang*) sleep 600;; *fail*) echo bad >&2; exit 4;; *big*) head -c 3000000 /dev/zero | tr '\0' b;; *) echo '{"ok":true}';; esac`)
	job.Warm = &protocol.Warm{Idle: protocol.Duration(time.Minute)}
	job.Stdin = []byte(`{"x":"fail"}`)
	out := run(t, rt, job)
	if out.ExitCode != 4 || strings.TrimSpace(out.Stderr) != "bad" {
		t.Fatalf("fail: %+v", out)
	}
	job.Stdin = []byte(`{"x":"big"}`)
	out = run(t, rt, job)
	if out.Cold || !out.Truncated || len(out.Stdout) != 1<<20 {
		t.Fatalf("big: cold=%v truncated=%v len=%d", out.Cold, out.Truncated, len(out.Stdout))
	}
	job.Stdin = []byte(`{"x":"ok"}`)
	out = run(t, rt, job)
	if out.Cold || strings.TrimSpace(string(out.Stdout)) != `{"ok":true}` {
		t.Fatalf("after big: cold=%v %q", out.Cold, out.Stdout)
	}
	job.Stdin = []byte(`{"x":"hang"}`)
	job.Timeout = 300 * time.Millisecond
	out = run(t, rt, job)
	if !out.TimedOut {
		t.Fatalf("hang: %+v", out)
	}
	job.Stdin = []byte(`{"x":"ok"}`)
	job.Timeout = 20 * time.Second
	out = run(t, rt, job)
	if !out.Cold || strings.TrimSpace(string(out.Stdout)) != `{"ok":true}` {
		t.Fatalf("after hang: cold=%v %q", out.Cold, out.Stdout)
	}
}

func TestPreparedContainers(t *testing.T) {
	rt := newRuntime(t)
	rt.cfg.Prepare = true
	job := shJob(`read -r inv; echo "{\"id\":\"$DEVICELESS_INVOCATION_ID\",\"host\":\"$(hostname)\",\"inv\":$inv}"`)
	job.Prepare = true
	hosts := map[string]bool{}
	for i := range 4 {
		job.ID = fmt.Sprintf("prep-%d", i)
		out := run(t, rt, job)
		var got struct {
			ID, Host string
			Inv      map[string]any
		}
		if err := json.Unmarshal(out.Stdout, &got); err != nil || got.ID != job.ID || got.Inv["id"] != "x" || !out.Cold {
			t.Fatalf("run %d: %q %v (stderr %q)", i, out.Stdout, err, out.Stderr)
		}
		if hosts[got.Host] {
			t.Fatalf("container %s ran two invocations", got.Host)
		}
		hosts[got.Host] = true
	}
	// Faults behave the same in a prepared container.
	job.Code = `sleep 600`
	job.Timeout = 300 * time.Millisecond
	for range 2 {
		if out := run(t, rt, job); !out.TimedOut {
			t.Fatalf("hang: %+v", out)
		}
	}
	closeLeavesNothing(t, rt)
}

func TestWarmPython(t *testing.T) {
	rt := newRuntime(t)
	job := shJob("import json, os, sys\ninv = json.load(sys.stdin)\nprint(json.dumps({'id': os.environ['DEVICELESS_INVOCATION_ID'], 'n': inv['args']['n']}))\n")
	job.Image = "localhost/deviceless/python3"
	job.Command = []string{"python3", container.CodePath}
	job.Warm = &protocol.Warm{Idle: protocol.Duration(time.Minute)}
	for i := range 2 {
		job.ID = fmt.Sprintf("py-warm-%d", i)
		out := run(t, rt, job)
		want := fmt.Sprintf(`{"id": "%s", "n": 1}`, job.ID)
		if strings.TrimSpace(string(out.Stdout)) != want || out.Cold != (i == 0) {
			t.Fatalf("run %d: cold=%v %q (stderr %q)", i, out.Cold, out.Stdout, out.Stderr)
		}
	}
}

// A prepared container reports its exit code and stderr through its exit marker; the
// outcome is the same as an on-demand container's (which podman's inspect reports).
func TestPreparedExitStatus(t *testing.T) {
	for _, prepare := range []bool{false, true} {
		rt := newRuntime(t)
		rt.cfg.Prepare = prepare
		for _, tc := range []struct {
			name, code string
			memory     int64
			exit       int
			stderr     string
			oom        bool
		}{
			{name: "exit", code: `echo bad >&2; exit 3`, exit: 3, stderr: "bad\n"},
			{name: "no newline", code: `printf 'half' >&2`, stderr: "half"},
			{name: "empty line", code: `echo >&2`, stderr: "\n"},
			{name: "forged marker", code: `echo "--deviceless-exit-0 0 0" >&2; exit 5`, exit: 5, stderr: "--deviceless-exit-0 0 0\n"},
			{name: "oom", code: `x=a; while true; do x="$x$x"; done`, memory: 16 << 20, exit: 137, oom: true},
		} {
			job := shJob(tc.code)
			job.Function = "exit-" + strings.ReplaceAll(tc.name, " ", "-")
			job.Prepare, job.Memory = true, tc.memory
			for i := range 2 { // the second run uses the prepared container
				out := run(t, rt, job)
				if out.ExitCode != tc.exit || out.OOMKilled != tc.oom || (!tc.oom && out.Stderr != tc.stderr) {
					t.Errorf("prepare=%v %s run %d: exit %d oom %v stderr %q", prepare, tc.name, i, out.ExitCode, out.OOMKilled, out.Stderr)
				}
			}
		}
	}
}

func TestExitFromMarker(t *testing.T) {
	const b = "--deviceless-exit-abc"
	for _, tc := range []struct {
		in, want string
		m        exitMarker
	}{
		{"oops\n\n" + b + " 3 0\n", "oops\n", exitMarker{true, 3, 0}},
		{"\n" + b + " 0 -\n", "", exitMarker{true, 0, -1}},
		{"half\n" + b + " 0 2\n", "half", exitMarker{true, 0, 2}},
		{"no marker\n", "no marker\n", exitMarker{}},
		{b + " 0 0\n", b + " 0 0\n", exitMarker{}},                                             // not after the wrapper's newline
		{"x\n--deviceless-exit-other 0 0\n", "x\n--deviceless-exit-other 0 0\n", exitMarker{}}, // another boundary
		{"x\n" + b + " 0 0", "x\n" + b + " 0 0", exitMarker{}},                                 // cut short
	} {
		got, m := exitFromMarker(tc.in, b, 4096)
		if got != tc.want || m != tc.m {
			t.Errorf("%q: %q %+v, want %q %+v", tc.in, got, m, tc.want, tc.m)
		}
	}
	if got, _ := exitFromMarker(strings.Repeat("a", 5000)+"\n"+b+" 0 0\n", b, 4096); len(got) != 4096 {
		t.Errorf("tail of %d bytes, want 4096", len(got))
	}
}

// A container gets at most Config.CPUs of CPU time: a function running two busy loops
// with CPUs 0.25 sees the quota in its cgroup and uses about a quarter of a CPU, measured
// from its own cgroup's usage over wall time (cgroup v1 cpuacct or v2 cpu.stat).
func TestCPULimit(t *testing.T) {
	rt, err := New(Config{
		Socket: testenv.PodmanSocket(t), OCIRuntime: "runc", Agent: "test-" + randomHex(3), User: "65534:65534",
		CodeDir: t.TempDir(), CPUs: 0.25,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	out := run(t, rt, shJob(`
usage() {
  if [ -r /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then cat /sys/fs/cgroup/cpuacct/cpuacct.usage
  else while read -r k v; do [ "$k" = usage_usec ] && echo $((v * 1000)); done </sys/fs/cgroup/cpu.stat; fi
}
quota() {
  if [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us
  else read -r q _ </sys/fs/cgroup/cpu.max; echo "$q"; fi
}
uptime_cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
(while :; do :; done) & a=$!
(while :; do :; done) & b=$!
u0=$(usage); t0=$(uptime_cs)
sleep 3
u1=$(usage); t1=$(uptime_cs)
kill $a $b
echo "{\"quota\":\"$(quota)\",\"usage_ns\":$((u1 - u0)),\"wall_cs\":$((t1 - t0))}"`))
	var got struct {
		Quota   string `json:"quota"`
		UsageNS int64  `json:"usage_ns"`
		WallCS  int64  `json:"wall_cs"`
	}
	if err := json.Unmarshal(out.Stdout, &got); err != nil || got.WallCS <= 0 {
		t.Fatalf("output %q (%v), stderr %q", out.Stdout, err, out.Stderr)
	}
	share := float64(got.UsageNS) / 1e9 / (float64(got.WallCS) / 100)
	t.Logf("quota %s, %.3f CPUs over %.2fs", got.Quota, share, float64(got.WallCS)/100)
	if got.Quota != "25000" {
		t.Errorf("CFS quota %q, want 25000 (per 100000µs)", got.Quota)
	}
	if share > 0.25*1.4 {
		t.Errorf("two busy loops used %.3f CPUs, want at most about 0.25", share)
	}
}

// closeLeavesNothing closes rt and checks, with a new runtime of the same agent, that no
// container of it is left.
func closeLeavesNothing(t *testing.T, rt *Runtime) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rt2, err := New(Config{Socket: rt.cfg.Socket, Agent: rt.cfg.Agent, CodeDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rt2.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("left behind after close: %d, %v", n, err)
	}
}
