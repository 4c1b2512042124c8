package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Chain is the iptables chain paxtest owns. Only one iptables run at a time
// can use it; start-up removes whatever a crashed earlier run left in it.
const Chain = "PAXTEST"

// IPTables is the privileged fault layer: node i binds 127.0.0.(10+i), and
// a blocked link is a DROP rule for its source, destination and peer port
// in the PAXTEST chain, jumped to from OUTPUT. Loopback traffic only.
type IPTables struct {
	mu          sync.Mutex
	peers       map[int]string
	hadFilter   bool // the ip filter table existed before us (iptables-nft)
	initialised bool
}

// NewIPTables checks for root and iptables and removes stale rules.
func NewIPTables() (*IPTables, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (run as root, or use --net proxy)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, errors.New("needs the iptables command (apt-get install iptables), or use --net proxy")
	}
	t := &IPTables{}
	t.hadFilter = nftTableExists()
	if err := Cleanup(); err != nil {
		return nil, fmt.Errorf("remove rules left by an earlier run: %w", err)
	}
	return t, nil
}

// Host gives node id its own loopback address.
func (*IPTables) Host(id int) string { return fmt.Sprintf("127.0.0.%d", 10+id) }

// Setup creates the chain and the jump to it.
func (t *IPTables) Setup(peers map[int]string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.peers = peers
	if err := ipt("-N", Chain); err != nil {
		return err
	}
	t.initialised = true
	return ipt("-I", "OUTPUT", "-j", Chain)
}

// Dial: nodes reach each other directly.
func (t *IPTables) Dial(_, to int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peers[to]
}

// Block replaces the chain's rules with one DROP per blocked link.
func (t *IPTables) Block(links [][2]int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := ipt("-F", Chain); err != nil {
		return err
	}
	for _, l := range links {
		src, _, err := net.SplitHostPort(t.peers[l[0]])
		if err != nil {
			return fmt.Errorf("address of n%d: %w", l[0], err)
		}
		dst, port, err := net.SplitHostPort(t.peers[l[1]])
		if err != nil {
			return fmt.Errorf("address of n%d: %w", l[1], err)
		}
		if err := ipt("-A", Chain, "-s", src, "-d", dst, "-p", "tcp", "--dport", port, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

// Close removes the rules, the jump, the chain, and the ip filter table if
// iptables-nft created it for us.
func (t *IPTables) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	if err := Cleanup(); err != nil {
		errs = append(errs, err)
	}
	if !t.hadFilter && nftTableExists() && nftTableEmpty() {
		if out, err := exec.Command("nft", "delete", "table", "ip", "filter").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table ip filter: %v: %s", err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes paxtest's chain and every jump to it, if present.
func Cleanup() error {
	var errs []error
	for ipt("-D", "OUTPUT", "-j", Chain) == nil {
	}
	if chainExists() {
		if err := ipt("-F", Chain); err != nil {
			errs = append(errs, err)
		}
		if err := ipt("-X", Chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func chainExists() bool { return exec.Command("iptables", "-w", "-S", Chain).Run() == nil }

func ipt(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func nftTableExists() bool {
	if _, err := exec.LookPath("nft"); err != nil {
		return false
	}
	return exec.Command("nft", "list", "table", "ip", "filter").Run() == nil
}

// nftTableEmpty reports whether the ip filter table holds no rules.
func nftTableEmpty() bool {
	out, err := exec.Command("nft", "list", "table", "ip", "filter").Output()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") || strings.HasPrefix(l, "type ") || l == "}" {
			continue
		}
		return false
	}
	return true
}
