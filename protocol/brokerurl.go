package protocol

import (
	"errors"
	"net/url"
)

// ParseBrokerURL parses the URL of an MQTT broker, as the edge agent's `broker` and the
// engine's `broker.external` take it, and normalises its scheme to one that autopaho
// dials: mqtt:// (alias tcp://) is plain TCP, mqtts:// (aliases tls://, ssl://) is TLS,
// ws:// and wss:// are MQTT over WebSocket (the path is kept). Schemes are
// case-insensitive; the URL must name a host.
func ParseBrokerURL(s string) (*url.URL, error) {
	u, err := url.Parse(s) // lowercases the scheme
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "mqtt"
	case "mqtts", "tls", "ssl":
		u.Scheme = "mqtts"
	case "ws", "wss":
	default:
		return nil, errors.New("want mqtt://, mqtts://, ws:// or wss:// (or the aliases tcp://, tls://, ssl://)")
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}
