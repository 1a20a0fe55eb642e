package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/internal/procs"
)

// BenchmarkPacedCPU is issue 13's CPU target: the full-rate workload (QoS 0 JSON events
// {"temp":N,"seq":i}, half above 30, one rule `if: payload.temp > 30` with a publish
// action) paced at 10,000 events/s into one `mosquitto_pub -l`, beside mosquitto 2.0.11
// forwarding the same stream, in the same run. Each system's output has one
// `mosquitto_sub` reading it (mosquitto: the whole stream; Deviceless: the alerts, half of
// it). cpu-% is the CPU time (user + system) of the broker's process over the wall time
// of the stream: mosquitto's from /proc/{pid}/stat, the engine's from getrusage of this
// process (the engine runs in it; the pacer feeding mosquitto_pub is a process of its
// own). µs-cpu/event is the same time per event.
func BenchmarkPacedCPU(b *testing.B) {
	const rate = 10000
	pubBin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		b.Fatal("mosquitto_pub not found: run `go tool task setup`")
	}
	subBin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		b.Fatal("mosquitto_sub not found: run `go tool task setup`")
	}
	report := func(b *testing.B, cpu, wall time.Duration) {
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "µs-cpu/event")
		b.ReportMetric(float64(b.N)/wall.Seconds(), "events/s")
	}
	b.Run("mosquitto-forwarding", func(b *testing.B) {
		addr, pid := startMosquittoPID(b)
		got := subscribeCount(b, pubBin, subBin, addr, "sensors/0/t", b.N)
		lines := tempLines(b)
		before := procCPU(b, pid)
		start := publishPaced(b, pubBin, addr, rate, lines)
		if n := <-got; n != b.N {
			b.Fatalf("mosquitto_sub received %d of %d", n, b.N)
		}
		wall := time.Since(start)
		report(b, procCPU(b, pid)-before, wall)
	})
	// procs=auto is `deviceless engine` as it starts by default (--procs auto: one P while
	// it needs under a core); procs=fixed keeps every P, as go test sets GOMAXPROCS.
	for _, auto := range []bool{true, false} {
		name := "deviceless/procs=auto"
		if !auto {
			name = "deviceless/procs=fixed"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			rule := "rules:\n  - name: hot\n    on: sensors/+/t\n    if: payload.temp > 30\n    do: [{publish: {topic: '\"alerts/hot\"'}}]\n"
			if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rule), 0o644); err != nil {
				b.Fatal(err)
			}
			e, stop := benchEngineProcs(b, dir, auto)
			defer stop()
			got := subscribeCount(b, pubBin, subBin, e.BrokerAddr(), "alerts/hot", b.N/2)
			lines := tempLines(b)
			if auto {
				// The setup (writing the lines, starting the engine) is a burst that gives
				// the process every P; the paced stream is measured from where the
				// controller settles, one P, as a running engine is.
				for deadline := time.Now().Add(10 * time.Second); runtime.GOMAXPROCS(0) != 1; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatalf("GOMAXPROCS %d 10 s after the setup, want 1 (--procs auto)", runtime.GOMAXPROCS(0))
					}
				}
			}
			before := selfCPU(b)
			start := publishPaced(b, pubBin, e.BrokerAddr(), rate, lines)
			if n := <-got; n != b.N/2 {
				b.Fatalf("mosquitto_sub received %d of %d alerts", n, b.N/2)
			}
			wall := time.Since(start)
			cpu := selfCPU(b) - before
			b.StopTimer()
			if m := e.ruleSet().Rules[0].Counters().Matched.Load(); m != uint64(b.N) {
				b.Fatalf("evaluated %d of %d", m, b.N)
			}
			report(b, cpu, wall)
		})
	}
}

// startMosquittoPID is startMosquitto, also returning the broker's pid.
func startMosquittoPID(b *testing.B) (string, int) {
	before := map[int]bool{}
	for _, p := range mosquittoPIDs() {
		before[p] = true
	}
	addr := startMosquitto(b)
	for _, p := range mosquittoPIDs() {
		if !before[p] {
			return addr, p
		}
	}
	b.Fatal("cannot find the mosquitto process just started")
	return "", 0
}

// mosquittoPIDs lists the processes whose command is /usr/sbin/mosquitto.
func mosquittoPIDs() []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && strings.HasPrefix(string(cmd), "/usr/sbin/mosquitto\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// procCPU is a process's user + system CPU time, from /proc/{pid}/stat (fields 14, 15, in
// clock ticks of 1/100 s).
func procCPU(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command (field 2) is in parentheses and may hold spaces: count after it.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// selfCPU is this process's user + system CPU time (the engine runs in it).
func selfCPU(b *testing.B) time.Duration {
	t, err := procs.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// subscribeCount runs a mosquitto_sub on filter and returns a channel that receives how
// many messages it printed once n have come (fewer if it ends first; -1 if it ended
// before its subscription was in place). Its output is
// counted by a counter process (this test binary, see TestMain), not here: the engine
// runs in this process, and reading 5,000 lines/s here counted against its CPU and not
// against mosquitto's.
func subscribeCount(b *testing.B, pubBin, subBin, addr, filter string, n int) <-chan int {
	host, port, _ := net.SplitHostPort(addr)
	sub := exec.Command(subBin, "-h", host, "-p", port, "-t", filter, "-t", "probe", "-W", "120")
	counter := exec.Command(os.Args[0])
	counter.Env = append(os.Environ(), fmt.Sprintf("%s=%d", countEnv, n))
	counter.Stderr = os.Stderr
	pipe, err := sub.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	counter.Stdin = pipe
	out, err := counter.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Process.Kill(); _ = sub.Wait() })
	if err := counter.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = counter.Process.Kill(); _ = counter.Wait() })
	ready, got := make(chan struct{}), make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			// mosquitto_sub ended before any probe came (the counter printed its count
			// first): the subscription never was in place.
			close(ready)
			got <- -1
			return
		}
		close(ready)
		count := -1
		if sc.Scan() {
			count, _ = strconv.Atoi(sc.Text())
		}
		got <- count
	}()
	waitSubscribed(b, pubBin, host, port, ready)
	return got
}

// count is the counter process of subscribeCount: it reads mosquitto_sub's lines from
// stdin, prints "ready" at the first probe, and prints how many other lines came once n
// have, or at the end of its input.
func count(n int) error {
	sc := bufio.NewScanner(os.Stdin)
	ready, count := false, 0
	for (!ready || count < n) && sc.Scan() {
		if sc.Text() == "probe" {
			if !ready {
				ready = true
				if _, err := fmt.Println("ready"); err != nil {
					return err
				}
			}
			continue
		}
		count++
	}
	_, err := fmt.Println(count)
	return err
}

// tempLines writes b.N lines {"temp":N,"seq":i}, half above 30, to a file.
func tempLines(b *testing.B) string {
	var buf []byte
	for i := 0; i < b.N; i++ {
		buf = fmt.Appendf(buf, "{\"temp\":%d,\"seq\":%d}\n", 20+(i%2)*20, i)
	}
	path := filepath.Join(b.TempDir(), "lines")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// paceEnv makes the test binary a pacer (TestMain): it copies the file named by the
// variable to stdout at paceRateEnv lines per second, a hundredth of a second's lines
// at a time. It is a process of its own, so that its CPU counts for neither system.
const (
	paceEnv     = "DEVICELESS_BENCH_PACE"
	paceRateEnv = "DEVICELESS_BENCH_PACE_RATE"
	// countEnv makes it subscribeCount's counter of n lines.
	countEnv = "DEVICELESS_BENCH_COUNT"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(paceEnv); path != "" {
		rate, _ := strconv.Atoi(os.Getenv(paceRateEnv))
		if err := pace(path, max(rate, 100)); err != nil {
			fmt.Fprintln(os.Stderr, "pacer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if n := os.Getenv(countEnv); n != "" {
		want, _ := strconv.Atoi(n)
		if err := count(want); err != nil {
			fmt.Fprintln(os.Stderr, "counter:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func pace(path string, rate int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<16)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for per := rate / 100; len(data) > 0; {
		<-tick.C
		n := 0
		for i := 0; i < per && n < len(data); i++ {
			j := bytes.IndexByte(data[n:], '\n')
			if j < 0 {
				n = len(data)
				break
			}
			n += j + 1
		}
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// publishPaced runs the pacer (this test binary, see TestMain) into one mosquitto_pub -l
// with the lines of path, at rate lines/s, and returns when it started.
func publishPaced(b *testing.B, bin, addr string, rate int, path string) time.Time {
	host, port, _ := net.SplitHostPort(addr)
	pacer := exec.Command(os.Args[0])
	pacer.Env = append(os.Environ(), paceEnv+"="+path, fmt.Sprintf("%s=%d", paceRateEnv, rate))
	pacer.Stderr = os.Stderr
	out, err := pacer.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	pub := exec.Command(bin, "-h", host, "-p", port, "-t", "sensors/0/t", "-q", "0", "-l")
	pub.Stdin = out
	b.ResetTimer()
	start := time.Now()
	if err := pacer.Start(); err != nil {
		b.Fatal(err)
	}
	if err := pub.Start(); err != nil {
		b.Fatal(err)
	}
	if err := pacer.Wait(); err != nil {
		b.Fatalf("pacer: %v", err)
	}
	if err := pub.Wait(); err != nil {
		b.Fatalf("mosquitto_pub: %v", err)
	}
	return start
}
