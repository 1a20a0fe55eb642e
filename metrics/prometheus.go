package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	promWritten = prometheus.NewDesc("deviceless_metrics_points_written_total",
		"Points InfluxDB accepted from this process.", nil, nil)
	promDropped = prometheus.NewDesc("deviceless_metrics_points_dropped_total",
		"Points lost on the way to InfluxDB: evicted from the full buffer (oldest first), rejected, or unsent at shutdown.", nil, nil)
	promErrors = prometheus.NewDesc("deviceless_metrics_write_errors_total",
		"Failed write requests to InfluxDB (each retry counts).", nil, nil)
	promBuffered = prometheus.NewDesc("deviceless_metrics_points_buffered",
		"Points waiting to be sent to InfluxDB.", nil, nil)
)

// Describe implements prometheus.Collector: register the sink to expose its counters as
// deviceless_metrics_points_written_total, deviceless_metrics_points_dropped_total,
// deviceless_metrics_write_errors_total and deviceless_metrics_points_buffered.
func (s *Influx) Describe(ch chan<- *prometheus.Desc) {
	ch <- promWritten
	ch <- promDropped
	ch <- promErrors
	ch <- promBuffered
}

// Collect implements prometheus.Collector.
func (s *Influx) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(promWritten, prometheus.CounterValue, float64(st.Written))
	ch <- prometheus.MustNewConstMetric(promDropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(promErrors, prometheus.CounterValue, float64(st.WriteErrors))
	ch <- prometheus.MustNewConstMetric(promBuffered, prometheus.GaugeValue, float64(st.Buffered))
}
