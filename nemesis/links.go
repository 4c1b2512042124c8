package nemesis

import (
	"context"
	"fmt"

	"github.com/paxtest/paxtest/nemesis/fault"
)

// SlowLinks makes the links of a node drawn at random harsh: one way
// (what it sends: one-way slowness) or both, each byte held 50–300 ms
// plus up to half that again at random, and half the time paced to
// 32–512 KB a second. Stop clears it. It needs a fault layer that can
// delay links (--net proxy); under iptables it notes that it skipped.
type SlowLinks struct{}

// Name is the --nemesis value.
func (*SlowLinks) Name() string { return "slow-links" }

// MinNodes: a link needs two nodes.
func (*SlowLinks) MinNodes() int { return 2 }

// Start slows one node's links.
func (*SlowLinks) Start(ctx context.Context, x *Exec) error {
	if !x.CanDelay() {
		x.Note("slow-links", 0, "slow-links skipped: this fault layer cannot delay links; use --net proxy")
		return nil
	}
	node, ok := drawNode(x)
	if !ok {
		return nil
	}
	both := x.Rand.Intn(2) == 0
	ms := 50 + x.Rand.Int63n(251)
	op := fault.Op{F: fault.Delay, Links: nodeLinks(x, node, both), Ms: ms, JitterMs: x.Rand.Int63n(ms/2 + 1), Source: "slow-links"}
	if x.Rand.Intn(2) == 0 {
		op.Rate = (32 << 10) << x.Rand.Intn(5)
	}
	_, err := x.Perform(ctx, op)
	return err
}

// Stop clears every delay.
func (*SlowLinks) Stop(ctx context.Context, x *Exec) error {
	if !x.CanDelay() {
		return nil
	}
	_, err := x.Perform(ctx, fault.Op{F: fault.Delay, Source: "slow-links"})
	return err
}

// ResetLinks closes every connection to and from a node drawn at random,
// mid-stream; the links stay open and the nodes connect again. It is
// over at once: Stop does nothing. Under a fault layer that cannot reset
// (iptables) it notes that it skipped.
type ResetLinks struct{}

// Name is the --nemesis value.
func (*ResetLinks) Name() string { return "reset-links" }

// MinNodes: a link needs two nodes.
func (*ResetLinks) MinNodes() int { return 2 }

// Start resets one node's connections.
func (*ResetLinks) Start(ctx context.Context, x *Exec) error {
	if !x.CanReset() {
		x.Note("reset-links", 0, "reset-links skipped: this fault layer cannot reset connections; use --net proxy")
		return nil
	}
	node, ok := drawNode(x)
	if !ok {
		return nil
	}
	_, err := x.Perform(ctx, fault.Op{F: fault.Reset, Links: nodeLinks(x, node, true), Source: "reset-links"})
	return err
}

// Stop: a reset is over once done.
func (*ResetLinks) Stop(context.Context, *Exec) error { return nil }

// drawNode draws one node in play.
func drawNode(x *Exec) (int, bool) {
	ids := x.Cluster.IDs()
	if len(ids) < 2 {
		x.Note("links", 0, fmt.Sprintf("no link to fault among %v", ids))
		return 0, false
	}
	return ids[x.Rand.Intn(len(ids))], true
}

// nodeLinks are the directed links from node to every other node in
// play, and (both) back.
func nodeLinks(x *Exec, node int, both bool) [][2]int {
	var out [][2]int
	for _, id := range x.Cluster.IDs() {
		if id == node {
			continue
		}
		out = append(out, [2]int{node, id})
		if both {
			out = append(out, [2]int{id, node})
		}
	}
	return out
}

// Corruption damages a node's synced data as Jepsen's bitflip and
// truncate nemeses do: it kills a node drawn at random, flips one bit
// (three times in four) or cuts a file short, at a random place in a
// random file of those the system checks for damage, and starts it again.
// A node that notices must stop rather than serve; it stays down, and the
// run says which node, which file and why, until Stop takes the damage
// back (the node has not run since) and starts it again. It damages no
// node once so many refused to start that one more would leave no
// majority.
//
// FlipsOnly draws bit flips alone, as --nemesis all does: a file cut at a
// record's end reads as records never written, which no checksum can tell
// from a clean crash; that damage is asked for by name.
type Corruption struct {
	FlipsOnly bool
	// Optional: where no node data can be damaged, it is skipped with a
	// note (the mix of all), not refused (the kind asked for by name).
	Optional bool
	stuck    map[int]bool // nodes whose damage could not be taken back
}

// Name is the --nemesis value.
func (*Corruption) Name() string { return "corrupt" }

// NeedsLocalData: corrupt asked for by name damages files on this machine.
func (c *Corruption) NeedsLocalData() bool { return !c.Optional }

// Start damages one node's data.
func (c *Corruption) Start(ctx context.Context, x *Exec) error {
	if !x.CanCorrupt() {
		x.Note("corrupt", 0, "corrupt skipped: the system names no files it checks for damage (an exec system names them in checked_files), or its data is on other hosts (--hosts ssh)")
		return nil
	}
	ids := x.Cluster.IDs()
	var up []int
	stopped := 0
	for _, id := range ids {
		if x.damaged[id] && x.Cluster.IsDown(id) {
			stopped++
		} else {
			up = append(up, id)
		}
	}
	if len(up) == 0 || 2*(stopped+1) >= len(ids) {
		x.Note("corrupt", 0, fmt.Sprintf("no damage: %d of %d nodes are down on damaged data", stopped, len(ids)))
		return nil
	}
	node := up[x.Rand.Intn(len(up))]
	kind := fault.BitFlip
	if !c.FlipsOnly && x.Rand.Intn(4) == 0 {
		kind = fault.Truncate
	}
	return c.perform(ctx, x, []fault.Op{
		{F: fault.Kill, Nodes: []int{node}},
		{F: fault.Corrupt, Node: node, Damage: &fault.Damage{Kind: kind, Offset: -1}},
		{F: fault.Restart, Nodes: []int{node}},
	})
}

// Stop takes back the damage of every node that refused to start on it,
// and starts them again; damage a node started on stays, and so does a
// node whose damage cannot be taken back (it changed the file). A node
// that started on damaged data and exited since is started again.
func (c *Corruption) Stop(ctx context.Context, x *Exec) error {
	for _, id := range x.Cluster.IDs() {
		if x.damaged[id] && !x.stopped[id] && !c.stuck[id] && x.Cluster.IsDown(id) {
			// it started on its damaged data and exited since, having
			// changed its files: start it again (refusing, it stays down)
			if err := c.perform(ctx, x, []fault.Op{{F: fault.Restart, Nodes: []int{id}}}); err != nil {
				return err
			}
			continue
		}
		if !x.stopped[id] || c.stuck[id] {
			continue
		}
		if _, err := x.Perform(ctx, fault.Op{F: fault.Repair, Node: id, Source: "corrupt"}); err != nil {
			return err
		}
		if x.stopped[id] { // not taken back: the op's note says why
			if c.stuck == nil {
				c.stuck = map[int]bool{}
			}
			c.stuck[id] = true
			continue
		}
		if err := c.perform(ctx, x, []fault.Op{{F: fault.Restart, Nodes: []int{id}}}); err != nil {
			return err
		}
	}
	return nil
}

func (*Corruption) perform(ctx context.Context, x *Exec, ops []fault.Op) error {
	for _, op := range ops {
		op.Source = "corrupt"
		if _, err := x.Perform(ctx, op); err != nil {
			return err
		}
	}
	return nil
}
