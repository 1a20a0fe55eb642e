package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/deviceless/deviceless/broker"
)

// A batch acknowledges its events up to the highest sequence number, once per Commit;
// events without one (not journaled, QoS 0 on an external broker) need nothing.
func TestBatchCommitsUpToItsHighestSeq(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint64
		want []uint64
	}{
		{"in order", []uint64{4, 5, 6}, []uint64{6}},
		{"with unjournaled events", []uint64{0, 7, 0}, []uint64{7}},
		{"nothing to acknowledge", []uint64{0, 0}, nil},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a recordingAcker
			var events []broker.Event
			for _, s := range tc.seqs {
				events = append(events, broker.Event{Seq: s})
			}
			if err := newBatch(events, &a).Commit(); err != nil {
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
