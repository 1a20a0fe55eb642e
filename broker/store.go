package broker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	pebbledb "github.com/cockroachdb/pebble"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/pebble"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
)

// storeHook is mochi's pebble storage hook, made safe against writes that race with
// shutdown: mochi's $SYS loop and engine publishes may still call a storage method while
// the server closes, and pebble panics on a closed database. After Stop every write is
// ignored.
type storeHook struct {
	*pebble.Hook
	mu     sync.RWMutex
	closed bool
}

func newStoreHook() *storeHook { return &storeHook{Hook: new(pebble.Hook)} }

// storeOptions configures pebble for a small edge store: a 4 MiB memtable, an 8 MiB block
// cache, and our logger instead of pebble's stderr one.
func storeOptions(dir string, sync bool, log *slog.Logger) (*pebble.Options, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store %q: %w", dir, err)
	}
	mode := pebble.NoSync
	if sync {
		mode = pebble.Sync
	}
	return &pebble.Options{
		Path: dir,
		Mode: mode,
		Options: &pebbledb.Options{
			Logger: pebbleLogger{log.With("component", "store")},
		},
	}, nil
}

func (h *storeHook) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	return h.Hook.Stop()
}

// guard runs f unless the store is closed.
func (h *storeHook) guard(f func()) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if !h.closed {
		f()
	}
}

func (h *storeHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.guard(func() { h.Hook.OnSessionEstablished(cl, pk) })
}
func (h *storeHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.guard(func() { h.Hook.OnWillSent(cl, pk) })
}
func (h *storeHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.guard(func() { h.Hook.OnDisconnect(cl, err, expire) })
}

// The intakes' inline subscriptions are not stored: the intakes subscribe again at every
// start, and mochi would restore a stored one as an ordinary subscription of its inline
// client, which the ACL then refuses on every delivery.
func (h *storeHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	h.guard(func() { h.Hook.OnSubscribed(cl, pk, codes) })
}
func (h *storeHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.guard(func() { h.Hook.OnUnsubscribed(cl, pk) })
}
func (h *storeHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	h.guard(func() { h.Hook.OnRetainMessage(cl, pk, r) })
}

// OnQosPublish and OnQosComplete skip the PUBACK mochi holds for an incoming QoS 1
// publish while it writes it: two synced writes per message (store, then delete) for a
// record whose only use after a crash would be to acknowledge a message that was never
// delivered (the durable intake journals what the engine needs). Our mochi fork hands
// these hooks the record each flow holds, never the client's acknowledgement
// (third_party/mochi-mqtt-server/PATCHES.md), so a PUBACK here is always the broker's own
// answer to an incoming publish; a client's PUBACK completes the broker's PUBLISH record.
func (h *storeHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback {
		return
	}
	h.guard(func() { h.Hook.OnQosPublish(cl, pk, sent, resends) })
}
func (h *storeHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Puback {
		return
	}
	h.guard(func() { h.Hook.OnQosComplete(cl, pk) })
}

// dropInlineSubscriptions removes the inline client's subscriptions that earlier versions
// stored (and that a crash left in the store), from mochi's topics and from the store.
func (h *storeHook) dropInlineSubscriptions(srv *mqtt.Server) {
	cl, ok := srv.Clients.Get(mqtt.InlineClientId)
	if !ok {
		return
	}
	for filter := range cl.State.Subscriptions.GetAll() {
		srv.Topics.Unsubscribe(filter, cl.ID)
		cl.State.Subscriptions.Delete(filter)
		h.guard(func() {
			h.Hook.OnUnsubscribed(cl, packets.Packet{Filters: packets.Subscriptions{{Filter: filter}}})
		})
	}
}

func (h *storeHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.guard(func() { h.Hook.OnQosDropped(cl, pk) })
}
func (h *storeHook) OnSysInfoTick(info *system.Info) {
	h.guard(func() { h.Hook.OnSysInfoTick(info) })
}
func (h *storeHook) OnClientExpired(cl *mqtt.Client) {
	h.guard(func() { h.Hook.OnClientExpired(cl) })
}
func (h *storeHook) OnRetainedExpired(filter string) {
	h.guard(func() { h.Hook.OnRetainedExpired(filter) })
}

// pebbleLogger sends pebble's log to slog; its chatter (flushes, compactions) is debug.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf must not return (pebble's contract): the store is unusable, so panic rather than
// exit the whole process from a library.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic("broker store: " + msg)
}

// quietHandler hands mochi's log to ours one level quieter: mochi logs every hook, listener
// and client event at info and per-message conditions (queue full, packet errors) at warn;
// those become debug, since the metrics count them.
type quietHandler struct{ h slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= slog.LevelError {
		return q.h.Enabled(ctx, l)
	}
	return q.h.Enabled(ctx, slog.LevelDebug)
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		r.Level = slog.LevelDebug
	}
	if !q.h.Enabled(ctx, r.Level) {
		return nil
	}
	return q.h.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler { return quietHandler{q.h.WithAttrs(as)} }
func (q quietHandler) WithGroup(name string) slog.Handler    { return quietHandler{q.h.WithGroup(name)} }
