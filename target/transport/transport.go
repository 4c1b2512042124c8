// Package transport carries protocol messages between nodes over TCP. Each
// peer has a bounded outbound queue and a sender goroutine that dials with
// backoff; when a peer is unreachable or its queue is full, messages are
// dropped (Paxos tolerates loss) and the protocol core is never blocked.
// Messages are gob-encoded on one long-lived stream per connection.
//
// It owns sockets only: it must not interpret messages or touch storage.
package transport

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/paxtest/paxtest/target/paxos"
)

// Config configures a Transport.
type Config struct {
	ID     paxos.NodeID
	Listen string                  // address to accept peer connections on
	Peers  map[paxos.NodeID]string // address to dial for each other node
	// Queue bounds each peer's outbound queue (default 8192 messages).
	Queue  int
	Logger *slog.Logger
}

// Transport sends and receives messages.
type Transport struct {
	cfg   Config
	ln    net.Listener
	recv  chan paxos.Message
	peers map[paxos.NodeID]*peer
	stop  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

type peer struct {
	addr  string
	queue chan paxos.Message
}

// New listens on cfg.Listen and starts a sender per peer.
func New(cfg Config) (*Transport, error) {
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for peers on %s: %w", cfg.Listen, err)
	}
	t := &Transport{
		cfg: cfg, ln: ln, recv: make(chan paxos.Message, 4096),
		peers: map[paxos.NodeID]*peer{}, stop: make(chan struct{}), conns: map[net.Conn]bool{},
	}
	for id, addr := range cfg.Peers {
		if id == cfg.ID {
			continue
		}
		p := &peer{addr: addr, queue: make(chan paxos.Message, cfg.Queue)}
		t.peers[id] = p
		t.wg.Add(1)
		go t.sendLoop(id, p)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the address the transport listens on.
func (t *Transport) Addr() string { return t.ln.Addr().String() }

// Recv delivers received messages.
func (t *Transport) Recv() <-chan paxos.Message { return t.recv }

// Send queues m for its destination without blocking; it reports whether
// the message was queued.
func (t *Transport) Send(m paxos.Message) bool {
	p, ok := t.peers[m.To]
	if !ok {
		return false
	}
	select {
	case p.queue <- m:
		return true
	default:
		return false
	}
}

// Close stops every goroutine and closes every connection.
func (t *Transport) Close() error {
	close(t.stop)
	var errs []error
	if err := t.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, fmt.Errorf("close peer listener: %w", err))
	}
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return errors.Join(errs...)
}

func (t *Transport) track(c net.Conn, on bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.stop:
		c.Close()
		return false
	default:
	}
	if on {
		t.conns[c] = true
	} else {
		delete(t.conns, c)
	}
	return true
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.stop:
				return
			default:
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !t.track(c, true) {
			return
		}
		t.wg.Add(1)
		go t.readLoop(c)
	}
}

func (t *Transport) readLoop(c net.Conn) {
	defer t.wg.Done()
	defer func() { c.Close(); t.track(c, false) }()
	dec := gob.NewDecoder(bufio.NewReaderSize(c, 64<<10))
	for {
		var m paxos.Message
		if err := dec.Decode(&m); err != nil {
			return
		}
		select {
		case t.recv <- m:
		case <-t.stop:
			return
		}
	}
}

func (t *Transport) sendLoop(id paxos.NodeID, p *peer) {
	defer t.wg.Done()
	backoff := 10 * time.Millisecond
	for {
		c, err := t.dialer().Dial("tcp", p.addr)
		if err != nil {
			t.drain(p) // an unreachable peer: drop what waits, do not block
			select {
			case <-t.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 500*time.Millisecond)
			continue
		}
		backoff = 10 * time.Millisecond
		if !t.track(c, true) {
			return
		}
		err = t.writeLoop(c, p)
		c.Close()
		t.track(c, false)
		if err == nil {
			return // stopped
		}
		t.cfg.Logger.Debug("peer connection lost", "peer", id, "addr", p.addr, "err", err)
	}
}

// dialer dials from this node's own listen host, so that per-node network
// rules (iptables on 127.0.0.x addresses) see the right source address.
func (t *Transport) dialer() *net.Dialer {
	d := &net.Dialer{Timeout: time.Second}
	if host, _, err := net.SplitHostPort(t.cfg.Listen); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	return d
}

func (t *Transport) drain(p *peer) {
	for {
		select {
		case <-p.queue:
		default:
			return
		}
	}
}

// writeLoop encodes queued messages until the connection fails (returns
// the error) or the transport stops (returns nil).
func (t *Transport) writeLoop(c net.Conn, p *peer) error {
	w := bufio.NewWriterSize(c, 64<<10)
	enc := gob.NewEncoder(w)
	for {
		select {
		case <-t.stop:
			return nil
		case m := <-p.queue:
			if err := c.SetWriteDeadline(time.Now().Add(2 * time.Second)); err != nil {
				return err
			}
			if err := enc.Encode(m); err != nil {
				return err
			}
			for more := true; more; {
				select {
				case m := <-p.queue:
					if err := enc.Encode(m); err != nil {
						return err
					}
				default:
					more = false
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}
