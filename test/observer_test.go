package e2e

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// observer is an MQTT v5 subscriber (user obs, role admin) with a persistent session that
// survives broker restarts: it reconnects by itself and subscribes again on every
// connection, retrying a refused SUBSCRIBE.
//
// Why not mosquitto_sub here: after a restart the broker redelivers the session's queued
// messages with packet ids 1, 2, ..., and mochi v2.7.9 refuses a SUBSCRIBE whose packet id
// equals one of them (0x91, packet identifier in use: server.go processSubscribe checks the
// client's outbound in-flight ids); mosquitto_sub then exits with "All subscription requests
// were denied".
type observer struct {
	t      testing.TB
	topics []string

	mu    sync.Mutex
	msgs  []observed
	conns int // connections made
	subs  int // successful subscriptions
}

type observed struct{ topic, payload string }

func (c *cluster) observe(clientID string, topics ...string) *observer {
	c.t.Helper()
	o := &observer{t: c.t, topics: topics}
	u, _ := url.Parse("mqtt://" + c.mqtt)
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     5,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         3600,
		ReconnectBackoff:              autopaho.NewConstantBackoff(100 * time.Millisecond),
		ConnectTimeout:                5 * time.Second,
		ConnectUsername:               "obs",
		ConnectPassword:               []byte(password("obs")),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			o.mu.Lock()
			o.conns++
			o.mu.Unlock()
			go o.subscribe(ctx, cm)
		},
		ClientConfig: paho.ClientConfig{
			ClientID: clientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				o.mu.Lock()
				o.msgs = append(o.msgs, observed{pr.Packet.Topic, string(pr.Packet.Payload)})
				o.mu.Unlock()
				return true, nil
			}},
		},
	})
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = cm.Disconnect(dctx)
		dcancel()
		cancel()
		<-cm.Done()
	})
	return o
}

func (o *observer) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	var subs []paho.SubscribeOptions
	for _, tp := range o.topics {
		subs = append(subs, paho.SubscribeOptions{Topic: tp, QoS: 1})
	}
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		suback, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
		cancel()
		ok := err == nil && suback != nil
		if ok {
			for _, r := range suback.Reasons {
				ok = ok && r < 0x80
			}
		}
		if ok {
			o.mu.Lock()
			o.subs++
			o.mu.Unlock()
			return
		}
		if err != nil && strings.Contains(err.Error(), "connection") {
			return // the next connection subscribes again
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// messages returns the payloads received on topic, redeliveries included.
func (o *observer) messages(topic string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, m := range o.msgs {
		if m.topic == topic {
			out = append(out, m.payload)
		}
	}
	return out
}

// waitReady publishes probes on topic (which the observer must subscribe to) until one
// arrives: the observer is then connected and subscribed.
func (o *observer) waitReady(c *cluster, topic string) {
	c.t.Helper()
	probe := "probe-" + randHex(4)
	waitFor(c.t, 30*time.Second, "the observer to be subscribed", func() bool {
		_ = c.tryPub("obs", "", topic, probe, 0)
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			for _, m := range o.messages(topic) {
				if m == probe {
					return true
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	})
}
