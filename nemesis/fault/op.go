// Package fault is the one typed fault operation, as a Jepsen nemesis op
// ({:f :start-partition :value :majority}) is: the random generator and the
// scripted scenarios emit it, the executor performs it, the recorder writes
// it (schedule.jsonl, and the nemesis events of history.jsonl), replay and
// shrink read it back, and the report shades the intervals it opens and
// closes.
//
// An Op is emitted with a Sel (what to act on, in words: "a minority",
// "the leader", "L1 F1 | rest") and performed with its concrete value
// (the nodes and links acted on), which is what is recorded and replayed.
// This package owns the op, its JSON form and its reading; it is a leaf: it
// performs nothing and imports nothing of paxtest.
package fault

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// F says what an op does.
type F string

// Faults: each is performed on the cluster or its network.
const (
	Partition F = "partition" // cut exactly Links (every other link open)
	Heal      F = "heal"      // open every link, clear every delay
	Delay     F = "delay"     // hold every byte on Links for Ms plus up to JitterMs, at most Rate bytes/s (none: clear delays)
	Reset     F = "reset"     // close the connections on Links mid-stream (the links stay open)
	Kill      F = "kill"      // kill -9 Nodes
	Restart   F = "restart"   // restart Nodes that are down
	Pause     F = "pause"     // SIGSTOP Nodes
	Resume    F = "resume"    // SIGCONT Nodes
	Join      F = "join"      // start Node, a spare out of play
	Retire    F = "retire"    // take Node out of play
	Members   F = "members"   // change the configuration through the leader (Change)
	// PowerLoss kills Nodes and drops every write of theirs not yet
	// fsynced (the lazy disk; Tear: one write reaches the disk in part);
	// they stay down until a restart
	PowerLoss F = "power-loss"
	// Corrupt damages Node's synced data while it is down (Damage): a bit
	// flipped, or a file cut short
	Corrupt F = "corrupt"
	// Repair takes back the last damage to Node's data, which its node
	// refused to start on (so it has not run since): it may start again
	Repair F = "repair"
)

// Waits on the cluster: performed, not timed, so that a replay stays in
// step with the cluster; and markers that change nothing.
const (
	AwaitLeader   F = "await-leader"    // one of Nodes leads; the winner in Node
	AwaitAccepted F = "await-accepted"  // Node holds an accepted, unchosen slot; its commit point in Slot (Sel.New: the slot before the first entry accepted after the wait began; with Ref: holds one in the slot after the one seen at op Ref)
	AwaitCaughtUp F = "await-caught-up" // every one of Nodes reaches the commit point (Slot) the furthest of them had when the wait began
	AwaitCommit   F = "await-commit"    // Node's commit point passes the one seen at op Ref
	Observe       F = "observe"         // Node's commit point, in Slot
	Note          F = "note"            // a scenario's stage, an attempt's roles or why it was abandoned
)

// Script-only steps: they bind roles or check the cluster and are never
// recorded themselves (what they bound is, in a note).
const (
	Pick           F = "pick"            // bind each of Sel.Bind to a random node of Sel.Set
	Sleep          F = "sleep"           // wait Ms
	RequireMembers F = "require-members" // abandon unless the configuration has Sel.Count members, none pending
)

var known = map[F]bool{
	Partition: true, Heal: true, Delay: true, Reset: true, Kill: true, Restart: true, Pause: true, Resume: true,
	Join: true, Retire: true, Members: true, PowerLoss: true, Corrupt: true, Repair: true,
	AwaitLeader: true, AwaitAccepted: true, AwaitCaughtUp: true, AwaitCommit: true, Observe: true, Note: true,
	Pick: true, Sleep: true, RequireMembers: true,
}

// AwaitsCluster reports whether f waits for a state of the cluster (a
// leader, an entry, a commit point): performed by polling it, and begun
// in a replay right after the op before it.
func (f F) AwaitsCluster() bool {
	switch f {
	case AwaitLeader, AwaitAccepted, AwaitCaughtUp, AwaitCommit:
		return true
	}
	return false
}

// Known reports whether f is an op of this vocabulary.
func Known(f F) bool { return known[f] }

// IsWait reports whether f waits on (or notes) the cluster rather than
// faulting it: shrink keeps these, as they keep a replay in step.
func (f F) IsWait() bool {
	switch f {
	case AwaitLeader, AwaitAccepted, AwaitCaughtUp, AwaitCommit, Observe, Note, Pick, Sleep, RequireMembers:
		return true
	}
	return false
}

// Op is one fault operation.
type Op struct {
	Time int64 `json:"time"` // ns since the run's start, when performed
	F    F     `json:"f"`
	// Sel is what the op acts on, before it is resolved against the live
	// cluster; a recorded op keeps it for the reader, and a replay reads only
	// its bounds (within) and whether a wait is "at" a slot bound before.
	Sel *Sel `json:"sel,omitempty"`

	Nodes []int    `json:"nodes,omitempty"`
	Node  int      `json:"node,omitempty"`
	Links [][2]int `json:"links,omitempty"`
	Ms    int64    `json:"ms,omitempty"` // delay: how long a link holds each byte; members: how long the change took
	// delay: up to this much more per chunk, at random, and at most Rate
	// bytes a second (0: unbounded)
	JitterMs int64   `json:"jitter_ms,omitempty"`
	Rate     int64   `json:"rate,omitempty"`
	Slot     uint64  `json:"slot,omitempty"`
	Ref      int     `json:"ref,omitempty"`    // await-commit, await-accepted at: the index of the op whose commit point it passes
	Leader   int     `json:"leader,omitempty"` // the leader just before the op (0: none known)
	Change   *Change `json:"change,omitempty"`
	Tear     bool    `json:"tear,omitempty"` // power-loss: a write reaches the disk in part
	Damage   *Damage `json:"damage,omitempty"`
	// Stopped, on a restart: the nodes that refused to start on their
	// damaged data (Note says why); they stay down.
	Stopped []int `json:"stopped,omitempty"`
	// NotStarted, on a restart: the nodes that did not start again
	// although their data was not damaged (Note says why); they stay
	// down until the next restart, and a run reports those still down
	// after its final heal as did-not-recover.
	NotStarted []int  `json:"not_started,omitempty"`
	Note       string `json:"note,omitempty"`
	// Source is the nemesis that emitted the op ("partition", "figure8"),
	// and Attempt its attempt number, for the report's legend.
	Source  string `json:"source,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}

// Damage is what a corrupt op did to a node's synced data: a bit flipped
// at Offset of File, or File cut short at Offset. File is a path inside
// the node's data directory; a blank File or a negative Offset is drawn
// at random when the op is performed, and recorded.
type Damage struct {
	Kind   string `json:"kind"` // bitflip or truncate
	File   string `json:"file,omitempty"`
	Offset int64  `json:"offset"`
	Bit    int    `json:"bit,omitempty"`
}

// Damage kinds.
const (
	BitFlip  = "bitflip"
	Truncate = "truncate"
)

// Sel says, in words, what an op acts on; the executor resolves it.
type Sel struct {
	// Set is a set expression: node names (n3), roles bound earlier in a
	// scenario (L1), and the words all, unbound, members, rest, leader,
	// followers, one, minority, majority; "-X" removes X.
	Set []string `json:"set,omitempty"`
	// Groups are a partition's sides, each a set expression.
	Groups [][]string `json:"groups,omitempty"`
	// Shape is a partition shape (majority, leader-side, majorities-ring, bridge, one, leader).
	Shape string `json:"shape,omitempty"`
	// To is the receiving side of a delay (Set sends).
	To []string `json:"to,omitempty"`
	// Add keeps the links already cut (a script's cut).
	Add bool `json:"add,omitempty"`
	// Bind names the roles (or the slot variable) the op binds.
	Bind []string `json:"bind,omitempty"`
	// Slot is the slot variable an await-commit waits for, or an
	// await-accepted waits to be accepted in.
	Slot string `json:"slot,omitempty"`
	// New makes an await-accepted pass over every entry the node held when
	// the wait began: it binds the first one accepted after.
	New bool `json:"new,omitempty"`
	// WithinMs bounds a wait; past it the attempt is abandoned.
	WithinMs int64 `json:"within_ms,omitempty"`
	// Count is require-members' size.
	Count int `json:"count,omitempty"`
	// Change is a membership change over roles (members op).
	Change *SelChange `json:"change,omitempty"`
	// Line is the script line the op was parsed from.
	Line int    `json:"line,omitempty"`
	Text string `json:"text,omitempty"`
}

// SelChange is a membership change over roles: add R, remove R, replace R with S.
type SelChange struct {
	Op   string `json:"op"`
	Node string `json:"node"`
	With string `json:"with,omitempty"`
}

// Change is a membership change as performed, and what it chose.
type Change struct {
	Op      string `json:"op"` // add, remove, replace
	Node    int    `json:"node"`
	With    int    `json:"with,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Members []int  `json:"members,omitempty"`
	Slot    uint64 `json:"chosen_at,omitempty"`
	Effect  uint64 `json:"effect_at,omitempty"`
}

// Touched lists the nodes an op acts on, sorted.
func (o Op) Touched() []int {
	seen := map[int]bool{}
	var out []int
	add := func(id int) {
		if id != 0 && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range o.Nodes {
		add(id)
	}
	add(o.Node)
	for _, l := range o.Links {
		add(l[0])
		add(l[1])
	}
	if o.Change != nil {
		add(o.Change.Node)
		add(o.Change.With)
	}
	sort.Ints(out)
	return out
}

// Describe says what an op did, in words, for the history and the report.
func (o Op) Describe() string {
	switch o.F {
	case Partition:
		return describeCut(o.Links)
	case Heal:
		return "every link open, every delay cleared"
	case Delay:
		if len(o.Links) == 0 {
			return "every delay cleared"
		}
		s := fmt.Sprintf("%d links hold each byte %d ms", len(o.Links), o.Ms)
		if o.JitterMs > 0 {
			s += fmt.Sprintf(" (+ up to %d ms)", o.JitterMs)
		}
		if o.Rate > 0 {
			s += fmt.Sprintf(", at most %d bytes/s", o.Rate)
		}
		return s
	case Reset:
		return fmt.Sprintf("connections on %d links reset", len(o.Links))
	case Corrupt:
		d := o.Damage
		switch {
		case o.Note != "":
			return fmt.Sprintf("n%d's data not damaged: %s", o.Node, o.Note)
		case d == nil:
			return fmt.Sprintf("n%d's data damaged", o.Node)
		case d.Kind == Truncate:
			return fmt.Sprintf("n%d's %s cut short at byte %d", o.Node, d.File, d.Offset)
		}
		return fmt.Sprintf("n%d's %s: bit %d of byte %d flipped", o.Node, d.File, d.Bit, d.Offset)
	case Repair:
		if o.Note != "" {
			return fmt.Sprintf("n%d's damage %s", o.Node, o.Note)
		}
		return fmt.Sprintf("n%d's damaged data restored", o.Node)
	case Kill:
		return "kill -9 " + Names(o.Nodes)
	case PowerLoss:
		if o.Note != "" {
			return "power loss of " + Names(o.Nodes) + ": " + o.Note
		}
		return "power loss of " + Names(o.Nodes)
	case Restart:
		if o.Note != "" {
			return "restart " + Names(o.Nodes) + ": " + o.Note
		}
		return "restart " + Names(o.Nodes)
	case Pause:
		return "SIGSTOP " + Names(o.Nodes)
	case Resume:
		return "SIGCONT " + Names(o.Nodes)
	case Join:
		return fmt.Sprintf("start spare n%d", o.Node)
	case Retire:
		return fmt.Sprintf("retire n%d", o.Node)
	case Members:
		if o.Change == nil {
			return "membership change"
		}
		c := o.Change
		what := DescribeChange(c.Op, c.Node, c.With)
		if !c.OK {
			return fmt.Sprintf("%s refused: %s", what, c.Error)
		}
		return fmt.Sprintf("%s: configuration %v chosen at slot %d, in effect from slot %d", what, c.Members, c.Slot, c.Effect)
	case AwaitCaughtUp:
		return fmt.Sprintf("%s reach the commit point %d", Names(o.Nodes), o.Slot)
	case AwaitLeader:
		if o.Node == 0 {
			return "no leader among " + Names(o.Nodes)
		}
		return fmt.Sprintf("n%d leads", o.Node)
	case Note:
		return o.Note
	}
	return string(o.F)
}

// DescribeChange names a membership change.
func DescribeChange(op string, node, with int) string {
	switch op {
	case "add":
		return fmt.Sprintf("add n%d", node)
	case "remove":
		return fmt.Sprintf("remove n%d", node)
	}
	return fmt.Sprintf("replace n%d with n%d", node, with)
}

// describeCut lists, per node touched, the peers it no longer reaches.
func describeCut(links [][2]int) string {
	if len(links) == 0 {
		return "no link cut"
	}
	lost := map[int][]int{}
	for _, l := range links {
		lost[l[0]] = append(lost[l[0]], l[1])
	}
	var ids []int
	for id := range lost {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var parts []string
	for _, id := range ids {
		to := lost[id]
		sort.Ints(to)
		parts = append(parts, fmt.Sprintf("n%d-/->%s", id, strings.ReplaceAll(Names(to), " ", ",")))
	}
	return "cut " + strings.Join(parts, " ")
}

// Names writes ids as "n1 n3".
func Names(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprintf("n%d", id)
	}
	return strings.Join(s, " ")
}

// Read parses a schedule (one op per line), naming the file, line and
// field of anything it does not understand. A torn last line (a run killed
// mid-write) is an error too: a replay must not guess.
func Read(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", path, err)
	}
	defer f.Close()
	ops, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", path, err)
	}
	return ops, nil
}

// Decode reads ops, one JSON object per line.
func Decode(r io.Reader) ([]Op, error) {
	var out []Op
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var o Op
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if !Known(o.F) {
			return nil, fmt.Errorf("line %d: field f: unknown op %q", line, o.F)
		}
		if o.Time < 0 {
			return nil, fmt.Errorf("line %d: field time: negative (%d)", line, o.Time)
		}
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Encode writes ops one per line.
func Encode(w io.Writer, ops []Op) error {
	bw := bufio.NewWriter(w)
	for _, o := range ops {
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := bw.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// FromEvent decodes the op a nemesis event of the history carries (its f
// and value); ok is false for events that are not ops (heal-all,
// divergence) or do not decode.
func FromEvent(f string, value []byte) (Op, bool) {
	if !Known(F(f)) || len(value) == 0 {
		return Op{}, false
	}
	var o Op
	if err := json.Unmarshal(value, &o); err != nil || o.F != F(f) {
		return Op{}, false
	}
	return o, true
}
