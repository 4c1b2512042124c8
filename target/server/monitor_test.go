package server

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/paxos"
)

func cmdEntry(s string) paxos.Entry { return paxos.Entry{Kind: paxos.EntryCommand, Data: []byte(s)} }

func chosen(slot uint64, e paxos.Entry) paxos.Record {
	return paxos.Record{Type: paxos.RecChosen, Slot: slot, Entry: e}
}

func TestTheMonitorPassesACorrectNodeAndNamesEveryBrokenInvariant(t *testing.T) {
	b := func(r uint64, n paxos.NodeID) paxos.Ballot { return paxos.Ballot{Round: r, Node: n} }
	for _, tc := range []struct {
		name  string
		wal   []paxos.Record
		steps []paxos.Ready
		prom  []paxos.Ballot
		want  []string
	}{
		{"correct: records, then applies in order; the promise rises", []paxos.Record{chosen(1, cmdEntry("a"))},
			[]paxos.Ready{
				{Apply: []paxos.Applied{{Slot: 1, Entry: cmdEntry("a")}}},
				{Records: []paxos.Record{chosen(2, cmdEntry("b")), chosen(3, cmdEntry("c"))}, Apply: []paxos.Applied{{Slot: 2, Entry: cmdEntry("b")}, {Slot: 3, Entry: cmdEntry("c")}}},
			}, []paxos.Ballot{b(1, 1), b(2, 3)}, nil},
		{"promise decreases", nil, []paxos.Ready{{}, {}}, []paxos.Ballot{b(3, 2), b(2, 5)},
			[]string{"promise monotonic: promised 2.5 after 3.2"}},
		{"a slot applied out of order", nil,
			[]paxos.Ready{{Records: []paxos.Record{chosen(2, cmdEntry("b"))}, Apply: []paxos.Applied{{Slot: 2, Entry: cmdEntry("b")}}}},
			[]paxos.Ballot{{}}, []string{"prefix: applied slot 2 after slot 0"}},
		{"a slot applied that was never recorded chosen", nil,
			[]paxos.Ready{{Apply: []paxos.Applied{{Slot: 1, Entry: paxos.Entry{}}}}},
			[]paxos.Ballot{{}}, []string{`prefix: applied slot 1 (""), which was never recorded chosen`}},
		{"a slot applied with another value than chosen", nil,
			[]paxos.Ready{{Records: []paxos.Record{chosen(1, cmdEntry("a"))}, Apply: []paxos.Applied{{Slot: 1, Entry: cmdEntry("z")}}}},
			[]paxos.Ballot{{}}, []string{`prefix: applied "z" at slot 1, recorded chosen as "a"`}},
		{"a chosen value changes, restarts included", []paxos.Record{chosen(1, cmdEntry("a"))},
			[]paxos.Ready{{Records: []paxos.Record{chosen(1, cmdEntry("b"))}}},
			[]paxos.Ballot{{}}, []string{`stability: slot 1 recorded chosen as "a", then as "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMonitor(tc.wal)
			var got []string
			for i, rd := range tc.steps {
				got = append(got, m.ready(rd, tc.prom[i])...)
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, len(tc.want), m.count)
		})
	}
}
