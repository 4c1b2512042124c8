package network

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// unknownSender is the link end of a connection whose sender identify
// could not name (a version probe, say): its links are never cut.
const unknownSender = 0

// identifyWithin bounds how long a new connection may take to name its
// sender before it is forwarded as an unknown one's.
const identifyWithin = 3 * time.Second

// setupShared starts one listener per node and the state of every
// directed link, the unknown sender's included.
func (p *Proxy) setupShared(peers map[int]string) error {
	p.mu.Lock()
	p.shared, p.byAddr = map[int]net.Listener{}, map[string]int{}
	p.mu.Unlock()
	for to := range peers {
		ln, err := net.Listen("tcp", net.JoinHostPort(p.listen, "0"))
		if err != nil {
			return errors.Join(fmt.Errorf("start proxy of n%d: %w", to, err), p.Close())
		}
		p.mu.Lock()
		p.shared[to], p.byAddr[ln.Addr().String()] = ln, to
		for from := range peers {
			if from != to {
				p.links[[2]int{from, to}] = &link{from: from, to: to, target: peers[to], conns: map[net.Conn]bool{}}
			}
		}
		p.links[[2]int{unknownSender, to}] = &link{from: unknownSender, to: to, target: peers[to], conns: map[net.Conn]bool{}}
		p.links[[2]int{to, unknownSender}] = &link{from: to, to: unknownSender, conns: map[net.Conn]bool{}}
		p.mu.Unlock()
	}
	for to, ln := range p.shared {
		go p.serveShared(to, ln)
	}
	return nil
}

func (p *Proxy) serveShared(to int, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.attribute(to, c)
	}
}

// attribute names the sender of c and forwards it over its link to node
// to: what the sender writes goes the way from→to, what comes back the
// way to→from, each with its link's delay; a cut of either way closes it.
func (p *Proxy) attribute(to int, c net.Conn) {
	br := bufio.NewReaderSize(c, 64<<10)
	from := unknownSender
	if err := c.SetReadDeadline(time.Now().Add(identifyWithin)); err == nil {
		if addr, err := p.identify(br); err == nil {
			p.mu.Lock()
			if id, ok := p.byAddr[addr]; ok && id != to {
				from = id
			}
			p.mu.Unlock()
		}
		_ = c.SetReadDeadline(time.Time{}) // a conn that cannot clear it fails its next read, and is dropped then
	}
	p.mu.Lock()
	there, back := p.links[[2]int{from, to}], p.links[[2]int{to, from}]
	p.mu.Unlock()
	if there == nil || back == nil { // the proxy was closed meanwhile
		c.Close()
		return
	}
	if open := there.join(c); !back.join(c) || !open {
		// blocked: swallow what the sender writes until a heal closes it
		_, _ = io.Copy(io.Discard, br)
		there.drop(c)
		back.drop(c)
		return
	}
	up, err := net.Dial("tcp", there.target)
	if err != nil || !there.join(up) || !back.join(up) {
		if up != nil {
			there.drop(up)
			back.drop(up)
		}
		there.drop(c)
		back.drop(c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { there.copyDelayed(up, br); done <- struct{}{} }()
	go func() { back.copyDelayed(c, up); done <- struct{}{} }()
	<-done
	there.drop(c, up)
	back.drop(c, up)
}

// join adds c to the link's connections, unless the link is blocked or
// closed (then c is still added, so that a heal or Close closes it).
func (l *link) join(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns[c] = true
	return !l.blocked && !l.closed
}
