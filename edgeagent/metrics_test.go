package edgeagent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
	"github.com/deviceless/deviceless/protocol"
)

// An agent writes its actuations and its own figures to a real InfluxDB, and exposes
// its counters to Prometheus.
func TestAgentMetrics(t *testing.T) {
	influx := influxtest.Start(t)
	influx.CreateDatabase("deviceless")
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	cfg.Influx = &InfluxConfig{Config: metrics.Config{URL: influx.URL, Bucket: "deviceless", FlushInterval: 50 * time.Millisecond}, Interval: 50 * time.Millisecond}
	a := startAgent(t, cfg, cl)

	act, _ := json.Marshal(protocol.Actuation{ID: "m1", Line: "fan", Value: 1})
	cl.publish(protocol.Topics{}.AgentActuate(cfg.ID), act, &paho.PublishProperties{ResponseTopic: "test/replies/m1", CorrelationData: []byte("m1")})
	cl.await("test/replies/m1", nil)
	if r := cl.invoke(cfg.ID, shInvocation("m2", `echo 7`)); r.Status != protocol.StatusOK {
		t.Fatalf("invocation %+v", r)
	}

	rows := func(q string) int {
		res := influx.Query("deviceless", q)
		if len(res) == 0 || len(res[0].Series) == 0 {
			return 0
		}
		return len(res[0].Series[0].Values)
	}
	waitFor(t, "the actuation point", func() bool {
		return rows(fmt.Sprintf(`SELECT value FROM deviceless_actuations WHERE agent = '%s' AND line = 'fan'`, cfg.ID)) == 1
	})
	waitFor(t, "agent figures", func() bool {
		return rows(fmt.Sprintf(`SELECT cpu, rss, running, queue FROM deviceless_agent WHERE agent = '%s' AND rss > 1000000`, cfg.ID)) >= 2
	})

	srv := httptest.NewServer(promhttp.HandlerFor(a.Metrics(), promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`deviceless_actuations_total{line="fan"} 1`, `deviceless_agent_invocations_total{cold="true",function="`, `deviceless_agent_healthy 1`, "deviceless_metrics_points_written_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
