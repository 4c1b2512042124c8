// Package bugs names the target's bug switches. Each switch is a deliberate
// departure from ../shared/PROTOCOL.md, off by default, that enables real
// wrong code on a real path (the code sits beside the rule it breaks, marked
// "BUG SWITCH"). This package only parses and documents them; it must not
// contain protocol logic.
package bugs

import (
	"fmt"
	"sort"
	"strings"
)

// Set says which switches are on for a node. The zero Set is the correct build.
type Set struct {
	ReconfirmOldBallot    bool
	CommitStaleAcks       bool
	NoFsync               bool
	WriteNoFsync          bool
	VolatilePromise       bool
	PrepareOmitsCommitted bool
	StaleRead             bool
	ConfigImmediate       bool
}

// Switch documents one bug switch.
type Switch struct {
	Name     string
	Rule     string // the PROTOCOL.md rule it breaks
	Breaks   string // the invariant that fails
	Symptom  string // what a checker sees
	Schedule string // a schedule that exposes it
	Summary  string // what goes wrong, in a line (the README's table)
	// Nemeses are the --nemesis values expected to expose it, the best
	// first ("+" joins kinds: membership+partition), on a cluster of Nodes:
	// bench detect, the CI gate and soak's self-check all run from here.
	Nemeses []string
	Nodes   int
	set     func(*Set)
	get     func(Set) bool
}

// switches is the table of every switch; All hands out copies.
var switches = []Switch{
	{
		Name:     "reconfirm-old-ballot",
		Rule:     "5, 6",
		Breaks:   "agreement: a recovered entry is stored with its original ballot yet counted as chosen at the new ballot",
		Symptom:  "committed-then-overwritten: a slot acknowledged as X is later chosen as Y (Raft Figure 8)",
		Schedule: "the seeds' stages 1-5 (--nemesis figure8): an entry accepted on a minority, a competing entry at a higher ballot, the old leader back copying its entry to a majority, then the competing node elected",
		Summary:  "recovered entries keep their original ballot yet count as chosen at the new one (Raft Figure 8)",
		Nemeses:  []string{"figure8"},
		Nodes:    5,
		set:      func(s *Set) { s.ReconfirmOldBallot = true },
		get:      func(s Set) bool { return s.ReconfirmOldBallot },
	},
	{
		Name:     "commit-stale-acks",
		Rule:     "6",
		Breaks:   "agreement: the ack tally is keyed by slot only and survives a ballot change, so acks for another value count",
		Symptom:  "committed-then-overwritten after a node regains leadership and recovery changed a slot's value",
		Schedule: "repeated leader kills; a leader loses and regains leadership while a slot it proposed was re-proposed with another value",
		Summary:  "the ack tally is keyed by slot only and survives a ballot change: a deposed leader that regains leadership counts acks for another value",
		Nemeses:  []string{"figure8", "figure8-regain"},
		Nodes:    5,
		set:      func(s *Set) { s.CommitStaleAcks = true },
		get:      func(s Set) bool { return s.CommitStaleAcks },
	},
	{
		Name:     "no-fsync",
		Rule:     "1, 2",
		Breaks:   "durability: promises and accepts leave the node before their WAL records are synced; kill -9 loses them",
		Symptom:  "acknowledged-write-lost or committed-then-overwritten after kill -9",
		Schedule: "kill -9 the leader and a follower of a 3-node cluster under steady writes, the third cut off (--nemesis crash-quorum)",
		Summary:  "replies leave before the WAL buffer is synced (~100 ms group flush); kill -9 loses the buffer",
		Nemeses:  []string{"crash-quorum", "kill"},
		Nodes:    3,
		set:      func(s *Set) { s.NoFsync = true },
		get:      func(s Set) bool { return s.NoFsync },
	},
	{
		Name:     "write-no-fsync",
		Rule:     "1, 2",
		Breaks:   "durability: WAL records are written to the kernel but never fsynced; a power loss drops them although replies went out",
		Symptom:  "acknowledged-write-lost or committed-then-overwritten after a power loss; nothing under kill -9 (the page cache survives a process)",
		Schedule: "power loss (kill, unsynced writes dropped, restart) of a majority of a 3-node cluster on the lazy disk (--disk lazy --nemesis power-loss)",
		Summary:  "WAL records are written but never fsynced: kill -9 loses nothing, a power loss (--disk lazy) loses them",
		Nemeses:  []string{"power-loss"},
		Nodes:    3,
		set:      func(s *Set) { s.WriteNoFsync = true },
		get:      func(s Set) bool { return s.WriteNoFsync },
	},
	{
		Name:     "volatile-promise",
		Rule:     "1",
		Breaks:   "promise monotonic: the promised ballot is not persisted and restarts at zero",
		Symptom:  "two values chosen for one slot once a restarted acceptor accepts from a deposed leader",
		Schedule: "bridge partition; kill and restart the bridge node while the old leader still takes writes",
		Summary:  "the promised ballot is not persisted: a restarted acceptor promises again from zero",
		Nemeses:  []string{"bridge-restart", "partition+kill"},
		Nodes:    5,
		set:      func(s *Set) { s.VolatilePromise = true },
		get:      func(s Set) bool { return s.VolatilePromise },
	},
	{
		Name:     "prepare-omits-committed",
		Rule:     "1, 5",
		Breaks:   "agreement: promises leave chosen slots out and hide them from the commit point, so a new leader refills them",
		Symptom:  "committed-then-overwritten: a chosen slot re-proposed as a no-op or a new command",
		Schedule: "isolate one node until it lags, heal, kill the leader so the lagging node can win",
		Summary:  "promises leave chosen slots out: a lagging node that wins an election refills them",
		Nemeses:  []string{"elect-lagging", "partition+leader-kill"},
		Nodes:    5,
		set:      func(s *Set) { s.PrepareOmitsCommitted = true },
		get:      func(s Set) bool { return s.PrepareOmitsCommitted },
	},
	{
		Name:     "stale-read",
		Rule:     "10",
		Breaks:   "linearizable reads: a leader answers reads from its applied state without a log entry or a quorum round",
		Symptom:  "a non-linearizable history: a read misses a write acknowledged before it began",
		Schedule: "partition the peer links so an old leader is isolated while clients still reach it",
		Summary:  "a leader answers reads locally without confirming it still leads",
		Nemeses:  []string{"zombie-leader", "leader-pause"},
		Nodes:    5,
		set:      func(s *Set) { s.StaleRead = true },
		get:      func(s Set) bool { return s.StaleRead },
	},
	{
		Name:     "config-immediate",
		Rule:     "8",
		Breaks:   "agreement: a configuration entry chosen at slot i decides slot i + 1 on, while leaders that do not know slot i yet still decide those slots with the old configuration",
		Symptom:  "committed-then-overwritten: two disjoint majorities, of the old and the new configuration, choose different values for one slot",
		Schedule: "a replace chosen just as the configuration splits in two: the leader and the new node on one side, the two nodes that never heard the replace is chosen on the other (--nemesis membership-split, three nodes)",
		Summary:  "a configuration entry chosen at slot i decides slot i + 1 on, not i + α",
		Nemeses:  []string{"membership-split", "membership"},
		Nodes:    3,
		set:      func(s *Set) { s.ConfigImmediate = true },
		get:      func(s Set) bool { return s.ConfigImmediate },
	},
}

// All lists every switch, in a stable order.
func All() []Switch { return append([]Switch(nil), switches...) }

// Table is the README's table of the switches, written from All.
func Table() string {
	var b strings.Builder
	b.WriteString("| switch | rule | what goes wrong | caught by (`--nemesis`, best first) | nodes |\n|---|---|---|---|---|\n")
	for _, sw := range All() {
		var nems []string
		for _, n := range sw.Nemeses {
			nems = append(nems, "`"+n+"`")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %d |\n", sw.Name, sw.Rule, sw.Summary, strings.Join(nems, ", "), sw.Nodes)
	}
	return b.String()
}

// Names returns the switch names in order.
func Names() []string {
	var out []string
	for _, s := range All() {
		out = append(out, s.Name)
	}
	return out
}

// Parse turns names (each possibly a comma-separated list) into a Set. An
// unknown name is an error that lists the accepted ones.
func Parse(names ...string) (Set, error) {
	var s Set
	for _, group := range names {
		for _, name := range strings.Split(group, ",") {
			name = strings.TrimSpace(name)
			if name == "" || name == "none" {
				continue
			}
			sw, ok := lookup(name)
			if !ok {
				return Set{}, fmt.Errorf("unknown bug switch %q (accepted: %s)", name, strings.Join(Names(), ", "))
			}
			sw.set(&s)
		}
	}
	return s, nil
}

// Enabled returns the names of the switches that are on, sorted.
func (s Set) Enabled() []string {
	var out []string
	for _, sw := range All() {
		if sw.get(s) {
			out = append(out, sw.Name)
		}
	}
	sort.Strings(out)
	return out
}

// String is the comma-separated list of enabled switches, or "none".
func (s Set) String() string {
	if e := s.Enabled(); len(e) > 0 {
		return strings.Join(e, ",")
	}
	return "none"
}

// Lookup finds a switch by name.
func Lookup(name string) (Switch, bool) { return lookup(name) }

func lookup(name string) (Switch, bool) {
	for _, sw := range All() {
		if sw.Name == name {
			return sw, true
		}
	}
	return Switch{}, false
}
