package nemesis

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/api"
	"github.com/paxtest/paxtest/target/quorum"
)

// Bindings are what a scenario's attempt has bound so far: roles to nodes,
// slot variables to slots (and the schedule index of the op that saw each).
type Bindings struct {
	Roles    map[string]int
	Slots    map[string]uint64
	observed map[string]int
}

// NewBindings returns empty bindings.
func NewBindings() *Bindings {
	return &Bindings{Roles: map[string]int{}, Slots: map[string]uint64{}, observed: map[string]int{}}
}

// String lists the bindings: "A=n3 L1=n1 X=slot 12".
func (b *Bindings) String() string {
	var names []string
	for r := range b.Roles {
		names = append(names, r)
	}
	sort.Strings(names)
	var out []string
	for _, r := range names {
		out = append(out, fmt.Sprintf("%s=n%d", r, b.Roles[r]))
	}
	var vars []string
	for v := range b.Slots {
		vars = append(vars, v)
	}
	sort.Strings(vars)
	for _, v := range vars {
		out = append(out, fmt.Sprintf("%s=slot %d", v, b.Slots[v]))
	}
	return strings.Join(out, " ")
}

// Nodes lists the bound nodes, sorted.
func (b *Bindings) Nodes() []int {
	seen := map[int]bool{}
	var out []int
	for _, id := range b.Roles {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Ints(out)
	return out
}

// Do resolves op's Sel against the live cluster (and b, for a scenario's
// roles; nil for none), then performs it. It is how every generated and
// scripted op runs.
func (x *Exec) Do(ctx context.Context, op fault.Op, b *Bindings) (fault.Op, error) {
	if b == nil {
		b = NewBindings()
	}
	r := resolver{x: x, b: b, ctx: ctx}
	sel := op.Sel
	if sel == nil {
		sel = &fault.Sel{}
	}
	switch op.F {
	case fault.AwaitLeader:
		return r.awaitLeader(op, sel)
	case fault.AwaitAccepted:
		return r.awaitAccepted(op, sel)
	case fault.Pick:
		return op, r.pick(sel)
	case fault.Sleep:
		sleep(ctx, time.Duration(op.Ms)*time.Millisecond)
		return op, nil
	case fault.Note:
		op.Note, op.Time = r.expand(op.Note), x.Now()
		x.finish(op, nil)
		return op, nil
	case fault.RequireMembers:
		return op, r.requireMembers(sel)
	case fault.Members:
		return r.members(op, sel)
	}
	op, perform, err := r.resolve(op, sel)
	if err != nil || !perform {
		return op, err
	}
	return x.Perform(ctx, op)
}

// resolve fills in the nodes, links or slot an op acts on. perform is
// false when there is nothing to do (said in a note).
func (r resolver) resolve(op fault.Op, sel *fault.Sel) (_ fault.Op, perform bool, err error) {
	x := r.x
	switch op.F {
	case fault.Partition:
		op.Links, err = r.cut(sel)
	case fault.Reset:
		op.Links, err = r.pairs(sel)
	case fault.Corrupt, fault.Repair:
		var ids []int
		if ids, err = r.set(sel.Set, nil); err == nil && len(ids) != 1 {
			err = fmt.Errorf("%s acts on one node, not %s", op.F, fault.Names(ids))
		}
		if err == nil {
			op.Node = ids[0]
		}
	case fault.Delay:
		if op.Links, err = r.pairs(sel); err == nil && !x.CanDelay() {
			// iptables only cuts links: go on without the delay, and say so
			x.Note(op.Source, op.Attempt, fmt.Sprintf("delay skipped (%s): this fault layer cannot delay links; use --net proxy", sel.Text))
			return op, false, nil
		}
	case fault.Kill, fault.Restart, fault.Pause, fault.Resume, fault.PowerLoss:
		if len(sel.Set) > 0 {
			if op.Nodes, err = r.set(sel.Set, nil); err != nil {
				return op, false, err
			}
		}
		if len(op.Nodes) == 0 {
			x.Note(op.Source, op.Attempt, fmt.Sprintf("%s: nobody to %s (%s)", op.F, op.F, strings.Join(sel.Set, " ")))
			return op, false, nil
		}
	case fault.AwaitCaughtUp:
		op.Nodes, err = r.set(sel.Set, nil)
	case fault.AwaitCommit:
		ids, err := r.set(sel.Set, nil)
		if err != nil {
			return op, false, err
		}
		slot, ok := r.b.Slots[sel.Slot]
		if !ok {
			return op, false, fmt.Errorf("slot %s is not bound yet (bind it with await-accepted)", sel.Slot)
		}
		op.Node, op.Slot, op.Ref = ids[0], slot, r.b.observed[sel.Slot]
	case fault.Join:
		if len(sel.Bind) > 0 {
			id, err := r.spare()
			if err != nil {
				return op, false, err
			}
			r.b.Roles[sel.Bind[0]] = id
			op.Node = id
		}
	case fault.Retire:
		if len(sel.Set) > 0 {
			op.Node, err = r.retired(&op, sel)
		}
	}
	return op, err == nil, err
}

// pairs are the links from every node of sel.Set to every node of sel.To.
func (r resolver) pairs(sel *fault.Sel) ([][2]int, error) {
	from, err := r.set(sel.Set, nil)
	if err != nil {
		return nil, err
	}
	to, err := r.set(sel.To, nil)
	if err != nil {
		return nil, err
	}
	var links [][2]int
	for _, f := range from {
		for _, t := range to {
			if f != t {
				links = append(links, [2]int{f, t})
			}
		}
	}
	return links, nil
}

// awaitAccepted waits until a node accepted a new entry (in a slot bound
// before, with "at"), and binds the slot after the commit point it saw.
func (r resolver) awaitAccepted(op fault.Op, sel *fault.Sel) (fault.Op, error) {
	ids, err := r.set(sel.Set, nil)
	if err != nil {
		return op, err
	}
	op.Node = ids[0]
	if sel.Slot != "" {
		slot, ok := r.b.Slots[sel.Slot]
		if !ok {
			return op, fmt.Errorf("slot %s is not bound yet (bind it with await-accepted)", sel.Slot)
		}
		op.Slot, op.Ref = slot, r.b.observed[sel.Slot]
	}
	op, index, err := r.x.do(r.ctx, op)
	if err != nil {
		return op, err
	}
	r.b.Slots[sel.Bind[0]] = op.Slot + 1
	r.b.observed[sel.Bind[0]] = index
	return op, nil
}

// requireMembers abandons the schedule unless the configuration has the
// size it needs and no change is in progress.
func (r resolver) requireMembers(sel *fault.Sel) error {
	st, err := r.config()
	if err != nil {
		return err
	}
	if len(st.Members) != sel.Count || len(st.Pending) > 0 {
		return abandon("the configuration is %v (pending %v); this schedule needs %d members and no change in progress", st.Members, st.Pending, sel.Count)
	}
	return nil
}

// members performs a membership change; one that is refused or fails
// abandons the schedule.
func (r resolver) members(op fault.Op, sel *fault.Sel) (fault.Op, error) {
	if sel.Change != nil {
		ch, err := r.change(sel.Change)
		if err != nil {
			return op, err
		}
		op.Change = ch
	}
	cctx, cancel := context.WithTimeout(r.ctx, r.x.within(&op, 5*time.Second))
	defer cancel()
	op, err := r.x.Perform(cctx, op)
	if err != nil {
		return op, abandon("%s: %v", fault.DescribeChange(op.Change.Op, op.Change.Node, op.Change.With), err)
	}
	if !op.Change.OK {
		return op, abandon("%s", op.Describe())
	}
	return op, nil
}

// retired is the node a retire acts on, once no configuration in effect
// or pending holds it.
func (r resolver) retired(op *fault.Op, sel *fault.Sel) (int, error) {
	ids, err := r.set(sel.Set, nil)
	if err != nil {
		return 0, err
	}
	id := ids[0]
	if !pollUntil(r.ctx, r.x.within(op, 5*time.Second), 20*time.Millisecond, func() bool {
		st, err := r.config()
		return err == nil && !contains(toInts(st.Members), id) && !contains(toInts(st.Pending), id)
	}) {
		return 0, abandon("n%d is still in a configuration in effect or pending", id)
	}
	return id, nil
}

type resolver struct {
	x   *Exec
	b   *Bindings
	ctx context.Context
}

func (r resolver) awaitLeader(op fault.Op, sel *fault.Sel) (fault.Op, error) {
	cands, err := r.set(sel.Set, nil)
	if err != nil {
		return op, err
	}
	role := ""
	if len(sel.Bind) > 0 {
		role = sel.Bind[0]
	}
	op.Nodes = cands
	want, bound := r.b.Roles[role]
	if bound {
		op.Nodes = []int{want} // wait for this one; another may still believe it leads
	}
	op, err = r.x.Perform(r.ctx, op)
	if err != nil {
		return op, err
	}
	if bound && want != op.Node {
		return op, abandon("n%d leads, not %s (n%d)", op.Node, role, want)
	}
	if role != "" {
		r.b.Roles[role] = op.Node
	}
	return op, nil
}

func (r resolver) pick(sel *fault.Sel) error {
	var pool []int
	if len(sel.Set) > 0 {
		var err error
		if pool, err = r.set(sel.Set, nil); err != nil {
			return err
		}
	}
	for _, role := range sel.Bind {
		cands := pool
		if len(sel.Set) == 0 {
			cands, _ = r.set([]string{"unbound"}, nil)
		}
		if len(cands) == 0 {
			return abandon("no node left to pick for %s", role)
		}
		r.b.Roles[role] = cands[r.x.Rand.Intn(len(cands))]
	}
	return nil
}

// cut resolves a partition: a shape, or groups (with rest), added to the
// cut in force for a script's cut.
func (r resolver) cut(sel *fault.Sel) ([][2]int, error) {
	ids := r.x.Cluster.IDs()
	if sel.Shape != "" {
		leader := 0
		if needsLeader(sel.Shape) {
			leader = r.x.Cluster.Leader(r.ctx)
		}
		return MakeCut(sel.Shape, ids, leader, r.x.Rand).Links, nil
	}
	named := map[int]bool{}
	for _, g := range sel.Groups {
		if index(g, "rest") >= 0 {
			continue
		}
		gs, err := r.set(g, nil)
		if err != nil {
			return nil, err
		}
		for _, id := range gs {
			named[id] = true
		}
	}
	var rest []int
	for _, id := range ids {
		if !named[id] {
			rest = append(rest, id)
		}
	}
	var groups [][]int
	for _, g := range sel.Groups {
		gs, err := r.set(g, rest)
		if err != nil {
			return nil, err
		}
		groups = append(groups, gs)
	}
	var links [][2]int
	if sel.Add {
		links = append(links, r.x.cut...)
	}
	for i := range groups {
		for j := i + 1; j < len(groups); j++ {
			links = append(links, cutBetween(groups[i], groups[j])...)
		}
	}
	return links, nil
}

// set resolves a set expression (fault.Sel.Set) against the cluster and
// the bindings; rest is "rest" inside a partition's groups.
func (r resolver) set(a []string, rest []int) ([]int, error) {
	c := r.x.Cluster
	in := map[int]bool{}
	var order []int
	bound := map[int]bool{}
	for _, id := range r.b.Roles {
		bound[id] = true
	}
	for _, t := range a {
		remove := strings.HasPrefix(t, "-")
		t = strings.TrimPrefix(t, "-")
		var ids []int
		switch {
		case t == "all":
			ids = c.IDs()
		case t == "unbound":
			for _, id := range c.IDs() {
				if !bound[id] {
					ids = append(ids, id)
				}
			}
		case t == "members":
			st, err := r.config()
			if err != nil {
				return nil, err
			}
			ids = toInts(st.Members)
		case t == "rest":
			if rest == nil {
				return nil, fmt.Errorf("rest is only meaningful in partition and cut")
			}
			ids = rest
		case t == "leader" || t == "followers":
			l := c.Leader(r.ctx)
			if l == 0 {
				return nil, abandon("no leader")
			}
			ids = []int{l}
			if t == "followers" {
				ids = without(c.IDs(), l)
			}
		case t == "one" || t == "minority" || t == "majority":
			ids = r.random(t)
		case isNodeName(t):
			id, err := strconv.Atoi(t[1:])
			if err != nil || !contains(c.IDs(), id) {
				return nil, fmt.Errorf("no node %s in this cluster", t)
			}
			ids = []int{id}
		default:
			id, ok := r.b.Roles[t]
			if !ok {
				return nil, fmt.Errorf("role %s is not bound yet", t)
			}
			ids = []int{id}
		}
		for _, id := range ids {
			switch {
			case remove:
				delete(in, id)
			case !in[id]:
				in[id] = true
				order = append(order, id)
			}
		}
	}
	var out []int
	for _, id := range order {
		if in[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// random draws one node, a minority (1 to ⌊(n-1)/2⌋) or a majority of the
// nodes in play, among those running (not down, not paused); fewer if
// fewer run.
func (r resolver) random(kind string) []int {
	c := r.x.Cluster
	ids := c.IDs()
	var live []int
	for _, id := range ids {
		if !c.IsDown(id) && !r.x.paused[id] {
			live = append(live, id)
		}
	}
	r.x.Rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	n := 1
	switch kind {
	case "minority":
		n = 1 + r.x.Rand.Intn(max(1, (len(ids)-1)/2))
	case "majority":
		n = quorum.Majority(len(ids))
	}
	out := append([]int(nil), live[:min(n, len(live))]...)
	sort.Ints(out)
	return out
}

// config is the leader's view of the configuration.
func (r resolver) config() (api.Status, error) {
	l := r.x.Cluster.Leader(r.ctx)
	if l == 0 {
		return api.Status{}, abandon("no leader to ask for the configuration")
	}
	st, err := r.x.Cluster.Status(r.ctx, l)
	if err != nil {
		return api.Status{}, abandon("status of the leader n%d: %v", l, err)
	}
	return st, nil
}

// spare picks a node out of play to start, first retiring the running
// nodes an earlier attempt removed (once no configuration holds them).
func (r resolver) spare() (int, error) {
	mc := r.x.Members
	if mc == nil {
		return 0, fmt.Errorf("spare needs a cluster with spare nodes")
	}
	if mc.AddedBeforeStart() {
		// the scripts start a spare before its addition, to learn the log
		return 0, abandon("this system starts a node only once it was added: a spare cannot start first")
	}
	st, err := r.config()
	if err != nil {
		return 0, err
	}
	if len(st.Pending) == 0 {
		for _, id := range r.x.Cluster.IDs() {
			if !contains(toInts(st.Members), id) {
				if _, err := r.x.Perform(r.ctx, fault.Op{F: fault.Retire, Node: id}); err != nil {
					return 0, err
				}
			}
		}
	}
	spares := mc.Spares()
	if len(spares) == 0 {
		return 0, abandon("no spare node out of play")
	}
	return spares[r.x.Rand.Intn(len(spares))], nil
}

func (r resolver) change(sc *fault.SelChange) (*fault.Change, error) {
	one := func(role string) (int, error) {
		ids, err := r.set([]string{role}, nil)
		if err != nil {
			return 0, err
		}
		return ids[0], nil
	}
	ch := &fault.Change{Op: sc.Op}
	var err error
	if ch.Node, err = one(sc.Node); err != nil {
		return nil, err
	}
	if sc.With != "" {
		if ch.With, err = one(sc.With); err != nil {
			return nil, err
		}
	}
	return ch, nil
}

// expand replaces {R} in a note by R's node and {S} by S's slot.
func (r resolver) expand(text string) string {
	for role, id := range r.b.Roles {
		text = strings.ReplaceAll(text, "{"+role+"}", fmt.Sprintf("n%d", id))
	}
	for v, s := range r.b.Slots {
		text = strings.ReplaceAll(text, "{"+v+"}", fmt.Sprintf("%d", s))
	}
	return text
}

func contains(ids []int, x int) bool {
	for _, id := range ids {
		if id == x {
			return true
		}
	}
	return false
}

func index(a []string, x string) int {
	for i, s := range a {
		if s == x {
			return i
		}
	}
	return -1
}

func isNodeName(x string) bool {
	if len(x) < 2 || x[0] != 'n' {
		return false
	}
	_, err := strconv.Atoi(x[1:])
	return err == nil
}
