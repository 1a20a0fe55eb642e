package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
)

// A real engine run writes its invocations and event counts to a real InfluxDB.
func TestMetricsReachInfluxDB(t *testing.T) {
	influx := influxtest.Start(t)
	influx.CreateDatabase("deviceless")
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	cfg := testConfig(t, dir)
	cfg.Name = "engine-under-test"
	cfg.Influx = &metrics.Config{URL: influx.URL, Bucket: "deviceless", FlushInterval: 50 * time.Millisecond}
	cfg.MetricsInterval = 50 * time.Millisecond
	e := startEngine(t, cfg)
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"zone": "north"}, ok(`{"fine": true}`))
	waitAgents(t, e, 1)
	for i := 0; i < 3; i++ {
		mosquittoPub(t, e.BrokerAddr(), "-t", fmt.Sprintf("sensors/gh%d/t", i), "-m", `{"c": 40}`, "-q", "1")
	}
	eventually(t, "3 results", func() bool { return len(e.history.list(0)) == 3 })

	count := func(q string) int {
		res := influx.Query("deviceless", q)
		if len(res) == 0 || len(res[0].Series) == 0 {
			return 0
		}
		return len(res[0].Series[0].Values)
	}
	eventually(t, "invocation points", func() bool {
		return count(`SELECT total_ms, exit_code FROM deviceless_invocations WHERE "function" = 'echo' AND status = 'ok' AND agent = 'a1' AND rule = 'hot' AND cold = 'true'`) == 3
	})
	eventually(t, "event counts", func() bool {
		res := influx.Query("deviceless", `SELECT last(received), last(matched), last(fired) FROM deviceless_events WHERE engine = 'engine-under-test'`)
		if len(res) == 0 || len(res[0].Series) == 0 {
			return false
		}
		row := res[0].Series[0].Rows()[0]
		// received: the 3 sensor events; the alerts the rule publishes and the results come
		// back into the intake only where a rule can match them, and none does here.
		return fmt.Sprint(row["last"]) == "3" && fmt.Sprint(row["last_1"]) == "3" && fmt.Sprint(row["last_2"]) == "3"
	})
}

// InfluxDB hung mid-run: events and invocations go on, points are dropped and counted
// (the buffer is small here), and writing resumes when InfluxDB answers again.
func TestInfluxDBOutageDoesNotStopTheLoop(t *testing.T) {
	influx := influxtest.Start(t)
	influx.CreateDatabase("deviceless")
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	cfg := testConfig(t, dir)
	cfg.Influx = &metrics.Config{URL: influx.URL, Bucket: "deviceless", FlushInterval: 20 * time.Millisecond, BatchSize: 10,
		BufferLimit: 100, Timeout: 200 * time.Millisecond, RetryInterval: 50 * time.Millisecond, MaxRetryInterval: 100 * time.Millisecond}
	cfg.MetricsInterval = 20 * time.Millisecond
	e := startEngine(t, cfg)
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"zone": "north"}, ok(`1`))
	waitAgents(t, e, 1)
	countOK := func() int {
		res := influx.Query("deviceless", `SELECT count(total_ms) FROM deviceless_invocations WHERE status = 'ok'`)
		if len(res) == 0 || len(res[0].Series) == 0 {
			return 0
		}
		n, _ := res[0].Series[0].Rows()[0]["count"].(interface{ String() string })
		var c int
		fmt.Sscan(n.String(), &c)
		return c
	}
	run := func(n int, from int) {
		host := e.BrokerAddr()
		for i := from; i < from+n; i++ {
			mosquittoPub(t, host, "-t", fmt.Sprintf("sensors/s%d/t", i), "-m", `{"c": 50}`, "-q", "1")
		}
		eventually(t, fmt.Sprintf("%d results", from+n), func() bool { return len(e.history.list(0)) == from+n })
	}
	run(5, 0)
	eventually(t, "5 invocation points", func() bool { return countOK() == 5 })

	influx.Pause()
	run(30, 5) // the loop keeps going while InfluxDB hangs
	eventually(t, "points dropped", func() bool {
		return e.influx.Stats().Dropped > 0
	})
	influx.Resume()
	run(5, 35)
	eventually(t, "writing resumes", func() bool { return countOK() >= 10 })
}
