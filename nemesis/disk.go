package nemesis

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"

	"github.com/paxtest/paxtest/nemesis/fault"
)

// ErrNothingToDamage marks a damage drawn at random that found no file
// with data to damage (a node that synced nothing yet): the corrupt op
// then damages nothing and says so in its note.
var ErrNothingToDamage = errors.New("nothing to damage")

// Corrupter damages a node's synced data while it is down.
type Corrupter interface {
	// Corrupt damages node id's data as d says; what it drew (a file
	// among those the system checks, an offset, a bit) it fills into d.
	Corrupt(id int, d *fault.Damage, r *rand.Rand) error
	// Repair takes back the last damage to node id's data.
	Repair(id int) error
	// Checked reports whether the system names files it checks for
	// damage: a damage with no file given is drawn among them.
	Checked() bool
}

// PowerLosser is a disk layer that can lose what a node did not sync
// (harness/disk's lazy disk): with tear, one write reaches the disk in part.
type PowerLosser interface {
	PowerLoss(id int, tear *rand.Rand) (fmt.Stringer, error)
}

// lastLine is the last line of a text that has any (a node's last words,
// at the end of the error that says it exited).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// corrupt damages a down node's synced data.
func (x *Exec) corrupt(op *fault.Op) error {
	switch {
	case x.Data == nil:
		return fmt.Errorf("corrupt: this run cannot reach its nodes' data")
	case op.Damage == nil:
		return fmt.Errorf("corrupt n%d: no damage given", op.Node)
	case !x.Cluster.IsDown(op.Node):
		return fmt.Errorf("corrupt n%d: it runs; its data is damaged only while it is down (kill it first)", op.Node)
	}
	err := x.Data.Corrupt(op.Node, op.Damage, x.Rand)
	if errors.Is(err, ErrNothingToDamage) {
		// a node that synced nothing yet: nothing happened, and it says so
		op.Note = err.Error()
		return nil
	}
	if err != nil {
		return fmt.Errorf("corrupt n%d: %w", op.Node, err)
	}
	x.damaged[op.Node] = true
	return nil
}

// repair takes back the damage a node refused to start on; it stays down
// until a restart. Damage that cannot be taken back is said in the op's
// note, and the node stays out (x.stopped).
func (x *Exec) repair(op *fault.Op) error {
	switch {
	case x.Data == nil:
		return fmt.Errorf("repair: this run cannot reach its nodes' data")
	case !x.stopped[op.Node]:
		return fmt.Errorf("repair n%d: it did not refuse damaged data (it has run on its data since), so there is nothing to take back", op.Node)
	}
	if err := x.Data.Repair(op.Node); err != nil {
		// the node changed the file as it refused it (etcd sets a broken
		// snapshot aside): it stays down, and the run says why
		op.Note = fmt.Sprintf("cannot be taken back: %v; n%d stays down", err, op.Node)
		return nil
	}
	delete(x.stopped, op.Node)
	delete(x.damaged, op.Node)
	return nil
}

// powerLoss kills every node of op at once, then drops what each had not
// synced; they stay down until a restart. What was dropped is noted.
func (x *Exec) powerLoss(op *fault.Op) error {
	if x.Disk == nil {
		return fmt.Errorf("power-loss needs the lazy disk (--disk lazy): without it a killed node's writes survive in the page cache")
	}
	for _, id := range op.Nodes {
		if err := x.Cluster.Kill(id); err != nil {
			return err
		}
		delete(x.paused, id)
	}
	var notes []string
	for _, id := range op.Nodes {
		var tear *rand.Rand
		if op.Tear {
			tear = x.Rand
		}
		lost, err := x.Disk.PowerLoss(id, tear)
		if err != nil {
			return fmt.Errorf("power loss of n%d: %w", id, err)
		}
		notes = append(notes, fmt.Sprintf("n%d %s", id, lost))
	}
	op.Note = strings.Join(notes, "; ")
	return nil
}
