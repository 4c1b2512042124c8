package nemesis

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/paxtest/paxtest/target/api"
)

// A Script is a fault schedule written as data: a list of steps over roles
// (L1, F1, carrier, …) that are bound against the live cluster while the
// script runs, so "cut off the leader and one follower" means the same
// thing whichever node leads. One pass through the steps is an attempt; an
// attempt whose roles do not line up (no leader in time, nothing to wait
// for) is abandoned and healed, and the next one starts.
//
// The language, one step per line ('#' starts a comment):
//
//	leader R [within D]            bind R to the current leader
//	pick R... [from SET]           bind each R to a random node of SET (default: the unbound nodes)
//	partition SET | SET [| SET]…   cut every link between the groups (replacing the cut); rest = the nodes in no other group
//	cut SET | SET                  cut the links between the groups too
//	delay SET -> SET D             every byte from the first set to the second is held for D (--net proxy; skipped, with a note, under iptables)
//	heal                           open every link, clear every delay
//	kill SET / restart SET         kill -9 / restart (only nodes that are down)
//	pause SET / resume SET         SIGSTOP / SIGCONT
//	await-leader R among SET [within D]   wait for a node of SET to lead and bind R (if R is bound: wait for R to lead)
//	await-accepted R as S [within D]      wait until R holds an accepted, unchosen slot; bind S to the first one
//	await-commit R S [within D]           wait until R's commit point reaches slot S
//	sleep D
//	note TEXT                      a history event; {R} is replaced by R's node
//	option bound-clients           clients start every operation at their own node
//
// Membership steps (the cluster needs spare nodes: --spares, automatic for
// the membership nemeses):
//
//	require-members K              abandon unless the configuration in effect has K members and no change is pending
//	spare R                        bind R to a node out of play and start it (empty log: it learns the log once it is a member)
//	members add R | remove R | replace R with S [within D]
//	                               propose the change through the leader; wait until it is chosen (abandon if refused)
//	retire R [within D]            wait until R is in no configuration in effect or pending, then take it out of play
//
// SET is a space-separated list of roles, node names (n3), "unbound" (nodes
// bound to no role), "members" (the configuration in effect) or "all"; "-R"
// removes R. A wait that times out abandons the attempt.
type Script struct {
	Name         string
	Steps        []ScriptStep
	BoundClients bool
}

// ScriptStep is one parsed line.
type ScriptStep struct {
	Line int
	Op   string
	Args []string
	Text string
}

//go:embed scripts/*.pax
var builtinScripts embed.FS

// Builtin returns the named script shipped with paxtest.
func Builtin(name string) (*Script, error) {
	b, err := builtinScripts.ReadFile("scripts/" + name + ".pax")
	if err != nil {
		return nil, fmt.Errorf("no built-in schedule %q", name)
	}
	return ParseScript(name, strings.NewReader(string(b)))
}

// ReadScript parses a schedule file (--nemesis-schedule).
func ReadScript(file string) (*Script, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", file, err)
	}
	defer f.Close()
	name := strings.TrimSuffix(path.Base(file), path.Ext(file))
	s, err := ParseScript(name, f)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", file, err)
	}
	return s, nil
}

var roleName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// ParseScript reads the language above, naming the line of any error.
func ParseScript(name string, r io.Reader) (*Script, error) {
	s := &Script{Name: name}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.Index(text, "#"); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		st := ScriptStep{Line: line, Op: f[0], Args: f[1:], Text: strings.TrimSpace(text)}
		if err := checkStep(st); err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", line, st.Text, err)
		}
		if st.Op == "option" {
			s.BoundClients = true
			continue
		}
		s.Steps = append(s.Steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(s.Steps) == 0 {
		return nil, fmt.Errorf("no steps")
	}
	return s, nil
}

// checkStep validates a step's shape; roles are resolved when it runs.
func checkStep(st ScriptStep) error {
	a := st.Args
	roles := func(xs []string) error {
		for _, x := range xs {
			if !roleName.MatchString(x) || isNodeName(x) || x == "all" || x == "unbound" || x == "rest" || x == "members" {
				return fmt.Errorf("%q is not a role name (a letter, then letters, digits or _; not nK, all, unbound, members or rest)", x)
			}
		}
		return nil
	}
	_, within, err := splitWithin(a)
	if err != nil {
		return err
	}
	switch st.Op {
	case "leader":
		if len(a) != 1 && len(a) != 3 {
			return fmt.Errorf("want: leader ROLE [within DURATION]")
		}
		return roles(a[:1])
	case "pick":
		i := index(a, "from")
		if i == 0 || len(a) == 0 || i == len(a)-1 {
			return fmt.Errorf("want: pick ROLE... [from SET]")
		}
		if i < 0 {
			i = len(a)
		}
		return roles(a[:i])
	case "partition", "cut":
		groups := splitGroups(a)
		if len(groups) < 2 {
			return fmt.Errorf("want: %s SET | SET ...", st.Op)
		}
		for _, g := range groups {
			if len(g) == 0 {
				return fmt.Errorf("an empty group")
			}
		}
	case "delay":
		i := index(a, "->")
		if i < 1 || i > len(a)-3 {
			return fmt.Errorf("want: delay SET -> SET DURATION")
		}
		_, err := time.ParseDuration(a[len(a)-1])
		return err
	case "heal":
		if len(a) != 0 {
			return fmt.Errorf("heal takes no arguments")
		}
	case "kill", "restart", "pause", "resume":
		if len(a) == 0 {
			return fmt.Errorf("want: %s SET", st.Op)
		}
	case "await-leader":
		if len(within) < 3 || within[1] != "among" {
			return fmt.Errorf("want: await-leader ROLE among SET [within DURATION]")
		}
		return roles(a[:1])
	case "await-accepted":
		if len(within) != 3 || within[1] != "as" {
			return fmt.Errorf("want: await-accepted ROLE as SLOT [within DURATION]")
		}
		return roles([]string{a[2]})
	case "await-commit":
		if len(within) != 2 {
			return fmt.Errorf("want: await-commit ROLE SLOT [within DURATION]")
		}
	case "sleep":
		if len(a) != 1 {
			return fmt.Errorf("want: sleep DURATION")
		}
		_, err := time.ParseDuration(a[0])
		return err
	case "note":
		if len(a) == 0 {
			return fmt.Errorf("want: note TEXT")
		}
	case "option":
		if len(a) != 1 || a[0] != "bound-clients" {
			return fmt.Errorf("the only option is bound-clients")
		}
	case "require-members":
		if k, err := strconv.Atoi(strings.Join(a, " ")); err != nil || k < 1 {
			return fmt.Errorf("want: require-members COUNT (a positive number)")
		}
	case "spare":
		if len(a) != 1 {
			return fmt.Errorf("want: spare ROLE")
		}
		return roles(a)
	case "members":
		switch {
		case len(within) == 2 && (within[0] == "add" || within[0] == "remove"):
		case len(within) == 4 && within[0] == "replace" && within[2] == "with":
		default:
			return fmt.Errorf("want: members add ROLE | members remove ROLE | members replace ROLE with ROLE [within DURATION]")
		}
	case "retire":
		if len(within) != 1 {
			return fmt.Errorf("want: retire ROLE [within DURATION]")
		}
	default:
		return fmt.Errorf("unknown step %q (accepted: leader, pick, partition, cut, delay, heal, kill, restart, pause, resume, await-leader, await-accepted, await-commit, sleep, note, option, require-members, spare, members, retire)", st.Op)
	}
	return nil
}

// splitWithin separates a trailing "within D".
func splitWithin(a []string) (time.Duration, []string, error) {
	if len(a) >= 2 && a[len(a)-2] == "within" {
		d, err := time.ParseDuration(a[len(a)-1])
		if err != nil {
			return 0, nil, fmt.Errorf("within: %w", err)
		}
		return d, a[:len(a)-2], nil
	}
	return 0, a, nil
}

func index(a []string, x string) int {
	for i, s := range a {
		if s == x {
			return i
		}
	}
	return -1
}

func splitGroups(a []string) [][]string {
	var out [][]string
	cur := []string{}
	for _, x := range a {
		if x == "|" {
			out = append(out, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, x)
	}
	return append(out, cur)
}

func isNodeName(x string) bool {
	if len(x) < 2 || x[0] != 'n' {
		return false
	}
	_, err := strconv.Atoi(x[1:])
	return err == nil
}

// Scripted runs scripts as a nemesis: each injection is one attempt of the
// next script in turn; the heal opens every link, clears every delay,
// resumes and restarts every node.
type Scripted struct {
	Label   string
	Scripts []*Script
	turn    int
	paused  map[int]bool
}

// Name is the --nemesis value.
func (s *Scripted) Name() string { return s.Label }

// Gap: attempts follow each other closely.
func (*Scripted) Gap(time.Duration) time.Duration { return 300 * time.Millisecond }

// BoundClients says whether any script asks for node-bound clients.
func (s *Scripted) BoundClients() bool {
	for _, sc := range s.Scripts {
		if sc.BoundClients {
			return true
		}
	}
	return false
}

// NeedsSpares says whether any script starts spare nodes.
func (s *Scripted) NeedsSpares() bool {
	for _, sc := range s.Scripts {
		for _, st := range sc.Steps {
			if st.Op == "spare" {
				return true
			}
		}
	}
	return false
}

// errAbandon ends an attempt whose roles did not line up.
type errAbandon struct{ why string }

func (e errAbandon) Error() string { return e.why }

// Inject runs one attempt of the next script.
func (s *Scripted) Inject(ctx context.Context, env *Env) (Fault, error) {
	sc := s.Scripts[s.turn%len(s.Scripts)]
	s.turn++
	if s.paused == nil {
		s.paused = map[int]bool{}
	}
	x := &execution{script: sc, env: env, paused: s.paused, roles: map[string]int{}, slots: map[string]uint64{}, observed: map[string]int{}}
	err := x.run(ctx)
	env.log(Step{Op: "roles", Note: sc.Name + ": " + x.bindings()})
	switch {
	case err == nil:
		return Fault{F: "start-" + s.Label, Targets: x.targets(), Detail: sc.Name + ": " + x.bindings()}, nil
	case errors.As(err, new(errAbandon)) || ctx.Err() != nil:
		why := err.Error()
		x.note("abandon", why)
		return Fault{F: "start-" + s.Label, Targets: x.targets(), Detail: sc.Name + ": attempt abandoned: " + why}, nil
	default:
		return Fault{}, fmt.Errorf("schedule %s: %w", sc.Name, err)
	}
}

// Heal opens every link, clears delays, resumes and restarts every node.
func (s *Scripted) Heal(ctx context.Context, env *Env) (Fault, error) {
	if err := env.Net.Block(nil); err != nil {
		return Fault{}, err
	}
	if err := delayLinks(env.Net, nil, 0); err != nil {
		return Fault{}, err
	}
	var back []int
	for _, id := range env.Cluster.IDs() {
		if s.paused[id] {
			if err := env.Cluster.Resume(id); err != nil {
				return Fault{}, err
			}
			delete(s.paused, id)
			back = append(back, id)
		}
		if env.Cluster.IsDown(id) {
			back = append(back, id)
			if err := env.Cluster.Restart(ctx, id); err != nil {
				return Fault{}, err
			}
		}
	}
	return Fault{F: "stop-" + s.Label, Targets: back, Detail: "all links open, every node running"}, nil
}

// execution is one attempt's state.
type execution struct {
	script   *Script
	env      *Env
	roles    map[string]int
	slots    map[string]uint64
	observed map[string]int // slot variable -> index of its observe step in the recording
	cut      [][2]int
	paused   map[int]bool
	ctx      context.Context // the attempt's, for set expressions that ask the cluster
}

func (x *execution) note(stage, detail string) {
	if x.env.Note != nil {
		x.env.Note(Fault{F: "step-" + x.script.Name, Targets: x.targets(), Detail: stage + ": " + detail})
	}
}

func (x *execution) targets() []int {
	seen := map[int]bool{}
	var out []int
	for _, id := range x.roles {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Ints(out)
	return out
}

func (x *execution) bindings() string {
	var names []string
	for r := range x.roles {
		names = append(names, r)
	}
	sort.Strings(names)
	var out []string
	for _, r := range names {
		out = append(out, fmt.Sprintf("%s=n%d", r, x.roles[r]))
	}
	for v, s := range x.slots {
		out = append(out, fmt.Sprintf("%s=slot %d", v, s))
	}
	return strings.Join(out, " ")
}

func (x *execution) run(ctx context.Context) error {
	x.ctx = ctx
	for _, st := range x.script.Steps {
		if ctx.Err() != nil {
			return errAbandon{"the run ended"}
		}
		if err := x.step(ctx, st); err != nil {
			if _, ok := err.(errAbandon); ok {
				return errAbandon{fmt.Sprintf("line %d (%s): %v", st.Line, st.Text, err)}
			}
			return fmt.Errorf("line %d (%s): %w", st.Line, st.Text, err)
		}
	}
	return nil
}

// set resolves a set expression against the bindings.
func (x *execution) set(a []string, others []int) ([]int, error) {
	in := map[int]bool{}
	var order []int
	add := func(id int) {
		if !in[id] {
			in[id] = true
			order = append(order, id)
		}
	}
	bound := map[int]bool{}
	for _, id := range x.roles {
		bound[id] = true
	}
	for _, t := range a {
		remove := strings.HasPrefix(t, "-")
		t = strings.TrimPrefix(t, "-")
		var ids []int
		switch {
		case t == "all":
			ids = x.env.Cluster.IDs()
		case t == "unbound":
			for _, id := range x.env.Cluster.IDs() {
				if !bound[id] {
					ids = append(ids, id)
				}
			}
		case t == "members":
			st, err := x.config(x.ctx)
			if err != nil {
				return nil, err
			}
			ids = toInts(st.Members)
		case t == "rest":
			if others == nil {
				return nil, fmt.Errorf("rest is only meaningful in partition and cut")
			}
			ids = others
		case isNodeName(t):
			id, _ := strconv.Atoi(t[1:])
			if !contains(x.env.Cluster.IDs(), id) {
				return nil, fmt.Errorf("no node %s in this cluster", t)
			}
			ids = []int{id}
		default:
			id, ok := x.roles[t]
			if !ok {
				return nil, fmt.Errorf("role %s is not bound yet", t)
			}
			ids = []int{id}
		}
		for _, id := range ids {
			if remove {
				delete(in, id)
			} else {
				add(id)
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

func contains(ids []int, x int) bool {
	for _, id := range ids {
		if id == x {
			return true
		}
	}
	return false
}

// groups resolves partition groups; "rest" is every node in no other group.
func (x *execution) groups(a []string) ([][]int, error) {
	raw := splitGroups(a)
	named := map[int]bool{}
	for _, g := range raw {
		if index(g, "rest") >= 0 {
			continue
		}
		ids, err := x.set(g, nil)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			named[id] = true
		}
	}
	var rest []int
	for _, id := range x.env.Cluster.IDs() {
		if !named[id] {
			rest = append(rest, id)
		}
	}
	var out [][]int
	for _, g := range raw {
		ids, err := x.set(g, rest)
		if err != nil {
			return nil, err
		}
		out = append(out, ids)
	}
	return out, nil
}

func between(groups [][]int) [][2]int {
	var out [][2]int
	for i := range groups {
		for j := i + 1; j < len(groups); j++ {
			out = append(out, cutBetween(groups[i], groups[j])...)
		}
	}
	return out
}

func (x *execution) step(ctx context.Context, st ScriptStep) error {
	env, c := x.env, x.env.Cluster
	within, a, _ := splitWithin(st.Args)
	if within == 0 {
		within = 5 * time.Second
	}
	switch st.Op {
	case "leader":
		l := waitLeaderAmong(ctx, env, c.IDs(), within, 2*time.Millisecond)
		env.log(Step{Op: "await-leader", Nodes: c.IDs(), Node: l})
		if l == 0 {
			return errAbandon{"no leader"}
		}
		x.roles[a[0]] = l
	case "pick":
		i := index(a, "from")
		names := a
		var cands []int
		if i >= 0 {
			names = a[:i]
			var err error
			if cands, err = x.set(a[i+1:], nil); err != nil {
				return err
			}
		}
		for _, r := range names {
			pool := cands
			if i < 0 {
				pool, _ = x.set([]string{"unbound"}, nil)
			}
			if len(pool) == 0 {
				return errAbandon{"no node left to pick for " + r}
			}
			x.roles[r] = pool[env.Rand.Intn(len(pool))]
		}
	case "partition", "cut":
		gs, err := x.groups(a)
		if err != nil {
			return err
		}
		links := between(gs)
		if st.Op == "cut" {
			links = append(append([][2]int(nil), x.cut...), links...)
		}
		x.cut = links
		return env.Net.Block(links)
	case "delay":
		i := index(a, "->")
		d, _ := time.ParseDuration(a[len(a)-1])
		from, err := x.set(a[:i], nil)
		if err != nil {
			return err
		}
		to, err := x.set(a[i+1:len(a)-1], nil)
		if err != nil {
			return err
		}
		var links [][2]int
		for _, f := range from {
			for _, t := range to {
				if f != t {
					links = append(links, [2]int{f, t})
				}
			}
		}
		if !canDelay(env.Net) {
			// iptables only cuts links: go on without the delay, and say so
			x.note("delay", fmt.Sprintf("skipped (%s): this fault layer cannot delay links; use --net proxy", st.Text))
			return nil
		}
		return delayLinks(env.Net, links, d)
	case "heal":
		x.cut = nil
		if err := env.Net.Block(nil); err != nil {
			return err
		}
		return delayLinks(env.Net, nil, 0)
	case "kill", "restart", "pause", "resume":
		ids, err := x.set(a, nil)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var err error
			switch st.Op {
			case "kill":
				err = c.Kill(id)
			case "restart":
				if c.IsDown(id) {
					err = c.Restart(ctx, id)
				}
			case "pause":
				err = c.Pause(id)
				x.paused[id] = true
			case "resume":
				err = c.Resume(id)
				delete(x.paused, id)
			}
			if err != nil {
				return err
			}
		}
	case "await-leader":
		cands, err := x.set(a[2:], nil)
		if err != nil {
			return err
		}
		poll := cands
		if want, ok := x.roles[a[0]]; ok {
			poll = []int{want} // wait for this one; another may still believe it leads
		}
		l := waitLeaderAmong(ctx, env, poll, within, 2*time.Millisecond)
		env.log(Step{Op: "await-leader", Nodes: cands, Node: l})
		if l == 0 {
			return errAbandon{"no leader among " + names(cands)}
		}
		if want, ok := x.roles[a[0]]; ok && want != l {
			return errAbandon{fmt.Sprintf("n%d leads, not %s (n%d)", l, a[0], want)}
		}
		x.roles[a[0]] = l
	case "await-accepted":
		ids, err := x.set(a[:1], nil)
		if err != nil {
			return err
		}
		var st api.Status
		if !pollUntil(ctx, within, 5*time.Millisecond, func() bool {
			var err error
			st, err = c.Status(ctx, ids[0])
			return err == nil && st.MaxSlot > st.CommitPoint
		}) {
			return errAbandon{fmt.Sprintf("n%d holds no unchosen slot", ids[0])}
		}
		x.slots[a[2]] = st.CommitPoint + 1
		x.observed[a[2]] = env.log(Step{Op: "await-accepted", Node: ids[0], Slot: st.CommitPoint})
	case "await-commit":
		ids, err := x.set(a[:1], nil)
		if err != nil {
			return err
		}
		slot, ok := x.slots[a[1]]
		if !ok {
			return fmt.Errorf("slot %s is not bound yet (bind it with await-accepted)", a[1])
		}
		reached := pollUntil(ctx, within, time.Millisecond, func() bool {
			st, err := c.Status(ctx, ids[0])
			return err == nil && st.CommitPoint >= slot
		})
		env.log(Step{Op: "await-commit", Node: ids[0], Ref: x.observed[a[1]]})
		if !reached {
			return errAbandon{fmt.Sprintf("n%d did not choose slot %d in time", ids[0], slot)}
		}
	case "sleep":
		d, _ := time.ParseDuration(a[0])
		sleep(ctx, d)
	case "require-members", "spare", "members", "retire":
		return x.membership(ctx, st.Op, a, within)
	case "note":
		text := strings.Join(a, " ")
		for r, id := range x.roles {
			text = strings.ReplaceAll(text, "{"+r+"}", fmt.Sprintf("n%d", id))
		}
		for v, s := range x.slots {
			text = strings.ReplaceAll(text, "{"+v+"}", fmt.Sprintf("%d", s))
		}
		stage, rest, ok := strings.Cut(text, ":")
		if !ok {
			stage, rest = "note", text
		}
		x.note(stage, strings.TrimSpace(rest))
	}
	return nil
}

// config is the leader's view of the configuration.
func (x *execution) config(ctx context.Context) (api.Status, error) {
	l := x.env.Cluster.Leader(ctx)
	if l == 0 {
		return api.Status{}, errAbandon{"no leader to ask for the configuration"}
	}
	st, err := x.env.Cluster.Status(ctx, l)
	if err != nil {
		return api.Status{}, errAbandon{fmt.Sprintf("status of the leader n%d: %v", l, err)}
	}
	return st, nil
}

// membership runs the steps that change the configuration.
func (x *execution) membership(ctx context.Context, op string, a []string, within time.Duration) error {
	mc, ok := x.env.Cluster.(MemberControl)
	if !ok {
		return fmt.Errorf("%s needs a cluster with spare nodes", op)
	}
	switch op {
	case "require-members":
		k, _ := strconv.Atoi(a[0])
		st, err := x.config(ctx)
		if err != nil {
			return err
		}
		if len(st.Members) != k || len(st.Pending) > 0 {
			return errAbandon{fmt.Sprintf("the configuration is %v (pending %v), this schedule needs %d members and no change in progress", st.Members, st.Pending, k)}
		}
	case "spare":
		if err := x.retireLeftovers(ctx, mc); err != nil {
			return err
		}
		spares := mc.Spares()
		if len(spares) == 0 {
			return errAbandon{"no spare node out of play"}
		}
		id := spares[x.env.Rand.Intn(len(spares))]
		if err := mc.Join(ctx, id); err != nil {
			return fmt.Errorf("start spare n%d: %w", id, err)
		}
		x.roles[a[0]] = id
	case "members":
		req := api.MembersRequest{Op: a[0]}
		ids, err := x.set(a[1:2], nil)
		if err != nil {
			return err
		}
		req.Node = uint64(ids[0])
		if a[0] == api.ChangeReplace {
			with, err := x.set(a[3:4], nil)
			if err != nil {
				return err
			}
			req.With = uint64(with[0])
		}
		cctx, cancel := context.WithTimeout(ctx, within)
		res, err := mc.ChangeMembers(cctx, req)
		cancel()
		if err != nil {
			return errAbandon{fmt.Sprintf("%s: %v", describeChange(req), err)}
		}
		if !res.OK {
			return errAbandon{fmt.Sprintf("%s refused: %s %s", describeChange(req), res.Error, res.Detail)}
		}
		x.note("members", fmt.Sprintf("%s: configuration %v chosen at slot %d, in effect from slot %d", describeChange(req), res.Members, res.Slot, res.EffectAt))
	case "retire":
		ids, err := x.set(a[:1], nil)
		if err != nil {
			return err
		}
		if !pollUntil(ctx, within, 20*time.Millisecond, func() bool {
			st, err := x.config(ctx)
			return err == nil && !contains(toInts(st.Members), ids[0]) && !contains(toInts(st.Pending), ids[0])
		}) {
			return errAbandon{fmt.Sprintf("n%d is still in a configuration in effect or pending", ids[0])}
		}
		return mc.Retire(ids[0])
	}
	return nil
}

// retireLeftovers takes out of play the running nodes an earlier attempt
// removed from the configuration (once no configuration in effect or
// pending holds them), so that they can be spares again.
func (x *execution) retireLeftovers(ctx context.Context, mc MemberControl) error {
	st, err := x.config(ctx)
	if err != nil {
		return err
	}
	if len(st.Pending) > 0 {
		return nil
	}
	for _, id := range x.env.Cluster.IDs() {
		if !contains(toInts(st.Members), id) {
			if err := mc.Retire(id); err != nil {
				return err
			}
		}
	}
	return nil
}
