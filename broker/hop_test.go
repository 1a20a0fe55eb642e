package broker

import (
	"os/exec"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/protocol"
)

// Issue 12: the engine counts rule chains in the user property deviceless-hop, and only
// the engine and agents (which echo the hop of their invocation on a function's
// publishes) may set it: the broker strips it from the publishes and wills of devices and
// clients, keeping their other user properties. A device sent deviceless-hop -100000 with
// mosquitto_pub and one event fired a rule 100,008 times.
func TestHopPropertyOnlyFromAgents(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	host, port := hostPort(t, addr)
	root := mustConnect(t, addr, connOpts{clientID: "root", user: "root"})
	root.mustSubscribe(t, "hop/#", 1)
	hop := func(m *paho.Publish) (string, bool) {
		if m.Properties == nil {
			return "", false
		}
		return m.Properties.User.Get(protocol.HopProperty), m.Properties.User.Get("k") == "v"
	}
	for _, c := range []struct {
		user string
		want string // the hop the subscriber sees
	}{{"sensor1", ""}, {"nodered", ""}, {"a1", "3"}, {"root", "3"}} {
		if out, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-u", c.user, "-P", "pw-"+c.user,
			"-t", "hop/"+c.user, "-m", "x", "-q", "1", "-D", "publish", "user-property", protocol.HopProperty, "3",
			"-D", "publish", "user-property", "k", "v"); err != nil {
			t.Fatalf("mosquitto_pub as %s: %v: %s", c.user, err, out)
		}
		m := root.next(t)
		if got, kept := hop(m); m.Topic != "hop/"+c.user || got != c.want || !kept {
			t.Errorf("%s published with %s 3: the subscriber got %s with hop %q (other property kept: %v), want hop %q",
				c.user, protocol.HopProperty, m.Topic, got, kept, c.want)
		}
	}
	// A device's will: stripped too.
	sub := exec.Command(requireTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-V", "mqttv5", "-u", "sensor1", "-P", "pw-sensor1",
		"-t", "nothing/here", "--will-topic", "hop/will", "--will-payload", "gone", "-D", "will", "user-property", protocol.HopProperty, "-100000",
		"-D", "will", "user-property", "k", "v")
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // connected
	_ = sub.Process.Kill()             // no DISCONNECT: the will is sent
	_ = sub.Wait()
	m := root.next(t)
	if got, kept := hop(m); m.Topic != "hop/will" || got != "" || !kept {
		t.Fatalf("the device's will: %s with hop %q (other property kept: %v), want no hop", m.Topic, got, kept)
	}
}
