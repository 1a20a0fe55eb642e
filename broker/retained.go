package broker

import (
	"slices"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/deviceless/deviceless/protocol"
)

// retainedOwners bounds the retained topics each user holds. Retained messages live until
// replaced and come back after every restart, so a device that retains on many topics
// would grow the store and every new subscriber's burst without bound.
//
// Ownership is learnt from the publishes seen since start: messages restored from the
// store count toward nobody (the store does not keep who published them).
type retainedOwners struct {
	mu      sync.Mutex
	max     int
	owner   map[string]string // topic → username
	byOwner map[string]int
}

func newRetainedOwners(max int) *retainedOwners {
	return &retainedOwners{max: max, owner: map[string]string{}, byOwner: map[string]int{}}
}

// admit records a retained publish by user on topic and reports whether it may be kept.
// An empty payload clears the topic.
func (r *retainedOwners) admit(user, topic string, clear bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, had := r.owner[topic]
	if clear {
		if had {
			delete(r.owner, topic)
			r.dec(prev)
		}
		return true
	}
	if had && prev == user {
		return true
	}
	if r.byOwner[user] >= r.max {
		return false
	}
	if had {
		r.dec(prev)
	}
	r.owner[topic] = user
	r.byOwner[user]++
	return true
}

func (r *retainedOwners) dec(user string) {
	if r.byOwner[user]--; r.byOwner[user] <= 0 {
		delete(r.byOwner, user)
	}
}

// OnPublish strips the hop count from devices and clients (hopTrusted), refuses retained
// invoke requests (they would run again at every restart and for every new engine) and
// bounds each user's retained topics.
func (h *guardHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	err := h.OnPublishInPlace(cl, &pk)
	return pk, err
}

// OnPublishInPlace is OnPublish changing the packet where it is, which mochi calls instead
// (mochi patch 15: the packet is not copied in and out).
func (h *guardHook) OnPublishInPlace(cl *mqtt.Client, pk *packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	s := h.s
	username := string(cl.Properties.Username)
	role, _ := s.policy.role(username)
	if !hopTrusted(role) {
		pk.Properties.User = withoutHop(pk.Properties.User)
	}
	if !pk.FixedHeader.Retain {
		return nil
	}
	if strings.HasPrefix(pk.TopicName, s.invokePrefix) {
		s.metrics.retainedRefused.Add(1)
		s.log.Info("retained invoke request refused", "client", cl.ID, "username", username, "topic", pk.TopicName)
		return h.refusePublish(cl, *pk, packets.ErrNotAuthorized)
	}
	if role == RoleAdmin {
		return nil
	}
	if !s.retained.admit(username, pk.TopicName, len(pk.Payload) == 0) {
		s.metrics.retainedRefused.Add(1)
		s.log.Warn("retained message beyond the user's limit: not retained", "client", cl.ID, "username", username, "topic", pk.TopicName, "max_retained_per_user", s.cfg.Limits.MaxRetainedPerUser)
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
			return packets.ErrQuotaExceeded // PUBACK 0x97: the publisher learns why
		}
		pk.FixedHeader.Retain = false // delivered, not kept: nothing is lost now
	}
	return nil
}

// OnWill strips the hop count from the wills of devices and clients, as OnPublish does
// from their publishes (mochi sends a will without OnPublish).
func (h *guardHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if role, _ := h.s.policy.role(string(cl.Properties.Username)); !hopTrusted(role) {
		will.User = withoutHop(will.User)
	}
	return will, nil
}

// hopTrusted reports whether a role may set the hop count (protocol.HopProperty) that
// bounds rule chains: agents, which put their invocation's hop + 1 on a function's
// publishes, and admins. Anyone else would reset or extend a chain at will (a device's
// -100000 made one event fire a rule 100,008 times).
func hopTrusted(role Role) bool { return role == RoleAgent || role == RoleAdmin }

// withoutHop returns props without the hop count, sharing nothing with props when it had
// one (the decoded packet's slice is not ours to change).
func withoutHop(props []packets.UserProperty) []packets.UserProperty {
	if !slices.ContainsFunc(props, isHop) {
		return props
	}
	return slices.DeleteFunc(slices.Clone(props), isHop)
}

func isHop(u packets.UserProperty) bool { return u.Key == protocol.HopProperty }

// refusePublish refuses pk the way mochi refuses a publish the ACL denies: MQTT 5 QoS 1/2
// get the reason in the PUBACK; MQTT 3.1.1 QoS 1/2 publishers are disconnected (they have
// no other way to hear it); QoS 0 is dropped.
func (h *guardHook) refusePublish(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	switch {
	case pk.FixedHeader.Qos == 0:
		return packets.ErrRejectPacket
	case cl.Properties.ProtocolVersion == 5:
		return code
	}
	_ = h.s.mqtt.DisconnectClient(cl, code)
	return packets.ErrRejectPacket
}
