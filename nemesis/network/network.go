// Package network owns the network fault layers peer traffic passes
// through: Direct (no faults), Proxy (a TCP proxy per directed peer link,
// which can cut and delay links; no privileges) and IPTables (DROP rules
// on per-node loopback addresses; root). The cluster launches nodes on the
// addresses a Network gives and the nemesis cuts and delays links through
// it; both import this package, and it imports neither.
package network

import "time"

// Network is what the cluster needs of a fault layer: the loopback host
// each node binds, and the address a node dials to reach a peer (a
// proxy's, or the peer's own).
type Network interface {
	Host(id int) string
	Setup(peers map[int]string) error // the nodes' real peer addresses
	Dial(from, to int) string
	Close() error
}

// FaultLayer is a Network that can cut directed links.
type FaultLayer interface {
	Network
	// Block cuts exactly the given directed links (from, to); every other
	// link is open. Block(nil) heals everything.
	Block(links [][2]int) error
}

// Delayer is a fault layer that can also slow directed links down.
type Delayer interface {
	// Delay gives the given directed links shape s (every byte held, a
	// bounded rate); every other link carries bytes as they come.
	// Blocking a link drops what it was holding.
	Delay(links [][2]int, s Shape) error
}

// Shape is how a slowed link carries bytes: each held for Delay plus up
// to Jitter more, drawn at random (a stream's bytes stay in order, so a
// chunk never overtakes the one before it), at most Rate bytes a second
// (0: unbounded).
type Shape struct {
	Delay  time.Duration
	Jitter time.Duration
	Rate   int64
}

// Resetter is a fault layer that can reset the connections on links:
// each is closed mid-stream, and the nodes must connect again.
type Resetter interface {
	Reset(links [][2]int) error
}

// Direct is the Network without faults: nodes bind 127.0.0.1 and dial each
// other directly.
type Direct struct{ peers map[int]string }

func (*Direct) Host(int) string                    { return "127.0.0.1" }
func (d *Direct) Setup(peers map[int]string) error { d.peers = peers; return nil }
func (d *Direct) Dial(_, to int) string            { return d.peers[to] }
func (*Direct) Close() error                       { return nil }

var (
	_ FaultLayer = (*Proxy)(nil)
	_ Delayer    = (*Proxy)(nil)
	_ Resetter   = (*Proxy)(nil)
	_ FaultLayer = (*IPTables)(nil)
	_ Network    = (*Direct)(nil)
	_ Sharer     = (*Proxy)(nil)
	_ Sharer     = (*Direct)(nil)
)

// Share: nodes dial each other directly, at one address per node already.
func (*Direct) Share(Identify) {}
