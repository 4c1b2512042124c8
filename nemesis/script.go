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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/paxtest/paxtest/nemesis/fault"
	"github.com/paxtest/paxtest/target/api"
)

// A Script is a fault schedule written as data: a list of ops over roles
// (L1, F1, carrier, …) that are bound against the live cluster while the
// script runs, so "cut off the leader and one follower" means the same
// thing whichever node leads. Each line parses, once, into a fault.Op with
// a Sel; the executor resolves it when it runs. One pass through the ops
// is an attempt; an attempt whose roles do not line up (no leader in time,
// nothing to wait for) is abandoned and healed, and the next one starts.
//
// The language, one step per line ('#' starts a comment):
//
//	leader R [within D]            bind R to the current leader
//	pick R... [from SET]           bind each R to a random node of SET (default: the unbound nodes)
//	partition SET | SET [| SET]…   cut every link between the groups (replacing the cut); rest = the nodes in no other group
//	cut SET | SET                  cut the links between the groups too
//	delay SET -> SET D [jitter J] [rate B]
//	                               every byte from the first set to the second is held for D, plus up to J at random, at most B bytes a second (64KB; --net proxy; skipped, with a note, under iptables)
//	reset SET -> SET               close the connections from the first set to the second mid-stream (--net proxy)
//	corrupt R bitflip|truncate [FILE [OFFSET]]
//	                               damage R's synced data while it is down: flip a bit of, or cut short, FILE (inside its data directory) at OFFSET (drawn when not given, among the files the system checks)
//	repair R                       take back the damage R refused to start on (it stays down until a restart)
//	heal                           open every link, clear every delay
//	kill SET / restart SET         kill -9 / restart (only nodes that are down)
//	pause SET / resume SET         SIGSTOP / SIGCONT
//	await-leader R among SET [within D]   wait for a node of SET to lead and bind R (if R is bound: wait for R to lead)
//	await-accepted R as S [within D]      wait until R holds an accepted, unchosen slot; bind S to the first one
//	await-accepted R at T as S [within D] wait until R holds an accepted entry in slot T, unchosen there; bind S to T
//	await-commit R S [within D]           wait until R's commit point reaches slot S
//	sleep D
//	note TEXT                      a history event; {R} is replaced by R's node
//	option bound-clients           clients start every operation at their own node
//	option min-nodes N             the script needs at least N nodes (more than its roles show)
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
// bound to no role), "members" (the configuration in effect), "all",
// "leader", "followers", or a random "one", "minority" or "majority" of the
// running nodes; "-R" removes R. A wait that times out abandons the attempt.
type Script struct {
	Name         string
	Ops          []fault.Op
	BoundClients bool
	// MinNodes is the fewest nodes the script can run on: the larger of
	// its "option min-nodes N" and what its roles need (minNodes).
	MinNodes int
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

// reserved are the words of set expressions, which cannot name a role.
var reserved = map[string]bool{"all": true, "unbound": true, "rest": true, "members": true, "leader": true,
	"followers": true, "one": true, "minority": true, "majority": true}

// ParseScript reads the language above into ops, naming the line of any error.
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
		if f[0] == "option" {
			if err := s.option(f[1:]); err != nil {
				return nil, fmt.Errorf("line %d (%s): %w", line, strings.TrimSpace(text), err)
			}
			continue
		}
		op, err := parseStep(f[0], f[1:])
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", line, strings.TrimSpace(text), err)
		}
		if op.Sel == nil {
			op.Sel = &fault.Sel{}
		}
		op.Sel.Line, op.Sel.Text = line, strings.TrimSpace(text)
		s.Ops = append(s.Ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(s.Ops) == 0 {
		return nil, fmt.Errorf("no steps")
	}
	s.MinNodes = max(s.MinNodes, minNodes(s.Ops))
	return s, nil
}

// option reads an option line: bound-clients, or min-nodes N.
func (s *Script) option(a []string) error {
	switch {
	case len(a) == 1 && a[0] == "bound-clients":
		s.BoundClients = true
	case len(a) == 2 && a[0] == "min-nodes":
		n, err := strconv.Atoi(a[1])
		if err != nil || n < 1 {
			return fmt.Errorf("min-nodes %q: a positive number of nodes", a[1])
		}
		s.MinNodes = n
	default:
		return errors.New("the options are bound-clients and min-nodes N")
	}
	return nil
}

// minNodes is the fewest nodes a script's roles need, read off its steps:
// leader, pick (from the unbound nodes) and await-leader among unbound
// each bind a node no other role holds; a partition or cut with a rest
// needs one node beyond those of its roles; require-members K needs K. A
// script whose attempts also need a quorum among what is left says so
// with "option min-nodes N".
func minNodes(ops []fault.Op) int {
	bound, need := map[string]bool{}, 1
	for _, op := range ops {
		sel := op.Sel
		fresh := op.F == fault.AwaitLeader && (slices.Equal(sel.Set, []string{"all"}) || slices.Equal(sel.Set, []string{"unbound"})) ||
			op.F == fault.Pick && len(sel.Set) == 0
		for _, r := range sel.Bind {
			if fresh {
				bound[r] = true
			}
		}
		if op.F == fault.RequireMembers {
			need = max(need, sel.Count)
		}
		need = max(need, len(bound))
		if slices.ContainsFunc(sel.Groups, func(g []string) bool { return slices.Contains(g, "rest") }) {
			named := map[string]bool{}
			for _, g := range sel.Groups {
				for _, r := range g {
					named[r] = bound[r]
				}
			}
			n := 0
			for _, b := range named {
				if b {
					n++
				}
			}
			need = max(need, n+1)
		}
	}
	return need
}

func roles(xs []string) error {
	for _, x := range xs {
		if !roleName.MatchString(x) || isNodeName(x) || reserved[x] {
			return fmt.Errorf("%q is not a role name (a letter, then letters, digits or _; not nK or a word of sets such as all, leader or rest)", x)
		}
	}
	return nil
}

// parseStep turns one line into an op.
func parseStep(verb string, a []string) (fault.Op, error) {
	within, rest, err := splitWithin(a)
	if err != nil {
		return fault.Op{}, err
	}
	op := fault.Op{Sel: &fault.Sel{WithinMs: within.Milliseconds()}}
	parse, ok := stepParsers[verb]
	if !ok {
		return op, fmt.Errorf("unknown step %q (accepted: leader, pick, partition, cut, delay, reset, corrupt, repair, heal, kill, restart, pause, resume, await-leader, await-accepted, await-caught-up, await-commit, sleep, note, option, require-members, spare, members, retire)", verb)
	}
	return op, parse(&op, verb, rest, a)
}

// A stepParser fills op from a line's words: rest without a trailing
// "within D", all with it.
type stepParser func(op *fault.Op, verb string, rest, all []string) error

var stepParsers = map[string]stepParser{
	"leader": func(op *fault.Op, _ string, rest, _ []string) error {
		if len(rest) != 1 {
			return fmt.Errorf("want: leader ROLE [within DURATION]")
		}
		op.F, op.Sel.Set, op.Sel.Bind = fault.AwaitLeader, []string{"all"}, rest
		return roles(rest)
	},
	"pick":      parsePick,
	"partition": parsePartition,
	"cut":       parsePartition,
	"delay":     parseDelay,
	"reset":     parseReset,
	"corrupt":   parseCorrupt,
	"repair": func(op *fault.Op, _ string, rest, _ []string) error {
		if len(rest) != 1 {
			return errors.New("want: repair ROLE")
		}
		op.F, op.Sel.Set = fault.Repair, rest
		return nil
	},
	"heal": func(op *fault.Op, _ string, rest, _ []string) error {
		if len(rest) != 0 {
			return fmt.Errorf("heal takes no arguments")
		}
		op.F = fault.Heal
		return nil
	},
	"kill":    parseNodeFault,
	"restart": parseNodeFault,
	"pause":   parseNodeFault,
	"resume":  parseNodeFault,
	"await-leader": func(op *fault.Op, _ string, rest, _ []string) error {
		if len(rest) < 3 || rest[1] != "among" {
			return fmt.Errorf("want: await-leader ROLE among SET [within DURATION]")
		}
		op.F, op.Sel.Bind, op.Sel.Set = fault.AwaitLeader, rest[:1], rest[2:]
		return roles(rest[:1])
	},
	"await-accepted": func(op *fault.Op, _ string, rest, _ []string) error {
		switch {
		case len(rest) == 5 && rest[1] == "at" && rest[3] == "as":
			op.Sel.Slot, rest = rest[2], []string{rest[0], rest[3], rest[4]}
		case len(rest) == 4 && rest[1] == "new":
			op.Sel.New, rest = true, []string{rest[0], rest[2], rest[3]}
		}
		if len(rest) != 3 || rest[1] != "as" {
			return fmt.Errorf("want: await-accepted ROLE [new | at SLOT] as SLOT [within DURATION]")
		}
		op.F, op.Sel.Set, op.Sel.Bind = fault.AwaitAccepted, rest[:1], rest[2:]
		return roles(rest[2:])
	},
	"await-caught-up": func(op *fault.Op, _ string, rest, _ []string) error {
		if len(rest) == 0 {
			return fmt.Errorf("want: await-caught-up SET [within DURATION]")
		}
		op.F, op.Sel.Set = fault.AwaitCaughtUp, rest
		return nil
	},
	"await-commit": func(op *fault.Op, _ string, rest, _ []string) error {
		if len(rest) != 2 {
			return fmt.Errorf("want: await-commit ROLE SLOT [within DURATION]")
		}
		op.F, op.Sel.Set, op.Sel.Slot = fault.AwaitCommit, rest[:1], rest[1]
		return nil
	},
	"sleep": func(op *fault.Op, _ string, _, all []string) error {
		if len(all) != 1 {
			return fmt.Errorf("want: sleep DURATION")
		}
		d, err := time.ParseDuration(all[0])
		op.F, op.Ms = fault.Sleep, d.Milliseconds()
		return err
	},
	"note": func(op *fault.Op, _ string, _, all []string) error {
		if len(all) == 0 {
			return fmt.Errorf("want: note TEXT")
		}
		op.F, op.Note = fault.Note, strings.Join(all, " ")
		return nil
	},
	"require-members": func(op *fault.Op, _ string, _, all []string) error {
		k, err := strconv.Atoi(strings.Join(all, " "))
		if err != nil || k < 1 {
			return fmt.Errorf("want: require-members COUNT (a positive number)")
		}
		op.F, op.Sel.Count = fault.RequireMembers, k
		return nil
	},
	"spare": func(op *fault.Op, _ string, _, all []string) error {
		if len(all) != 1 {
			return fmt.Errorf("want: spare ROLE")
		}
		op.F, op.Sel.Bind = fault.Join, all
		return roles(all)
	},
	"members": parseMembers,
	"retire": func(op *fault.Op, _ string, rest, _ []string) error {
		if len(rest) != 1 {
			return fmt.Errorf("want: retire ROLE [within DURATION]")
		}
		op.F, op.Sel.Set = fault.Retire, rest
		return nil
	},
}

func parsePick(op *fault.Op, _ string, rest, _ []string) error {
	i := index(rest, "from")
	if i == 0 || len(rest) == 0 || i == len(rest)-1 {
		return fmt.Errorf("want: pick ROLE... [from SET]")
	}
	op.F, op.Sel.Bind = fault.Pick, rest
	if i > 0 {
		op.Sel.Bind, op.Sel.Set = rest[:i], rest[i+1:]
	}
	return roles(op.Sel.Bind)
}

func parsePartition(op *fault.Op, verb string, rest, _ []string) error {
	groups := splitGroups(rest)
	if len(groups) < 2 {
		return fmt.Errorf("want: %s SET | SET [| SET]", verb)
	}
	for _, g := range groups {
		if len(g) == 0 {
			return fmt.Errorf("an empty group")
		}
	}
	op.F, op.Sel.Groups, op.Sel.Add = fault.Partition, groups, verb == "cut"
	return nil
}

// parseDelay reads "delay SET -> SET DURATION [jitter DURATION] [rate
// BYTES]" (BYTES a second: 65536, 64KB, 1MB).
func parseDelay(op *fault.Op, _ string, rest, _ []string) error {
	const want = "want: delay SET -> SET DURATION [jitter DURATION] [rate BYTES]"
	for len(rest) >= 2 {
		k, v := rest[len(rest)-2], rest[len(rest)-1]
		switch k {
		case "jitter":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("jitter %q: a duration (%s)", v, want)
			}
			op.JitterMs = d.Milliseconds()
		case "rate":
			n, err := parseBytes(v)
			if err != nil {
				return fmt.Errorf("rate %q: %v (%s)", v, err, want)
			}
			op.Rate = n
		default:
			k = ""
		}
		if k == "" {
			break
		}
		rest = rest[:len(rest)-2]
	}
	i := index(rest, "->")
	if i < 1 || i > len(rest)-3 {
		return errors.New(want)
	}
	d, err := time.ParseDuration(rest[len(rest)-1])
	if err != nil {
		return err
	}
	op.F, op.Sel.Set, op.Sel.To, op.Ms = fault.Delay, rest[:i], rest[i+1:len(rest)-1], d.Milliseconds()
	return nil
}

// parseBytes reads a positive count of bytes: 65536, 64KB, 1MB.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "KB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "KB")
	case strings.HasSuffix(s, "MB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MB")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("a positive number of bytes a second: 65536, 64KB, 1MB")
	}
	return n * mult, nil
}

// parseCorrupt reads "corrupt R bitflip|truncate [FILE [OFFSET]]".
func parseCorrupt(op *fault.Op, _ string, rest, _ []string) error {
	const want = "want: corrupt ROLE bitflip|truncate [FILE [OFFSET]]"
	if len(rest) < 2 || len(rest) > 4 || (rest[1] != fault.BitFlip && rest[1] != fault.Truncate) {
		return errors.New(want)
	}
	d := &fault.Damage{Kind: rest[1], Offset: -1}
	if len(rest) > 2 {
		d.File = rest[2]
	}
	if len(rest) > 3 {
		n, err := strconv.ParseInt(rest[3], 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("offset %q: a byte of the file, from 0 (%s)", rest[3], want)
		}
		d.Offset = n
	}
	op.F, op.Sel.Set, op.Damage = fault.Corrupt, rest[:1], d
	return nil
}

// parseReset reads "reset SET -> SET".
func parseReset(op *fault.Op, _ string, rest, _ []string) error {
	i := index(rest, "->")
	if i < 1 || i > len(rest)-2 {
		return errors.New("want: reset SET -> SET")
	}
	op.F, op.Sel.Set, op.Sel.To = fault.Reset, rest[:i], rest[i+1:]
	return nil
}

func parseNodeFault(op *fault.Op, verb string, rest, _ []string) error {
	if len(rest) == 0 {
		return fmt.Errorf("want: %s SET", verb)
	}
	op.F, op.Sel.Set = fault.F(verb), rest
	return nil
}

func parseMembers(op *fault.Op, _ string, rest, _ []string) error {
	switch {
	case len(rest) == 2 && (rest[0] == api.ChangeAdd || rest[0] == api.ChangeRemove):
		op.Sel.Change = &fault.SelChange{Op: rest[0], Node: rest[1]}
	case len(rest) == 4 && rest[0] == api.ChangeReplace && rest[2] == "with":
		op.Sel.Change = &fault.SelChange{Op: rest[0], Node: rest[1], With: rest[3]}
	default:
		return fmt.Errorf("want: members add ROLE | members remove ROLE | members replace ROLE with ROLE [within DURATION]")
	}
	op.F = fault.Members
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

// Scripted runs scripts as a nemesis: each Start is one attempt of the
// next script in turn; Stop lifts every fault (links, delays, pauses,
// kills).
type Scripted struct {
	Label   string
	Scripts []*Script
	turn    int
}

// FromScripts builds a nemesis from built-in schedules.
func FromScripts(label string, names ...string) (*Scripted, error) {
	s := &Scripted{Label: label}
	for _, n := range names {
		sc, err := Builtin(n)
		if err != nil {
			return nil, err
		}
		s.Scripts = append(s.Scripts, sc)
	}
	return s, nil
}

// Name is the --nemesis value.
func (s *Scripted) Name() string { return s.Label }

// MinNodes is the most any of its scripts needs.
func (s *Scripted) MinNodes() int {
	n := 1
	for _, sc := range s.Scripts {
		n = max(n, sc.MinNodes)
	}
	return n
}

// Exclusive: a scenario needs the cluster healed and to itself.
func (*Scripted) Exclusive() bool { return true }

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
		for _, op := range sc.Ops {
			if op.F == fault.Join {
				return true
			}
		}
	}
	return false
}

// Start runs one attempt of the next script. An attempt whose roles did
// not line up is noted as abandoned, not an error.
func (s *Scripted) Start(ctx context.Context, x *Exec) error {
	sc := s.Scripts[s.turn%len(s.Scripts)]
	s.turn++
	b := NewBindings()
	err := s.run(ctx, x, sc, b)
	x.Note(s.Label, s.turn, sc.Name+": "+b.String())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAbandon) || ctx.Err() != nil:
		x.Note(s.Label, s.turn, sc.Name+": "+err.Error())
		return nil
	default:
		return fmt.Errorf("schedule %s: %w", sc.Name, err)
	}
}

func (s *Scripted) run(ctx context.Context, x *Exec, sc *Script, b *Bindings) error {
	for _, op := range sc.Ops {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: the run ended", ErrAbandon)
		}
		op.Source, op.Attempt = s.Label, s.turn
		if _, err := x.Do(ctx, op, b); err != nil {
			return fmt.Errorf("line %d (%s): %w", op.Sel.Line, op.Sel.Text, err)
		}
	}
	return nil
}

// Stop lifts every fault.
func (s *Scripted) Stop(ctx context.Context, x *Exec) error {
	return x.HealAll(ctx, s.Label, s.turn)
}
