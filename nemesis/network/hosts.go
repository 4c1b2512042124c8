package network

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
)

// Shell runs a command on the host of node id, as root there (a network
// namespace's, or a remote host's over SSH): the fault layer of nodes on
// hosts of their own acts through it, as an operator would on each host.
type Shell interface {
	// Run runs argv on node id's host, with stdin as its input; an error
	// carries what the command wrote.
	Run(id int, stdin string, argv ...string) error
}

// HostChain is the iptables chain paxtest owns on each host.
const HostChain = "PAXTEST"

// HostIPTables is the fault layer of nodes on hosts of their own (each
// with its own address): a cut link from→to is a DROP rule on from's
// host for packets to to's address and peer port, in the PAXTEST chain
// its OUTPUT jumps to; a slowed link is a netem queue on from's host that
// a filter on to's address and port feeds; a reset kills from's sockets
// to that address and port (ss -K). Every rule lives on a host of the
// run's (or in a namespace it made), never on the machine's own tables.
type HostIPTables struct {
	sh    Shell
	host  func(id int) string
	dev   string     // the hosts' interface the peers are reached on
	op    sync.Mutex // one change of the faults at a time
	mu    sync.Mutex // the maps below
	peers map[int]string
	rules map[int]string // each host's PAXTEST chain, as last written
	qdisc map[int]bool   // hosts with a netem queue
	netem bool           // the hosts' kernels have netem (Setup found out)
}

var (
	_ FaultLayer = (*HostIPTables)(nil)
	_ Delayer    = (*HostIPTables)(nil)
	_ Resetter   = (*HostIPTables)(nil)
	_ Sharer     = (*HostIPTables)(nil)
)

// NewHostIPTables is the fault layer over sh; node id binds host(id), and
// its peers are reached through its interface dev.
func NewHostIPTables(sh Shell, host func(id int) string, dev string) *HostIPTables {
	return &HostIPTables{sh: sh, host: host, dev: dev, rules: map[int]string{}, qdisc: map[int]bool{}}
}

// Host is node id's own address.
func (t *HostIPTables) Host(id int) string { return t.host(id) }

// Share: every node has an address of its own, and its connections leave
// from it, so peers sharing one address per node are told apart already.
func (*HostIPTables) Share(Identify) {}

// Setup makes the chain and the jump to it on every host, after removing
// what an earlier run left there.
func (t *HostIPTables) Setup(peers map[int]string) error {
	t.op.Lock()
	defer t.op.Unlock()
	t.mu.Lock()
	t.peers = peers
	t.mu.Unlock()
	probe := minID(peers) // one host tells whether the kernels have netem
	return t.each(func(id int) error {
		if err := t.clean(id); err != nil {
			return err
		}
		if err := t.sh.Run(id, "", "iptables", "-w", "-N", HostChain); err != nil {
			return err
		}
		if err := t.sh.Run(id, "", "iptables", "-w", "-I", "OUTPUT", "-j", HostChain); err != nil {
			return err
		}
		if id == probe {
			t.probeNetem(id)
		}
		return nil
	})
}

// probeNetem finds out whether the hosts can slow links down: a kernel
// built without netem (CONFIG_NET_SCH_NETEM) cannot.
func (t *HostIPTables) probeNetem(id int) {
	ok := t.sh.Run(id, "", "tc", "qdisc", "add", "dev", t.dev, "root", "netem", "delay", "1ms") == nil
	if ok {
		ok = t.sh.Run(id, "", "tc", "qdisc", "del", "dev", t.dev, "root") == nil
	}
	t.mu.Lock()
	t.netem = ok
	t.mu.Unlock()
}

// CanDelay reports whether the hosts have netem, known once Setup ran:
// without it this layer cuts and resets links but cannot slow them.
func (t *HostIPTables) CanDelay() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.netem
}

func minID(peers map[int]string) int {
	low := 0
	for id := range peers {
		if low == 0 || id < low {
			low = id
		}
	}
	return low
}

// clean removes the jump, the chain and a netem queue from id's host, if
// there; it is what teardown and the next start run.
func (t *HostIPTables) clean(id int) error {
	for t.sh.Run(id, "", "iptables", "-w", "-D", "OUTPUT", "-j", HostChain) == nil {
	}
	var errs []error
	if t.sh.Run(id, "", "iptables", "-w", "-S", HostChain) == nil {
		errs = append(errs, t.sh.Run(id, "", "iptables", "-w", "-F", HostChain), t.sh.Run(id, "", "iptables", "-w", "-X", HostChain))
	}
	_ = t.sh.Run(id, "", "tc", "qdisc", "del", "dev", t.dev, "root") // absent unless a link was slowed
	return errors.Join(errs...)
}

// Dial: nodes reach each other directly.
func (t *HostIPTables) Dial(_, to int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peers[to]
}

// Block writes each host's chain: one DROP per blocked link leaving it.
// Hosts whose rules do not change are not touched.
func (t *HostIPTables) Block(links [][2]int) error {
	t.op.Lock()
	defer t.op.Unlock()
	want := map[int][]string{}
	for _, l := range links {
		dst, port, err := t.addr(l[1])
		if err != nil {
			return err
		}
		want[l[0]] = append(want[l[0]], fmt.Sprintf("-A %s -d %s -p tcp --dport %s -j DROP", HostChain, dst, port))
	}
	return t.each(func(id int) error {
		sort.Strings(want[id])
		rules := fmt.Sprintf("*filter\n:%s - [0:0]\n%sCOMMIT\n", HostChain, strings.Join(append(want[id], ""), "\n"))
		t.mu.Lock()
		same := t.rules[id] == rules
		t.mu.Unlock()
		if same {
			return nil
		}
		// declaring the chain flushes it; --noflush keeps every other rule
		if err := t.sh.Run(id, rules, "iptables-restore", "-w", "--noflush"); err != nil {
			return err
		}
		t.mu.Lock()
		t.rules[id] = rules
		t.mu.Unlock()
		return nil
	})
}

// Delay gives the given links shape s and clears every other link's: on
// each sending host, a prio queue whose fourth band is a netem queue,
// fed by one filter per slowed destination.
func (t *HostIPTables) Delay(links [][2]int, s Shape) error {
	t.op.Lock()
	defer t.op.Unlock()
	slow := map[int][][2]string{}
	for _, l := range links {
		dst, port, err := t.addr(l[1])
		if err != nil {
			return err
		}
		slow[l[0]] = append(slow[l[0]], [2]string{dst, port})
	}
	return t.each(func(id int) error {
		t.mu.Lock()
		had := t.qdisc[id]
		t.mu.Unlock()
		if had {
			if err := t.sh.Run(id, "", "tc", "qdisc", "del", "dev", t.dev, "root"); err != nil {
				return err
			}
			t.mu.Lock()
			t.qdisc[id] = false
			t.mu.Unlock()
		}
		if len(slow[id]) == 0 {
			return nil
		}
		t.mu.Lock()
		t.qdisc[id] = true // before the batch: one that fails half-way may have added the queue
		t.mu.Unlock()
		return t.sh.Run(id, netemBatch(t.dev, slow[id], s), "tc", "-batch", "-")
	})
}

// netemBatch is the tc batch that slows packets to dsts on dev with s.
func netemBatch(dev string, dsts [][2]string, s Shape) string {
	var b strings.Builder
	fmt.Fprintf(&b, "qdisc add dev %s root handle 1: prio bands 4 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", dev)
	fmt.Fprintf(&b, "qdisc add dev %s parent 1:4 handle 40: netem delay %dus", dev, s.Delay.Microseconds())
	if s.Jitter > 0 {
		fmt.Fprintf(&b, " %dus", s.Jitter.Microseconds())
	}
	if s.Rate > 0 {
		fmt.Fprintf(&b, " rate %dbit", 8*s.Rate)
	}
	b.WriteString("\n")
	for _, d := range dsts {
		fmt.Fprintf(&b, "filter add dev %s parent 1: protocol ip prio 1 u32 match ip dst %s/32 match ip dport %s 0xffff flowid 1:4\n", dev, d[0], d[1])
	}
	return b.String()
}

// Reset kills the sending host's sockets on each link, mid-stream; the
// links stay open, so the nodes connect again.
func (t *HostIPTables) Reset(links [][2]int) error {
	t.op.Lock()
	defer t.op.Unlock()
	var errs []error
	for _, l := range links {
		dst, port, err := t.addr(l[1])
		if err != nil {
			return err
		}
		errs = append(errs, t.sh.Run(l[0], "", "ss", "-tnK", "dst", dst, "dport", "=", ":"+port))
	}
	return errors.Join(errs...)
}

// Close removes the chain, its jump and any netem queue from every host.
func (t *HostIPTables) Close() error {
	t.op.Lock()
	defer t.op.Unlock()
	return t.each(t.clean)
}

// addr splits node id's peer address.
func (t *HostIPTables) addr(id int) (string, string, error) {
	t.mu.Lock()
	a := t.peers[id]
	t.mu.Unlock()
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", "", fmt.Errorf("address of n%d: %w", id, err)
	}
	return host, port, nil
}

// each runs f for every host at once and joins the errors.
func (t *HostIPTables) each(f func(id int) error) error {
	t.mu.Lock()
	ids := make([]int, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	t.mu.Unlock()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(id); err != nil {
				errs[i] = fmt.Errorf("n%d's host: %w", id, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
