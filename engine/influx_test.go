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
		// received: the 3 sensor events, the 3 alerts the rule publishes, the 3 results.
		return fmt.Sprint(row["last"]) == "9" && fmt.Sprint(row["last_1"]) == "3" && fmt.Sprint(row["last_2"]) == "3"
	})
}
