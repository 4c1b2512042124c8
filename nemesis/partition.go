package nemesis

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
)

// Partition shapes, named as Jepsen names them where it has them.
const (
	ShapeHalves         = "halves"          // two halves, the larger a majority (Jepsen's :majority)
	ShapeLeaderSide     = "leader-side"     // two halves, the leader in the smaller one
	ShapeMajoritiesRing = "majorities-ring" // every node sees a majority, each a different one
	ShapeBridge         = "bridge"          // two halves joined by one node that sees both
	ShapeOne            = "one"             // one random node isolated
	ShapeLeader         = "leader"          // the current leader isolated
	ShapeRandom         = "random"          // any of the above, drawn each time
)

// Shapes lists the accepted --partition values.
func Shapes() []string {
	return []string{ShapeHalves, ShapeLeaderSide, ShapeMajoritiesRing, ShapeBridge, ShapeOne, ShapeLeader, ShapeRandom}
}

// shapeWeights is how ShapeRandom draws: majority/minority splits first
// (a minority of two or more nodes is what a quorum off by one decides
// in), the leader on the minority side next (it keeps proposing there),
// then rings, bridges and single nodes.
var shapeWeights = []weighted{{ShapeHalves, 4}, {ShapeLeaderSide, 3}, {ShapeMajoritiesRing, 2}, {ShapeBridge, 2}, {ShapeOne, 1}, {ShapeLeader, 1}}

// needsLeader reports whether a shape is drawn around the current leader.
func needsLeader(shape string) bool {
	return shape == ShapeLeader || shape == ShapeLeaderSide || shape == ShapeRandom
}

// ValidShape checks a --partition value.
func ValidShape(s string) error {
	for _, v := range Shapes() {
		if s == v {
			return nil
		}
	}
	return fmt.Errorf("unknown partition shape %q (accepted: %s)", s, strings.Join(Shapes(), ", "))
}

// Cut is a partition: the directed links to block, the nodes on the
// minority side (for the history) and a description.
type Cut struct {
	Shape   string
	Links   [][2]int
	Targets []int
	Detail  string
}

// MakeCut builds a partition of ids of the given shape. leader is the
// current leader's id (0 if unknown; ShapeLeader then isolates a random node).
func MakeCut(shape string, ids []int, leader int, r *rand.Rand) Cut {
	ids = append([]int(nil), ids...)
	sort.Ints(ids)
	if shape == ShapeRandom {
		shape = draw(r, shapeWeights)
	}
	shuffled := append([]int(nil), ids...)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	connected := func(a, b int) bool { return true }
	var targets []int
	switch shape {
	case ShapeHalves, ShapeLeaderSide:
		if shape == ShapeLeaderSide && leader != 0 {
			// the leader first, so that it lands on the smaller side
			for i, id := range shuffled {
				if id == leader {
					shuffled[0], shuffled[i] = shuffled[i], shuffled[0]
				}
			}
		}
		minority := shuffled[:max(1, len(ids)/2)]
		in := set(minority)
		connected = func(a, b int) bool { return in[a] == in[b] }
		targets = minority
	case ShapeOne, ShapeLeader:
		victim := shuffled[0]
		if shape == ShapeLeader && leader != 0 {
			victim = leader
		}
		connected = func(a, b int) bool { return a != victim && b != victim }
		targets = []int{victim}
	case ShapeBridge:
		bridge := shuffled[0]
		rest := shuffled[1:]
		left := set(rest[:len(rest)/2])
		connected = func(a, b int) bool { return a == bridge || b == bridge || left[a] == left[b] }
		targets = []int{bridge}
	case ShapeMajoritiesRing:
		// Nodes on a ring each see their half = ⌈(n/2)/2⌉ nearest
		// neighbours on either side: 1 + 2*half is a majority, and no two
		// nodes see the same majority. Below five nodes no such ring
		// exists; the shape falls back to halves.
		n := len(shuffled)
		if n < 5 {
			return MakeCut(ShapeHalves, ids, leader, r)
		}
		pos := map[int]int{}
		for i, id := range shuffled {
			pos[id] = i
		}
		half := (n/2 + 1) / 2
		connected = func(a, b int) bool {
			d := (pos[a] - pos[b] + n) % n
			return min(d, n-d) <= half
		}
		targets = shuffled
	}
	var links [][2]int
	for _, a := range ids {
		for _, b := range ids {
			if a != b && !connected(a, b) {
				links = append(links, [2]int{a, b})
			}
		}
	}
	sort.Ints(targets)
	return Cut{Shape: shape, Links: links, Targets: targets, Detail: describe(shape, ids, links)}
}

func set(ids []int) map[int]bool {
	m := map[int]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// describe lists, per node, the peers it can still reach.
func describe(shape string, ids []int, links [][2]int) string {
	cut := map[[2]int]bool{}
	for _, l := range links {
		cut[l] = true
	}
	var parts []string
	for _, a := range ids {
		var sees []string
		for _, b := range ids {
			if a != b && !cut[[2]int{a, b}] {
				sees = append(sees, fmt.Sprintf("n%d", b))
			}
		}
		parts = append(parts, fmt.Sprintf("n%d sees [%s]", a, strings.Join(sees, " ")))
	}
	return shape + ": " + strings.Join(parts, "; ")
}
