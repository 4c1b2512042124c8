// Package hosts puts a cluster's nodes on hosts of their own, instead of
// processes on this machine's loopback: network namespaces made here for
// the run (Netns), or remote machines reached over SSH (SSH). A Hosts is
// the Launcher the cluster starts nodes through, the Shell the fault layer
// runs iptables, tc and ss through on each host, and the address plan
// (each node's own address and ports).
//
// It owns the hosts' lifecycle: what it makes or changes on a host it
// removes at Close, and what a killed harness left it finds and removes
// at the next start. It must not decide faults (nemesis/ does), name a
// system under test (harness/db does) or judge a run.
package hosts

import (
	"github.com/paxtest/paxtest/harness/cluster"
	"github.com/paxtest/paxtest/nemesis/network"
)

// Hosts is where a cluster's nodes run.
type Hosts interface {
	cluster.Launcher   // starts a node's process on its host
	cluster.PortFinder // node id's ports on its host
	network.Shell      // runs a command on node id's host
	// Addr is node id's own address on its host.
	Addr(id int) string
	// Dev is the hosts' interface their peers are reached on (tc's).
	Dev() string
	// Control is this machine's address as the hosts reach it ("" when
	// they cannot: a proxy fault layer needs it).
	Control() string
	// Local reports whether a node's data directory is a directory of
	// this machine (a disk fault layer and data damage need it).
	Local() bool
	// String says where the nodes run, for the run's progress.
	String() string
	Close() error
}

var (
	_ Hosts          = (*Netns)(nil)
	_ Hosts          = (*SSH)(nil)
	_ cluster.Remote = (*SSH)(nil)
)

// Ports every node takes on its host: the peer port and the client port.
// A host of its own has them free (a namespace is empty; a real host is
// checked at start).
func ports(id int) (peer, client int) { return 17000 + 10*id, 17001 + 10*id }
