package broker

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// mochi patch 16 keeps each topic's subscribers until a subscription changes. With the
// clients users run: a device (mosquitto_pub) publishes to a topic nobody subscribes to,
// so its empty subscriber set is kept; a mosquitto_sub that subscribes afterwards must
// still receive the next publishes, and a client that unsubscribes must stop receiving.
func TestSubscribersFollowSubscriptionChanges(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	host, port := hostPort(t, addr)
	pub := func(topic, payload string) {
		t.Helper()
		if out, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "root", "-P", "pw-root", "-t", topic, "-m", payload); err != nil {
			t.Fatalf("mosquitto_pub: %v: %s", err, out)
		}
	}
	for i := range 3 {
		pub("cache/t", "unheard-"+strconv.Itoa(i))
	}

	// A subscriber that comes later: mosquitto_sub takes one message and exits.
	var out bytes.Buffer
	sub := exec.Command(requireTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-u", "root", "-P", "pw-root", "-t", "cache/#", "-C", "1")
	sub.Stdout = &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	// Its SUBSCRIBE may land after any of these publishes; one after it must reach it.
	heard := false
	for i := 0; !heard && i < 100; i++ {
		pub("cache/t", "heard")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("mosquitto_sub: %v: %s", err, out.String())
			}
			heard = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !heard {
		_ = sub.Process.Kill()
		t.Fatal("mosquitto_sub subscribed after the topic's subscribers were kept never received a message")
	}
	if got := out.String(); got != "heard\n" {
		t.Fatalf("mosquitto_sub printed %q, want %q", got, "heard\n")
	}

	// A client that unsubscribes: what is published to the topic afterwards is not
	// delivered; the marker on another topic, published after it, comes first.
	c := mustConnect(t, addr, connOpts{clientID: "unsub", user: "root"})
	c.mustSubscribe(t, "cache/t", 0)
	pub("cache/t", "before")
	c.expect(t, "cache/t", "before")
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"cache/t"}}); err != nil {
		t.Fatal(err)
	}
	c.mustSubscribe(t, "cache/marker", 0)
	pub("cache/t", "after")
	pub("cache/marker", "m")
	c.expect(t, "cache/marker", "m")
}
