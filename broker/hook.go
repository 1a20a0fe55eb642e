package broker

import (
	"bytes"
	"errors"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// guardHook is the broker's one policy hook: authentication, ACLs, client-id ownership,
// keepalive caps, and the counters behind the metrics.
type guardHook struct {
	mqtt.HookBase
	s *Server
}

func (h *guardHook) ID() string { return "deviceless-guard" }

func (h *guardHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnDisconnect,
		mqtt.OnPublish,
		mqtt.OnWill,
	}, []byte{b})
}

// OnConnect authenticates the client and enforces the connection rules. A refused client
// gets a CONNACK with the reason and is disconnected.
func (h *guardHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	s := h.s
	username := string(pk.Connect.Username)
	refuse := func(why authFailure, code packets.Code) error {
		s.metrics.authFailure(why)
		s.log.Info("mqtt connection refused", "reason", string(why), "client", cl.ID, "username", username, "remote", cl.Net.Remote, "listener", cl.Net.Listener)
		if cl.Properties.ProtocolVersion < 5 {
			if v3, ok := v3Codes[code]; ok {
				code = v3
			}
		}
		_ = s.mqtt.SendConnack(cl, code, false, nil)
		return code
	}
	if cl.ID == mqtt.InlineClientId || cl.ID == engineClientID {
		return refuse(failReservedID, packets.ErrClientIdentifierNotValid)
	}
	// An address that failed too often gets no bcrypt check (each costs ~50 ms of CPU):
	// only a password the cache already knows passes, so the other devices behind the
	// same NAT keep reconnecting while a guesser there is stopped.
	ip := remoteHost(cl.Net.Remote)
	role, why := s.policy.check(username, pk.Connect.UsernameFlag, pk.Connect.Password, !s.failures.Blocked(ip))
	if why == failUnknownUser || why == failPassword {
		s.failures.Fail(ip)
	}
	switch why {
	case failNone:
	case failAnonymous:
		return refuse(why, packets.ErrNotAuthorized)
	default:
		return refuse(why, packets.ErrBadUsernameOrPassword)
	}
	if pk.Connect.WillFlag && !s.policy.allowed(role, username, pk.Connect.WillTopic, true) {
		return refuse(failWill, packets.ErrNotAuthorized)
	}
	// A client id belongs to the user whose session holds it: another user may neither
	// take the connection over nor inherit the queued messages.
	if existing, ok := s.mqtt.Clients.Get(cl.ID); ok && string(existing.Properties.Username) != username {
		return refuse(failTakeover, packets.ErrNotAuthorized)
	}
	// An agent's id is its username: nobody else may hold that client id, even while the
	// agent has no session (a squatter's session would make the agent's own refused).
	if owner, ok := s.policy.users[cl.ID]; ok && owner.Role == RoleAgent && username != cl.ID {
		return refuse(failAgentID, packets.ErrNotAuthorized)
	}
	if max := uint16(s.cfg.Limits.MaxKeepalive.Seconds()); max > 0 {
		if ka := pk.Connect.Keepalive; ka == 0 || ka > max {
			if cl.Properties.ProtocolVersion < 5 {
				return refuse(failKeepalive, packets.ErrClientIdentifierNotValid)
			}
			cl.State.Keepalive = max
			cl.State.ServerKeepalive = true
		}
	}
	return nil
}

// OnConnectAuthenticate admits the clients OnConnect let through.
func (h *guardHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

// OnACLCheck applies the role table to publishes, subscriptions and every delivery.
func (h *guardHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	username := string(cl.Properties.Username)
	role, ok := h.s.policy.role(username)
	if ok && h.s.policy.allowed(role, username, topic, write) {
		return true
	}
	h.s.metrics.aclDenied(write)
	return false
}

func (h *guardHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.s.metrics.oversized.Add(1)
		h.s.log.Warn("mqtt client sent an oversized packet: disconnected", "client", cl.ID, "username", string(cl.Properties.Username), "remote", cl.Net.Remote, "max_packet_size", h.s.cfg.Limits.MaxPacketSize)
	}
}

var (
	_ mqtt.PublishInPlace = (*guardHook)(nil)
	_ mqtt.PublishInPlace = (*journalHook)(nil)
)

// journalHook has the durable intake journal QoS 1 and 2 publishes before mochi
// acknowledges them (OnPublish runs before the PUBACK is written). It is added only with
// a store, which a durable intake needs: without one it would be a call per publish that
// does nothing.
type journalHook struct {
	mqtt.HookBase
	s *Server
}

func (h *journalHook) ID() string { return "deviceless-journal" }

func (h *journalHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *journalHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	err := h.OnPublishInPlace(cl, &pk)
	return pk, err
}

// OnPublishInPlace is OnPublish without copying the packet in and out (mochi patch 15).
func (h *journalHook) OnPublishInPlace(cl *mqtt.Client, pk *packets.Packet) error {
	in := h.s.durable
	if in == nil {
		return nil
	}
	err := in.journalPublish(cl, *pk)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errResend):
		return packets.CodeSuccessIgnore // acknowledged, not delivered again
	case errors.Is(err, ErrIntakeClosed):
		// Stopping: not acknowledged, so the client sends it again after the restart.
		return packets.ErrRejectPacket
	}
	// Not journaled, so not acknowledged: the client sends it again when it reconnects.
	h.s.log.Error("intake journal write failed: message refused", "client", cl.ID, "topic", pk.TopicName, "err", err)
	if !cl.Net.Inline {
		_ = h.s.mqtt.DisconnectClient(cl, packets.ErrUnspecifiedError)
	}
	return packets.ErrRejectPacket
}

// v3Codes maps MQTT 5 CONNACK reasons to their MQTT 3.1.1 return codes.
var v3Codes = map[packets.Code]packets.Code{
	packets.ErrBadUsernameOrPassword:    packets.ErrMalformedUsernameOrPassword, // 0x04: bad user name or password
	packets.ErrNotAuthorized:            packets.Err3NotAuthorized,
	packets.ErrClientIdentifierNotValid: packets.Err3ClientIdentifierNotValid,
}

// remoteHost is the address part of a connection's remote address.
func remoteHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}
