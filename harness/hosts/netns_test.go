package hosts

import (
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/paxtest/paxtest/nemesis/network"
)

// needNetns skips a test on a machine where namespaces cannot be made.
func needNetns(t *testing.T) {
	t.Helper()
	if err := NetnsAvailable(); err != nil {
		t.Skipf("skipped (CI runs it as root, with what it needs): %v", err)
	}
}

// inNetns runs f on a thread in namespace ns: the sockets f opens live there.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	require.NoError(t, err)
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	require.NoError(t, err)
	defer target.Close()
	require.NoError(t, unix.Setns(int(target.Fd()), unix.CLONE_NEWNET))
	f()
	require.NoError(t, unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET))
	runtime.UnlockOSThread() // only once the thread is back home
}

func namespaces(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	return string(out)
}

func newNetns(t *testing.T, nodes int) *Netns {
	t.Helper()
	n, _, err := NewNetns(nodes)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func TestEachNodeHasAnAddressOfItsOwnThatThisMachineReaches(t *testing.T) {
	needNetns(t)
	n := newNetns(t, 2)
	require.NotEqual(t, n.Addr(1), n.Addr(2))
	for id := 1; id <= 2; id++ {
		peer, _ := n.Ports(id)
		var ln net.Listener
		inNetns(t, n.ns(id), func() {
			var err error
			ln, err = net.Listen("tcp", net.JoinHostPort(n.Addr(id), strconv.Itoa(peer)))
			require.NoError(t, err, "node %d's address is in its namespace", id)
		})
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		require.NoError(t, err, "this machine reaches n%d over the control veth", id)
		s, err := ln.Accept()
		require.NoError(t, err)
		host, _, _ := net.SplitHostPort(s.RemoteAddr().String())
		require.Equal(t, n.Control(), host, "the harness's connections come from the control address")
		c.Close()
		s.Close()
		ln.Close()
	}
	// the namespace is a host of its own: its loopback is not this machine's
	require.NoError(t, n.Run(1, "", "sh", "-c", "ip -4 -o addr show dev eth0 | grep -q "+n.Addr(1)))
	require.Error(t, n.Run(2, "", "sh", "-c", "ip -4 -o addr show dev eth0 | grep -q "+n.Addr(1)+" "))
}

func TestCloseLeavesNoNamespaceVethOrLock(t *testing.T) {
	needNetns(t)
	n, _, err := NewNetns(3)
	require.NoError(t, err)
	require.Contains(t, namespaces(t), n.hub())
	require.NoError(t, n.Close())
	require.NotContains(t, namespaces(t), netnsPrefix+n.run+"-")
	require.Error(t, exec.Command("ip", "link", "show", n.ctl()).Run(), "the control veth is gone")
	_, err = os.Stat(n.lockPath())
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestTheNextStartRemovesOnlyNamespacesWhoseHarnessIsGone(t *testing.T) {
	needNetns(t)
	live := newNetns(t, 1)
	// a killed harness's: its lock is not held (here, never made)
	dead := netnsPrefix + "zzzdead-n1"
	require.NoError(t, exec.Command("ip", "netns", "add", dead).Run())
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", dead).Run() })
	removed, err := RemoveStaleNetns()
	require.NoError(t, err)
	require.Equal(t, []string{dead}, filterPrefix(removed, netnsPrefix+"zzz"))
	require.NotContains(t, namespaces(t), dead)
	require.Contains(t, namespaces(t), live.ns(1), "a live run's namespaces stay")
	for _, r := range removed {
		require.NotContains(t, r, live.run)
	}
}

func filterPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// The fault layer on hosts of their own: a cut link from→to drops only
// from's packets to to's peer port, on from's host; healing opens it; a
// reset kills an open connection on the link.
func TestHostIPTablesCutsOneDirectionOnTheSendersHostAndResets(t *testing.T) {
	needNetns(t)
	n := newNetns(t, 2)
	peers := map[int]string{}
	lns := map[int]net.Listener{}
	for id := 1; id <= 2; id++ {
		peer, _ := n.Ports(id)
		peers[id] = net.JoinHostPort(n.Addr(id), strconv.Itoa(peer))
		inNetns(t, n.ns(id), func() {
			ln, err := net.Listen("tcp", peers[id])
			require.NoError(t, err)
			lns[id] = ln
		})
		defer lns[id].Close()
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(c, c) }()
			}
		}(lns[id])
	}
	layer := network.NewHostIPTables(n, n.Addr, n.Dev())
	require.NoError(t, layer.Setup(peers))
	defer func() { require.NoError(t, layer.Close()) }()
	dial := func(from, to int) (net.Conn, error) {
		var c net.Conn
		var err error
		inNetns(t, n.ns(from), func() { c, err = net.DialTimeout("tcp", peers[to], 700*time.Millisecond) })
		return c, err
	}
	reaches := func(from, to int) bool {
		c, err := dial(from, to)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	require.True(t, reaches(1, 2))
	require.NoError(t, layer.Block([][2]int{{1, 2}}))
	require.False(t, reaches(1, 2), "the cut link drops n1's packets to n2")
	require.True(t, reaches(2, 1), "the other direction stays open")
	require.NoError(t, layer.Block(nil))
	require.True(t, reaches(1, 2), "healed")

	c, err := dial(1, 2)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 1))
	require.NoError(t, err)
	require.NoError(t, layer.Reset([][2]int{{1, 2}}))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, _ = c.Write([]byte("y"))
	_, err = io.ReadFull(c, make([]byte, 1))
	require.Error(t, err, "the reset killed the connection mid-stream")
	require.True(t, reaches(1, 2), "the link stays open after a reset")
}
