package broker

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the broker's own counters; mochi's counters are read from its $SYS info
// at scrape time.
type metrics struct {
	authFailures [9]atomic.Uint64 // indexed by authReasons
	aclPublish   atomic.Uint64
	aclRead      atomic.Uint64
	oversized    atomic.Uint64
	// retainedRefused counts retained invoke requests refused and retained messages
	// beyond a user's limit.
	retainedRefused atomic.Uint64
}

var authReasons = []authFailure{failAnonymous, failUnknownUser, failPassword, failWill, failTakeover, failKeepalive, failReservedID, failAgentID, failTooMany}

func (m *metrics) authFailure(why authFailure) {
	for i, r := range authReasons {
		if r == why {
			m.authFailures[i].Add(1)
			return
		}
	}
}

func (m *metrics) aclDenied(write bool) {
	if write {
		m.aclPublish.Add(1)
	} else {
		m.aclRead.Add(1)
	}
}

// Collector returns a prometheus.Collector with the broker's metrics, all named
// deviceless_broker_*. Register it on the engine's own registry:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(srv.Collector())
//
// Each call returns a new collector over the same counters.
func (s *Server) Collector() prometheus.Collector { return &collector{s: s} }

type collector struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("deviceless_broker_"+name, help, labels, nil)
}

var (
	descClients         = desc("clients_connected", "MQTT clients connected now.")
	descClientsMax      = desc("clients_maximum", "Most MQTT clients connected at once.")
	descSessions        = desc("sessions", "Sessions known to the broker, connected or not.")
	descMsgsIn          = desc("messages_received_total", "PUBLISH packets received from clients and the engine.")
	descMsgsOut         = desc("messages_sent_total", "PUBLISH packets sent to clients.")
	descBytesIn         = desc("bytes_received_total", "Bytes received from clients.")
	descBytesOut        = desc("bytes_sent_total", "Bytes sent to clients.")
	descPacketsIn       = desc("packets_received_total", "MQTT packets received.")
	descPacketsOut      = desc("packets_sent_total", "MQTT packets sent.")
	descDropped         = desc("messages_dropped_total", "Messages dropped: reason=slow_client (outbound buffer full), queue_full (limits.max_queued reached for an offline or unacknowledging client).", "reason")
	descInflight        = desc("inflight_messages", "QoS 1/2 messages held for clients (in flight or queued while offline).")
	descRetained        = desc("retained_messages", "Retained messages.")
	descSubscriptions   = desc("subscriptions", "Client subscriptions.")
	descAuthFailures    = desc("auth_failures_total", "Refused connections by reason.", "reason")
	descACLDenied       = desc("acl_denied_total", "Publishes, subscriptions and deliveries refused by the ACL.", "action")
	descOversized       = desc("oversized_packets_total", "Clients disconnected for sending a packet over limits.max_packet_size.")
	descRetainedRefused = desc("retained_refused_total", "Retained invoke requests refused, and retained messages beyond a user's limits.max_retained_per_user.")
	descIntakeEvents    = desc("intake_events_total", "Events accepted by an in-process intake.", "intake")
	descIntakeDropped   = desc("intake_dropped_total", "QoS 0 events an in-process intake shed because its consumer was behind.", "intake")
	descIntakeBacklog   = desc("intake_backlog", "Events waiting in an in-process intake.", "intake")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descClientsMax, descSessions, descMsgsIn, descMsgsOut,
		descBytesIn, descBytesOut, descPacketsIn, descPacketsOut, descDropped, descInflight, descRetained,
		descSubscriptions, descAuthFailures, descACLDenied, descOversized, descRetainedRefused, descIntakeEvents, descIntakeDropped,
		descIntakeBacklog} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	info := s.mqtt.Info.Clone()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descClients, float64(info.ClientsConnected))
	gauge(descClientsMax, float64(info.ClientsMaximum))
	gauge(descSessions, float64(s.mqtt.Clients.Len()-1)) // minus mochi's inline client
	counter(descMsgsIn, float64(info.MessagesReceived))
	counter(descMsgsOut, float64(info.MessagesSent))
	counter(descBytesIn, float64(info.BytesReceived))
	counter(descBytesOut, float64(info.BytesSent))
	counter(descPacketsIn, float64(info.PacketsReceived))
	counter(descPacketsOut, float64(info.PacketsSent))
	counter(descDropped, float64(info.MessagesDropped), "slow_client")
	counter(descDropped, float64(info.InflightDropped), "queue_full")
	gauge(descInflight, float64(info.Inflight))
	gauge(descRetained, float64(info.Retained))
	gauge(descSubscriptions, float64(info.Subscriptions))
	for i, r := range authReasons {
		counter(descAuthFailures, float64(s.metrics.authFailures[i].Load()), string(r))
	}
	counter(descACLDenied, float64(s.metrics.aclPublish.Load()), "publish")
	counter(descACLDenied, float64(s.metrics.aclRead.Load()), "read")
	counter(descOversized, float64(s.metrics.oversized.Load()))
	counter(descRetainedRefused, float64(s.metrics.retainedRefused.Load()))
	s.intakeMu.Lock()
	intakes := make([]*Intake, 0, len(s.intakes))
	for _, in := range s.intakes {
		intakes = append(intakes, in)
	}
	s.intakeMu.Unlock()
	for _, in := range intakes {
		st := in.Stats()
		counter(descIntakeEvents, float64(st.Received), in.name)
		counter(descIntakeDropped, float64(st.Dropped), in.name)
		gauge(descIntakeBacklog, float64(st.Backlog), in.name)
	}
}
