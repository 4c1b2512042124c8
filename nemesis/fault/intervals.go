package fault

import (
	"fmt"
	"sort"
	"strings"
)

// Interval is a fault in force, from the op that started it to the op
// that ended it, or a scenario's attempt from its first op to its last.
type Interval struct {
	Kind       string // partition, delay, kill, pause, membership, or a scenario's name
	Start, End int64
	Nodes      []int
	Detail     string
	// Attempt: a scenario's attempt (Kind is its name), not one fault.
	Attempt bool
	// Links, of a partition: every link cut while it is in force.
	Links [][2]int
}

// Intervals pairs ops into the intervals the report shades: a partition
// lasts until the next partition or heal, a delay until delays are cleared,
// a node's kill until its restart, its pause until its resume, damage to
// its data until it is repaired; a membership change is a moment; a
// scenario's attempt spans its ops. A fault still in force at the end
// lasts until end.
func Intervals(ops []Op, end int64) []Interval {
	var out []Interval
	open := map[string]*Interval{}
	closeKey := func(k string, t int64) {
		if iv := open[k]; iv != nil {
			iv.End = t
			out = append(out, *iv)
			delete(open, k)
		}
	}
	attempts := spans{m: map[string]*span{}}
	for _, o := range ops {
		end = max(end, o.Time)
		attempts.add(o)
		switch o.F {
		case Partition:
			closeKey("partition", o.Time)
			if len(o.Links) > 0 {
				open["partition"] = &Interval{Kind: "partition", Start: o.Time, Nodes: o.Touched(), Detail: o.Describe(), Links: o.Links}
			}
		case Heal:
			closeKey("partition", o.Time)
			closeKey("delay", o.Time)
		case Delay:
			closeKey("delay", o.Time)
			if len(o.Links) > 0 {
				open["delay"] = &Interval{Kind: "delay", Start: o.Time, Nodes: o.Touched(), Detail: o.Describe()}
			}
		case Kill, Pause, PowerLoss:
			for _, id := range o.Nodes {
				k := fmt.Sprintf("%s n%d", o.F, id)
				if open[k] == nil {
					open[k] = &Interval{Kind: string(o.F), Start: o.Time, Nodes: []int{id}, Detail: o.Describe()}
				}
			}
		case Restart, Resume:
			for _, was := range map[F][]F{Restart: {Kill, PowerLoss}, Resume: {Pause}}[o.F] {
				for _, id := range o.Nodes {
					if !containsInt(o.NotStarted, id) { // still down
						closeKey(fmt.Sprintf("%s n%d", was, id), o.Time)
					}
				}
			}
		case Corrupt, Repair:
			// a note says the op changed nothing: no file to damage, or
			// damage that could not be taken back
			k := fmt.Sprintf("corrupt n%d", o.Node)
			if o.Note != "" {
				break
			}
			closeKey(k, o.Time)
			if o.F == Corrupt {
				open[k] = &Interval{Kind: string(o.F), Start: o.Time, Nodes: []int{o.Node}, Detail: o.Describe()}
			}
		case Members, Join, Retire, Reset: // instants
			kind := string(o.F)
			if o.F == Members || o.F == Join || o.F == Retire {
				kind = "membership"
			}
			out = append(out, Interval{Kind: kind, Start: o.Time, End: o.Time, Nodes: o.Touched(), Detail: o.Describe()})
		}
	}
	for _, iv := range open {
		iv.End = end
		out = append(out, *iv)
	}
	for _, k := range attempts.order {
		sp := attempts.m[k]
		sort.Ints(sp.iv.Nodes)
		sp.iv.Detail = strings.Join(sp.notes, "; ")
		out = append(out, sp.iv)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// spans are the scenarios' attempts, each an interval from its first op
// to its last, over every node its ops touched, with its notes.
type spans struct {
	m     map[string]*span
	order []string
}

type span struct {
	iv    Interval
	notes []string
}

func (s *spans) add(o Op) {
	if o.Attempt == 0 || o.Source == "" {
		return
	}
	k := fmt.Sprintf("%s#%d", o.Source, o.Attempt)
	sp := s.m[k]
	if sp == nil {
		sp = &span{iv: Interval{Kind: o.Source, Start: o.Time, Attempt: true}}
		s.m[k] = sp
		s.order = append(s.order, k)
	}
	sp.iv.End = o.Time
	if o.F == Note {
		sp.notes = append(sp.notes, o.Note)
	}
	for _, id := range o.Touched() {
		if !containsInt(sp.iv.Nodes, id) {
			sp.iv.Nodes = append(sp.iv.Nodes, id)
		}
	}
}

// Starts reports whether an op puts a fault in force (as opposed to
// lifting one, waiting or noting).
func (o Op) Starts() bool {
	switch o.F {
	case Partition, Delay:
		return len(o.Links) > 0
	case Kill, Pause, Members, Join, Retire, PowerLoss, Corrupt:
		return true
	case Reset:
		return len(o.Links) > 0
	}
	return false
}

// Lifts reports whether an op lifts a fault: a heal, a restart, a
// resume, a repair, or a cut or delay set to nothing.
func (o Op) Lifts() bool {
	switch o.F {
	case Heal, Restart, Resume, Repair:
		return true
	case Partition, Delay:
		return len(o.Links) == 0
	}
	return false
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
