package server

import (
	"bytes"
	"fmt"

	"github.com/paxtest/paxtest/target/paxos"
)

// maxViolations bounds the violations a node keeps to report.
const maxViolations = 32

// monitor checks, while the node runs, the invariants of PROTOCOL.md that a
// node can see of itself — the ones the simulation checks after every
// step: its promise never decreases; a slot's chosen value never changes;
// chosen slots apply strictly in order, each with the value recorded
// chosen for it. It sits between the core and the world on the loop
// goroutine and uses none of the core's own comparisons, so a wrong core
// cannot hide from it. A violation is logged and reported on
// /debug/status for the harness.
type monitor struct {
	promised   paxos.Ballot
	applied    uint64
	chosen     map[uint64]paxos.Entry
	violations []string
	count      int
}

// newMonitor starts from what the write-ahead log held.
func newMonitor(recs []paxos.Record) *monitor {
	m := &monitor{chosen: map[uint64]paxos.Entry{}}
	for _, r := range recs {
		if r.Type == paxos.RecChosen {
			if _, ok := m.chosen[r.Slot]; !ok {
				m.chosen[r.Slot] = r.Entry
			}
		}
	}
	return m
}

func (m *monitor) violate(format string, args ...any) string {
	v := fmt.Sprintf(format, args...)
	m.count++
	if len(m.violations) < maxViolations {
		m.violations = append(m.violations, v)
	}
	return v
}

// ready checks what one Ready hands out, and the promise after it; it
// returns the violations found.
func (m *monitor) ready(rd paxos.Ready, promised paxos.Ballot) []string {
	var out []string
	for _, r := range rd.Records {
		if r.Type != paxos.RecChosen {
			continue
		}
		if prev, ok := m.chosen[r.Slot]; ok && !sameEntry(prev, r.Entry) {
			out = append(out, m.violate("stability: slot %d recorded chosen as %s, then as %s", r.Slot, show(prev), show(r.Entry)))
			continue
		}
		m.chosen[r.Slot] = r.Entry
	}
	for _, a := range rd.Apply {
		if a.Slot != m.applied+1 {
			out = append(out, m.violate("prefix: applied slot %d after slot %d", a.Slot, m.applied))
		}
		m.applied = a.Slot
		c, ok := m.chosen[a.Slot]
		switch {
		case !ok:
			out = append(out, m.violate("prefix: applied slot %d (%s), which was never recorded chosen", a.Slot, show(a.Entry)))
		case !sameEntry(c, a.Entry):
			out = append(out, m.violate("prefix: applied %s at slot %d, recorded chosen as %s", show(a.Entry), a.Slot, show(c)))
		}
	}
	if ballotBelow(promised, m.promised) {
		out = append(out, m.violate("promise monotonic: promised %s after %s", promised, m.promised))
	} else {
		m.promised = promised
	}
	return out
}

func sameEntry(a, b paxos.Entry) bool { return a.Kind == b.Kind && bytes.Equal(a.Data, b.Data) }

func ballotBelow(a, b paxos.Ballot) bool {
	return a.Round < b.Round || (a.Round == b.Round && a.Node < b.Node)
}

func show(e paxos.Entry) string {
	const most = 80
	d := string(e.Data)
	if len(d) > most {
		d = d[:most] + "…"
	}
	return fmt.Sprintf("%q", d)
}
