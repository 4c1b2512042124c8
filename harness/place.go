package harness

import (
	"errors"
	"fmt"

	"github.com/paxtest/paxtest/harness/hosts"
	"github.com/paxtest/paxtest/nemesis/network"
)

// openHosts makes the hosts the nodes run on (--hosts), after removing
// what a killed harness left; nil for processes on this machine's
// loopback.
func (r *run) openHosts() (hosts.Hosts, error) {
	o := r.o
	switch o.Hosts {
	case HostsNetns:
		h, removed, err := hosts.NewNetns(o.Nodes + o.Spares)
		for _, ns := range removed {
			fmt.Fprintf(o.Progress, "removed a network namespace left by a harness that was killed: %s\n", ns)
		}
		if errors.Is(err, hosts.ErrUnavailable) {
			return nil, UsageError{fmt.Errorf("--hosts netns: %w", err)}
		}
		if err != nil {
			return nil, fmt.Errorf("--hosts netns: %w", err)
		}
		fmt.Fprintf(o.Progress, "nodes run in %s\n", h)
		return h, nil
	case HostsSSH:
		f, err := hosts.ReadHostFile(o.HostFile, o.Nodes+o.Spares)
		if err != nil {
			return nil, UsageError{err}
		}
		h, err := hosts.NewSSH(f, o.Nodes+o.Spares, o.Progress)
		var fe *hosts.FileError
		if errors.As(err, &fe) {
			fe.File = o.HostFile
			return nil, UsageError{err}
		}
		if err != nil {
			return nil, fmt.Errorf("--hosts ssh: %w", err)
		}
		fmt.Fprintf(o.Progress, "nodes run on %s\n", h)
		return h, nil
	}
	return nil, nil
}

// faultLayer is the network fault layer --net names, for nodes on h (nil:
// this machine's loopback).
func (r *run) faultLayer(h hosts.Hosts) error {
	o := r.o
	switch {
	case h != nil && o.Net == "iptables":
		t := network.NewHostIPTables(h, h.Addr, h.Dev())
		r.net, r.delays = t, t
	case h != nil:
		if h.Control() == "" {
			return UsageError{fmt.Errorf("--net proxy needs an address of this machine the hosts reach, which --hosts %s has not: use --net iptables", o.Hosts)}
		}
		p := network.NewProxyAt(h.Control(), h.Addr)
		r.net, r.delays = p, p
	case o.Net == "iptables":
		ipt, err := network.NewIPTables()
		if err != nil {
			return UsageError{fmt.Errorf("--net iptables: %w", err)}
		}
		r.net = ipt
	default:
		p := network.NewProxy()
		r.net, r.delays = p, p
	}
	return nil
}
