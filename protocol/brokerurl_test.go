package protocol

import "testing"

func TestParseBrokerURL(t *testing.T) {
	for _, c := range []struct {
		in, want string // want: the normalised URL, or "" for an error
	}{
		{"mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"},
		{"tcp://broker.example:1883", "mqtt://broker.example:1883"},
		{"MQTT://broker.example:1883", "mqtt://broker.example:1883"},
		{"mqtts://broker.example:8883", "mqtts://broker.example:8883"},
		{"tls://broker.example:8883", "mqtts://broker.example:8883"},
		{"ssl://broker.example:8883", "mqtts://broker.example:8883"},
		{"SSL://broker.example:8883", "mqtts://broker.example:8883"},
		{"ws://broker.example:8083/mqtt", "ws://broker.example:8083/mqtt"},
		{"wss://broker.example/mqtt", "wss://broker.example/mqtt"},
		{"mqtt://user:secret@[::1]:1883", "mqtt://user:secret@[::1]:1883"},
		{"", ""}, {"broker.example:1883", ""}, {"http://broker.example", ""}, {"mqtt+ssl://broker.example:8883", ""},
		{"mqtt://", ""}, {"mqtt:///x", ""}, {"mqtt:broker.example", ""}, {"://broker.example", ""}, {"mqtt://a b", ""},
	} {
		u, err := ParseBrokerURL(c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParseBrokerURL(%q) = %s, want an error", c.in, u)
		case c.want != "" && err != nil:
			t.Errorf("ParseBrokerURL(%q): %v", c.in, err)
		case c.want != "" && u.String() != c.want:
			t.Errorf("ParseBrokerURL(%q) = %s, want %s", c.in, u, c.want)
		}
	}
}
