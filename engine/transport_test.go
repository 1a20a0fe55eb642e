package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/deviceless/deviceless/broker"
)

// A batch acknowledges its events up to the highest sequence number, once per Commit;
// events without one (not journaled, QoS 0 on an external broker) need nothing. A batch
// cut short at shutdown acknowledges only the events evaluated: the rest come again.
func TestBatchCommitsUpToItsHighestSeq(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint64
		n    int // events evaluated; -1: all
		want []uint64
	}{
		{"in order", []uint64{4, 5, 6}, -1, []uint64{6}},
		{"with unjournaled events", []uint64{0, 7, 0}, -1, []uint64{7}},
		{"nothing to acknowledge", []uint64{0, 0}, -1, nil},
		{"empty", nil, -1, nil},
		{"cut short", []uint64{4, 5, 6}, 2, []uint64{5}},
		{"cut short after unjournaled events", []uint64{4, 0, 0, 5}, 3, []uint64{4}},
		{"cut short before any journaled event", []uint64{0, 8, 9}, 1, nil},
		{"none evaluated", []uint64{4, 5}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a recordingAcker
			var events []broker.Event
			for _, s := range tc.seqs {
				events = append(events, broker.Event{Seq: s})
			}
			n := tc.n
			if n < 0 {
				n = len(events)
			}
			if err := newBatch(events, &a).Commit(n); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, a.commits); diff != "" {
				t.Errorf("commits (-want +got):\n%s", diff)
			}
		})
	}
}

type recordingAcker struct{ commits []uint64 }

func (a *recordingAcker) commit(upTo uint64) error {
	a.commits = append(a.commits, upTo)
	return nil
}
