package network

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Proxy is the default fault layer, needing no privileges: every directed
// peer link from→to passes through a TCP proxy owned by the harness. A
// blocked link's connections are closed, and new ones are accepted and
// their bytes discarded, as packets to a partitioned host would be.
//
// For a system whose nodes all reach a peer at the one address it
// advertises (etcd's peer URLs), Share switches the proxy to one listener
// per node: each connection is put on its link by the sender it names at
// its start (identify), and it carries both ways of that link, as TCP does.
type Proxy struct {
	mu    sync.Mutex
	links map[[2]int]*link
	// shared mode: one listener per node, and what names a connection's sender
	identify Identify
	shared   map[int]net.Listener
	byAddr   map[string]int // shared listener address -> node
	// listen is the address the proxies listen on; hostOf, where nodes
	// bind (nil: 127.0.0.1)
	listen string
	hostOf func(id int) string
}

// Identify reads, from the start of a connection a node opened to a
// peer, the address the sender advertises as its own, without consuming
// what it reads (Peek); the connection is forwarded whole.
type Identify func(br *bufio.Reader) (string, error)

// Sharer is a fault layer that can give every node one address per peer.
type Sharer interface {
	// Share is called before Setup: from then on Dial(from, to) is the
	// same for every from.
	Share(identify Identify)
}

// Share makes the proxy give one address per node (before Setup).
func (p *Proxy) Share(identify Identify) { p.identify = identify }

// NewProxy returns an empty proxy layer; Setup starts the proxies.
func NewProxy() *Proxy { return &Proxy{links: map[[2]int]*link{}, listen: "127.0.0.1"} }

// NewProxyAt is a proxy layer for nodes on hosts of their own: node id
// binds host(id), and the proxies listen on listen, an address of this
// machine every host reaches.
func NewProxyAt(listen string, host func(id int) string) *Proxy {
	return &Proxy{links: map[[2]int]*link{}, listen: listen, hostOf: host}
}

// Host is where node id binds: 127.0.0.1, or its own host's address.
func (p *Proxy) Host(id int) string {
	if p.hostOf != nil {
		return p.hostOf(id)
	}
	return "127.0.0.1"
}

// Setup starts one proxy per ordered pair of nodes (shared: one listener
// per node, and the links' state without listeners of their own).
func (p *Proxy) Setup(peers map[int]string) error {
	if p.identify != nil {
		return p.setupShared(peers)
	}
	for from := range peers {
		for to, addr := range peers {
			if from == to {
				continue
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(p.listen, "0"))
			if err != nil {
				return errors.Join(fmt.Errorf("start proxy n%d->n%d: %w", from, to, err), p.Close())
			}
			l := &link{from: from, to: to, target: addr, ln: ln, conns: map[net.Conn]bool{}}
			p.links[[2]int{from, to}] = l
			go l.serve()
		}
	}
	return nil
}

// Dial is the proxy address of the link from→to (shared: of node to).
func (p *Proxy) Dial(from, to int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shared != nil {
		return p.shared[to].Addr().String()
	}
	return p.links[[2]int{from, to}].ln.Addr().String()
}

// Block cuts the given links and opens all others.
func (p *Proxy) Block(links [][2]int) error {
	cut := map[[2]int]bool{}
	for _, l := range links {
		cut[l] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, l := range p.links {
		l.setBlocked(cut[k])
	}
	return nil
}

// Delay gives the given links shape s and clears every other link's. A
// link whose shape is lifted or changed has its connections reset: what
// they held under the old shape is dropped, as removing a netem queue
// drops it, and the nodes connect again at the new pace — never left to
// arrive on the old schedule after a heal.
func (p *Proxy) Delay(links [][2]int, s Shape) error {
	slow := map[[2]int]bool{}
	for _, l := range links {
		slow[l] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, l := range p.links {
		l.mu.Lock()
		was := l.shape
		l.shape = Shape{}
		if slow[k] {
			l.shape = s
		}
		if was != (Shape{}) && was != l.shape {
			for c := range l.conns {
				c.Close()
				delete(l.conns, c)
			}
		}
		l.mu.Unlock()
	}
	return nil
}

// Reset closes every connection on the given links, mid-stream; the links
// stay open, so the nodes connect again.
func (p *Proxy) Reset(links [][2]int) error {
	p.mu.Lock()
	var ls []*link
	for _, k := range links {
		if l := p.links[k]; l != nil {
			ls = append(ls, l)
		}
	}
	p.mu.Unlock()
	for _, l := range ls {
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
			delete(l.conns, c)
		}
		l.mu.Unlock()
	}
	return nil
}

// Close stops every proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for id, ln := range p.shared {
		if err := ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close proxy of n%d: %w", id, err))
		}
	}
	p.shared = nil
	for _, l := range p.links {
		if err := l.close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.links = map[[2]int]*link{}
	return errors.Join(errs...)
}

type link struct {
	from, to int
	target   string
	ln       net.Listener

	mu      sync.Mutex
	blocked bool
	closed  bool
	shape   Shape
	conns   map[net.Conn]bool
}

func (l *link) currentShape() Shape {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shape
}

func (l *link) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		blocked := l.blocked
		l.conns[c] = true
		l.mu.Unlock()
		if blocked {
			go l.discard(c)
		} else {
			go l.forward(c)
		}
	}
}

func (l *link) drop(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(l.conns, c)
	}
}

// discard swallows what a sender writes over a blocked link.
func (l *link) discard(c net.Conn) {
	_, _ = io.Copy(io.Discard, c) // ends when the link heals or the sender gives up
	l.drop(c)
}

func (l *link) forward(c net.Conn) {
	up, err := net.Dial("tcp", l.target)
	if err != nil {
		l.drop(c)
		return
	}
	l.mu.Lock()
	if l.closed || l.blocked {
		l.mu.Unlock()
		up.Close()
		l.drop(c)
		return
	}
	l.conns[up] = true
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { l.copyDelayed(up, c); done <- struct{}{} }()
	go func() {
		_, _ = io.Copy(c, up) // ends when either side closes, which ends the forwarding
		done <- struct{}{}
	}()
	<-done
	l.drop(c, up)
}

// copyDelayed copies src to dst in the link's shape at the time each
// chunk was read: held for the delay and its jitter (never before the
// chunk ahead of it), then paced to the rate. When either side closes,
// chunks still held are dropped, as packets in flight are when a link is
// cut.
func (l *link) copyDelayed(dst io.Writer, src io.Reader) {
	type chunk struct {
		b    []byte
		due  time.Time
		rate int64
	}
	q := make(chan chunk, 1024)
	stop := make(chan struct{})
	go func() {
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				s := l.currentShape()
				due := time.Now().Add(s.Delay)
				if s.Jitter > 0 {
					due = due.Add(time.Duration(rand.Int64N(int64(s.Jitter) + 1)))
				}
				if due.Before(last) {
					due = last // in order: a stream cannot reorder its bytes
				}
				last = due
				select {
				case q <- chunk{buf[:n], due, s.Rate}:
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer close(stop)
	var free time.Time // when the paced link can send again
	for c := range q {
		at := c.due
		if c.rate > 0 && free.After(at) {
			at = free
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
		if c.rate > 0 {
			free = time.Now().Add(time.Duration(float64(len(c.b)) / float64(c.rate) * float64(time.Second)))
		}
	}
}

// setBlocked switches the link. Either way the current connections are
// closed: a stream whose bytes were partly discarded cannot resume, and a
// sender whose bytes were discarded must reconnect to be heard again.
func (l *link) setBlocked(b bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blocked == b {
		return
	}
	l.blocked = b
	for c := range l.conns {
		c.Close()
		delete(l.conns, c)
	}
}

func (l *link) close() error {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.conns = map[net.Conn]bool{}
	l.mu.Unlock()
	if l.ln == nil { // shared mode: the listener is the node's
		return nil
	}
	if err := l.ln.Close(); err != nil {
		return fmt.Errorf("close proxy n%d->n%d: %w", l.from, l.to, err)
	}
	return nil
}
