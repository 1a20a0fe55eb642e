// Package broker is Deviceless's embedded MQTT broker: mochi-mqtt (MQTT 3.1.1 and 5)
// with TCP, TLS and WebSocket listeners, authentication and ACLs from the config, a
// persistent store, per-client limits, $SYS topics, Prometheus metrics, and an
// in-process path for the engine.
//
//	srv, err := broker.New(cfg, logger)           // validates everything, binds nothing
//	events, err := srv.Intake("rules", broker.IntakeOptions{Filters: []string{"#"}})
//	go srv.Run(ctx)                               // blocks until ctx ends, then cleans up
//	<-srv.Ready()
//	ev, err := events.Next(ctx)                   // or NextBatch
//	err = srv.Publish(broker.Message{Topic: "deviceless/agents/a1/invoke", QoS: 1, ...})
//	registry.MustRegister(srv.Collector())
//
// # Roles
//
// Every user has a role; the prefix (default "deviceless") is the protected zone, and
// every role reads and writes topics outside it:
//
//	device  outside the prefix only
//	agent   + reads {prefix}/agents/{username}/#, writes its own .../status and .../result
//	client  + writes {prefix}/invoke/#, reads {prefix}/results/#
//	admin   everything
//
// $SYS topics are readable by everyone and writable by nobody. A subscription is granted
// when its filter can match a topic the role may read, and every delivery is checked again
// against the concrete topic, so "#" gives a device only what lies outside the prefix. A
// last-will topic must be writable by the user, or the connection is refused. A client id
// belongs to the user whose session holds it: another user cannot take it over.
//
// # Persistence
//
// With Config.Store set, mochi's pebble storage hook keeps sessions, subscriptions,
// retained messages and in-flight / queued QoS 1-2 messages in that directory.
// Pebble rather than bolt, badger or redis: mochi calls storage hooks synchronously on
// the publishing client's read loop; bolt commits (and fsyncs) one transaction per message,
// so a few offline persistent subscribers would throttle every publisher to disk speed.
// Pebble appends to a write-ahead log, fsynced per write by default (store_sync, group
// commit), and stays crash-consistent on power loss, where bolt with syncing off may
// corrupt its file.
// Badger's mochi hook leaks its GC goroutine on Stop and needs far more memory; redis is
// a separate server. With store_sync: false pebble keeps the last log block in memory:
// a crash (even SIGKILL of the process) loses those writes; a clean stop loses nothing.
//
// # Intake: the engine's path
//
// An Intake is an in-process subscription (mochi inline subscription): a published message
// is handed to it on the publisher's read loop by appending to a queue, never blocking.
// When the consumer is behind by more than the intake's buffer, QoS 0 events are shed and
// counted; QoS 1 and 2 events are never shed and queue beyond the buffer (memory is the
// bound; watch deviceless_broker_intake_backlog). See Intake.
//
// # Limits
//
// See Limits: packet size (the offender alone is disconnected), receive maximum, per-client
// queue (mochi issue #340: a client that is offline or does not acknowledge keeps at most
// max_queued QoS>0 messages; further ones are dropped and counted instead of piling up),
// outbound buffer for slow readers, connect timeout, keepalive cap and session expiry.
// Client-id takeover follows MQTT (the new connection wins and inherits the session) when
// the same user connects again.
package broker
