package mqtt

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// Deviceless patch 16: the subscribers of a topic are kept until a subscription changes.

func subscriberIDs(subs *Subscribers) []string {
	ids := []string{}
	for id := range subs.Subscriptions {
		ids = append(ids, id)
	}
	for _, in := range subs.InlineSubscriptions {
		ids = append(ids, fmt.Sprintf("inline-%d", in.Identifier))
	}
	sort.Strings(ids)
	return ids
}

func TestPublishSubscribersCache(t *testing.T) {
	x := NewTopicsIndex()
	require.True(t, x.Subscribe("cl1", packets.Subscription{Filter: "a/b"}))
	subs, release := x.publishSubscribers("a/b")
	require.False(t, release)
	require.Equal(t, []string{"cl1"}, subscriberIDs(subs))
	again, _ := x.publishSubscribers("a/b")
	require.Same(t, subs, again, "the second publish to the topic takes the kept value")

	// Every change of subscriptions is seen by the next publish.
	require.True(t, x.Subscribe("cl2", packets.Subscription{Filter: "a/+"}))
	subs, _ = x.publishSubscribers("a/b")
	require.Equal(t, []string{"cl1", "cl2"}, subscriberIDs(subs))
	require.True(t, x.Unsubscribe("a/b", "cl1"))
	subs, _ = x.publishSubscribers("a/b")
	require.Equal(t, []string{"cl2"}, subscriberIDs(subs))
	require.True(t, x.InlineSubscribe(InlineSubscription{Subscription: packets.Subscription{Filter: "#", Identifier: 7}, Handler: func(*Client, packets.Subscription, packets.Packet) {}}))
	subs, _ = x.publishSubscribers("a/b")
	require.Equal(t, []string{"cl2", "inline-7"}, subscriberIDs(subs))
	require.True(t, x.InlineUnsubscribe(7, "#"))
	subs, _ = x.publishSubscribers("a/b")
	require.Equal(t, []string{"cl2"}, subscriberIDs(subs))
	require.True(t, x.Subscribe("cl3", packets.Subscription{Filter: "a/b", Qos: 1}))
	require.True(t, x.Subscribe("cl3", packets.Subscription{Filter: "a/b", Qos: 2}) == false, "a changed subscription is not new")
	subs, _ = x.publishSubscribers("a/b")
	require.Equal(t, byte(2), subs.Subscriptions["cl3"].Qos, "a subscription changed in place is seen too")

	// Shared subscriptions are selected per publish: not kept.
	require.True(t, x.Subscribe("cl4", packets.Subscription{Filter: SharePrefix + "/g/a/b"}))
	s1, r1 := x.publishSubscribers("a/b")
	s2, r2 := x.publishSubscribers("a/b")
	require.False(t, r1 || r2)
	require.NotSame(t, s1, s2)
	require.NotEmpty(t, s1.Shared)

	// Beyond the cache's size new topics take the pooled path, until the next change.
	y := NewTopicsIndex()
	require.True(t, y.Subscribe("cl1", packets.Subscription{Filter: "#"}))
	for i := 0; i < subscribersCacheMax; i++ {
		_, release := y.publishSubscribers(fmt.Sprintf("t/%d", i))
		require.False(t, release)
	}
	subs, release = y.publishSubscribers("t/new")
	require.True(t, release, "a full cache takes no new topic")
	require.Equal(t, []string{"cl1"}, subscriberIDs(subs))
	y.releaseSubscribers(subs)
	kept, release := y.publishSubscribers("t/1")
	require.False(t, release, "what the cache holds is still served from it")
	require.Equal(t, []string{"cl1"}, subscriberIDs(kept))
	require.True(t, y.Subscribe("cl2", packets.Subscription{Filter: "t/new"}))
	subs, release = y.publishSubscribers("t/new")
	require.False(t, release, "a change of subscriptions empties the cache")
	require.Equal(t, []string{"cl1", "cl2"}, subscriberIDs(subs))
	require.LessOrEqual(t, y.cache.Load().n.Load(), int64(1))
}

// Publishers on many goroutines while subscriptions change: once Subscribe returns, every
// later publish sees it (run with -race).
func TestPublishSubscribersCacheConcurrent(t *testing.T) {
	x := NewTopicsIndex()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				subs, release := x.publishSubscribers("a/b")
				_ = len(subs.Subscriptions)
				if release {
					x.releaseSubscribers(subs)
				}
			}
		}()
	}
	for i := 0; i < 500; i++ {
		id := fmt.Sprintf("cl%d", i)
		require.True(t, x.Subscribe(id, packets.Subscription{Filter: "a/b"}))
		subs, _ := x.publishSubscribers("a/b")
		require.Contains(t, subs.Subscriptions, id, "round %d", i)
		require.True(t, x.Unsubscribe("a/b", id))
		subs, _ = x.publishSubscribers("a/b")
		require.NotContains(t, subs.Subscriptions, id, "round %d", i)
	}
	close(stop)
	wg.Wait()
}
