package hosts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/paxtest/paxtest/harness/cluster"
)

// Netns puts each node in a network namespace of its own, made for the
// run: node i is 10.213.K.(10+i) on eth0, a veth whose other end is on a
// bridge in the run's hub namespace. This machine reaches the hub over
// one more veth (ptx<run>, 10.213.K.1): the harness's clients and
// status polls go that way, and nothing else of this machine's network
// is touched. K is a /24 no other interface or route here uses.
//
// Namespaces are named paxtest-<run>-hub and paxtest-<run>-n<i>; a run
// holds the lock /run/paxtest/netns-<run>.lock while it lives, so a
// namespace whose lock is free was left by a killed harness, and
// NewNetns removes it.
type Netns struct {
	run    string // this run's tag: pid and sequence, base 36
	subnet int    // K
	nodes  int
	lock   *os.File
	local  cluster.Local
	made   []string // namespaces made, the hub first
	veth   bool     // the control veth was made
}

// ErrUnavailable: this machine cannot make the hosts asked for (not root,
// a command missing); what to do is in the error.
var ErrUnavailable = errors.New("cannot make these hosts on this machine")

// netnsPrefix starts the name of every namespace paxtest makes.
const netnsPrefix = "paxtest-"

// lockDir holds the live runs' locks.
const lockDir = "/run/paxtest"

// netnsSeq tells apart the namespaces of runs in one process.
var netnsSeq atomic.Int64

// NetnsAvailable says why namespaces cannot be made here (an
// ErrUnavailable, with what to do), or nil.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: it makes network namespaces, which needs root: run as root, or use the default --hosts local", ErrUnavailable)
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "tc", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: it needs the %s command (apt-get install iproute2 iptables)", ErrUnavailable, tool)
		}
	}
	return nil
}

// NewNetns makes the namespaces of nodes nodes (spares included), after
// removing those a killed harness left; it returns the removed ones'
// names too.
func NewNetns(nodes int) (*Netns, []string, error) {
	if err := NetnsAvailable(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("make %s: %w", lockDir, err)
	}
	setup, err := flock(filepath.Join(lockDir, "netns-setup.lock"), true)
	if err != nil {
		return nil, nil, err
	}
	defer setup.Close() // releases the lock
	removed, err := RemoveStaleNetns()
	if err != nil {
		return nil, removed, err
	}
	n := &Netns{run: strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.FormatInt(netnsSeq.Add(1), 36), nodes: nodes}
	if n.lock, err = flock(n.lockPath(), false); err != nil {
		return nil, removed, err
	}
	if !netnsMounted() {
		// ip netns is about to mount /run/netns for us: whichever run
		// leaves it empty unmounts it
		if err := os.WriteFile(mountMarker, nil, 0o644); err != nil {
			return nil, removed, fmt.Errorf("mark /run/netns as paxtest's: %w", err)
		}
	}
	if err := n.make(); err != nil {
		return nil, removed, errors.Join(fmt.Errorf("make the run's network namespaces: %w", err), n.remove())
	}
	return n, removed, nil
}

func (n *Netns) lockPath() string { return filepath.Join(lockDir, "netns-"+n.run+".lock") }

func (n *Netns) ns(id int) string { return fmt.Sprintf("%s%s-n%d", netnsPrefix, n.run, id) }

// Namespace is node id's namespace, as ip netns names it.
func (n *Netns) Namespace(id int) string { return n.ns(id) }

func (n *Netns) hub() string { return netnsPrefix + n.run + "-hub" }
func (n *Netns) ctl() string { return "ptx" + n.run }

// make builds the hub, the control veth and one namespace per node.
func (n *Netns) make() error {
	k, err := freeSubnet()
	if err != nil {
		return err
	}
	n.subnet = k
	hub := n.hub()
	if err := ipCmd("netns", "add", hub); err != nil {
		return err
	}
	n.made = append(n.made, hub)
	steps := [][]string{
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
		{"link", "add", n.ctl(), "type", "veth", "peer", "name", "ctl", "netns", hub},
	}
	if err := ipCmds(steps); err != nil {
		return err
	}
	n.veth = true
	if err := ipCmds([][]string{
		{"-n", hub, "link", "set", "ctl", "master", "br0", "up"},
		{"addr", "add", n.Control() + "/24", "dev", n.ctl()},
		{"link", "set", n.ctl(), "up"},
	}); err != nil {
		return err
	}
	for id := 1; id <= n.nodes; id++ {
		ns, port := n.ns(id), fmt.Sprintf("v%d", id)
		if err := ipCmd("netns", "add", ns); err != nil {
			return err
		}
		n.made = append(n.made, ns)
		if err := ipCmds([][]string{
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", hub},
			{"-n", hub, "link", "set", port, "master", "br0", "up"},
			{"-n", ns, "addr", "add", n.Addr(id) + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
		}); err != nil {
			return err
		}
	}
	return nil
}

// freeSubnet is the first K in 1..250 that no address or route of this
// machine's uses in 10.213.K.0/24.
func freeSubnet() (int, error) {
	var used bytes.Buffer
	for _, args := range [][]string{{"-4", "-o", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			return 0, fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
		}
		used.Write(out)
	}
	for k := 1; k <= 250; k++ {
		if !bytes.Contains(used.Bytes(), []byte(fmt.Sprintf("10.213.%d.", k))) && !bytes.Contains(used.Bytes(), []byte("10.213.0.0/16")) {
			return k, nil
		}
	}
	return 0, errors.New("no free /24 in 10.213.0.0/16 for the run's namespaces (are 250 runs alive?)")
}

// Addr is node id's address in its namespace.
func (n *Netns) Addr(id int) string { return fmt.Sprintf("10.213.%d.%d", n.subnet, 10+id) }

// Control is this machine's end of the control veth.
func (n *Netns) Control() string { return fmt.Sprintf("10.213.%d.1", n.subnet) }

func (n *Netns) String() string {
	return fmt.Sprintf("network namespaces %s%s-n1..n%d on 10.213.%d.0/24 (this machine: %s)", netnsPrefix, n.run, n.nodes, n.subnet, n.Control())
}

// Dev is every namespace's interface.
func (*Netns) Dev() string { return "eth0" }

// Local: the namespaces share this machine's filesystem.
func (*Netns) Local() bool { return true }

// Ports are fixed: a namespace is empty.
func (*Netns) Ports(id int) (int, int) { return ports(id) }

// Launch starts spec in node's namespace: ip netns exec replaces itself
// with the node (the pid, and so the signals and Pdeathsig, are the
// node's).
func (n *Netns) Launch(spec cluster.Spec) (cluster.Process, error) {
	id, err := nodeID(spec.Name)
	if err != nil {
		return nil, err
	}
	spec.Args = append([]string{"netns", "exec", n.ns(id), spec.Binary}, spec.Args...)
	spec.Binary = "ip"
	return n.local.Launch(spec)
}

// Run runs argv in node id's namespace.
func (n *Netns) Run(id int, stdin string, argv ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.ns(id)}, argv...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), n.ns(id), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close removes the control veth and every namespace (with its veths,
// bridge and rules), and releases the run's lock.
func (n *Netns) Close() error {
	setup, err := flock(filepath.Join(lockDir, "netns-setup.lock"), true)
	if err != nil {
		return errors.Join(err, n.remove())
	}
	defer setup.Close()
	return n.remove()
}

func (n *Netns) remove() error {
	var errs []error
	if n.veth {
		// deleting a namespace frees its veths later, asynchronously;
		// this one lives in this machine's namespace, so it goes now
		errs = append(errs, ipCmd("link", "del", n.ctl()))
		n.veth = false
	}
	for _, ns := range n.made {
		errs = append(errs, ipCmd("netns", "del", ns))
	}
	n.made = nil
	if n.lock != nil {
		errs = append(errs, os.Remove(n.lockPath()), n.lock.Close())
		n.lock = nil
	}
	errs = append(errs, unmountNetnsDir())
	return errors.Join(errs...)
}

// RemoveStaleNetns removes the namespaces (and their control veths) of
// runs whose harness is gone: their lock is free. It returns their names.
func RemoveStaleNetns() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var removed []string
	var errs []error
	aliveRuns := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		run, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		run, _, _ = strings.Cut(run, "-")
		alive, seen := aliveRuns[run]
		if !seen {
			// a run's lock is held while it lives (flock makes a missing one)
			lock := filepath.Join(lockDir, "netns-"+run+".lock")
			f, err := flock(lock, false)
			alive = err != nil
			if f != nil {
				errs = append(errs, os.Remove(lock), f.Close())
			}
			aliveRuns[run] = alive
			if !alive {
				_ = ipCmd("link", "del", "ptx"+run) // gone with its namespace already, unless it was made
			}
		}
		if alive {
			continue
		}
		if err := ipCmd("netns", "del", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// flock opens path and locks it exclusively: waiting for it (wait), or
// failing at once if another holds it. A free lock whose file is missing
// is created.
func flock(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// netnsMounted reports whether ip netns's directory is a mount already.
func netnsMounted() bool {
	b, err := os.ReadFile("/proc/self/mounts")
	return err == nil && bytes.Contains(b, []byte(" /run/netns "))
}

// mountMarker says that ip netns mounted /run/netns for a paxtest run.
const mountMarker = lockDir + "/netns-mounted-by-paxtest"

// unmountNetnsDir unmounts the mount of /run/netns that ip netns made for
// a paxtest run (this one or an earlier, killed one), once no namespace
// is left in it; one that was there before paxtest stays.
func unmountNetnsDir() error {
	if _, err := os.Stat(mountMarker); err != nil {
		return nil // not paxtest's
	}
	left, err := os.ReadDir("/run/netns")
	if err != nil || len(left) > 0 {
		return nil // another run's namespaces still use it
	}
	if netnsMounted() {
		if err := syscall.Unmount("/run/netns", syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount /run/netns: %w", err)
		}
	}
	return os.Remove(mountMarker)
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ipCmds(steps [][]string) error {
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// nodeID is the id in a node's name ("n3").
func nodeID(name string) (int, error) {
	id, err := strconv.Atoi(strings.TrimPrefix(name, "n"))
	if err != nil || !strings.HasPrefix(name, "n") {
		return 0, fmt.Errorf("node name %q is not n<id>", name)
	}
	return id, nil
}

var _ io.Closer = (*Netns)(nil)
