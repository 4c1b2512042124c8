package network

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDelayedLinkHoldsBytesAndACutDropsWhatItHeld(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan []byte, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				b, _ := io.ReadAll(c)
				got <- b
			}()
		}
	}()
	p := NewProxy()
	require.NoError(t, p.Setup(map[int]string{1: "127.0.0.1:1", 2: ln.Addr().String()}))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	const d = 150 * time.Millisecond
	require.NoError(t, p.Delay([][2]int{{1, 2}}, Shape{Delay: d}))

	c, err := net.Dial("tcp", p.Dial(1, 2))
	require.NoError(t, err)
	start := time.Now()
	_, err = c.Write([]byte("held"))
	require.NoError(t, err)
	c.Close()
	b := <-got
	require.Equal(t, "held", string(b))
	require.GreaterOrEqual(t, time.Since(start), d, "the bytes were held for the delay")

	// bytes still held when the link is cut never arrive
	c, err = net.Dial("tcp", p.Dial(1, 2))
	require.NoError(t, err)
	_, err = c.Write([]byte("lost"))
	require.NoError(t, err)
	time.Sleep(d / 3) // the proxy has read them and holds them
	require.NoError(t, p.Block([][2]int{{1, 2}}))
	b = <-got
	require.Empty(t, string(b), "what the cut link held was dropped")
	c.Close()
}

// echoServer echoes every connection back until it closes.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// fromLine names a connection's sender by its first line, "FROM addr".
func fromLine(br *bufio.Reader) (string, error) {
	for n := 1; n <= 64; n++ {
		b, err := br.Peek(n)
		if err != nil {
			return "", err
		}
		if b[n-1] == '\n' {
			if addr, ok := strings.CutPrefix(string(b[:n-1]), "FROM "); ok {
				return addr, nil
			}
			break
		}
	}
	return "", errors.New("no FROM line")
}

// roundTrip sends hello over a new connection to addr, after a first
// line naming the sender (none: no line), and reports whether it came back.
func roundTrip(t *testing.T, addr, sender string) bool {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	msg := "hello\n"
	if sender != "" {
		msg = "FROM " + sender + "\n" + msg
	}
	_, err = c.Write([]byte(msg))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	b, _ := io.ReadAll(io.LimitReader(c, int64(len(msg))))
	return string(b) == msg
}

func TestASharedProxyPutsEachConnectionOnTheLinkOfTheSenderItNames(t *testing.T) {
	p := NewProxy()
	p.Share(fromLine)
	require.NoError(t, p.Setup(map[int]string{1: "127.0.0.1:1", 2: "127.0.0.1:2", 3: echoServer(t)}))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	to3 := p.Dial(1, 3)
	require.Equal(t, to3, p.Dial(2, 3), "every node reaches n3 at one address")
	n1, n2 := p.Dial(3, 1), p.Dial(3, 2) // what n1 and n2 advertise

	require.True(t, roundTrip(t, to3, n1))
	require.NoError(t, p.Block([][2]int{{3, 1}}))
	require.False(t, roundTrip(t, to3, n1), "a cut of the way back closes n1's connection too")
	require.True(t, roundTrip(t, to3, n2), "n2's link to n3 is open")
	require.NoError(t, p.Block([][2]int{{1, 3}, {2, 3}}))
	require.False(t, roundTrip(t, to3, n2))
	require.True(t, roundTrip(t, to3, ""), "a connection that names no sender is never cut")
	require.NoError(t, p.Block(nil))
	require.True(t, roundTrip(t, to3, n1), "healed")
}

func TestAPacedLinkCarriesEveryByteInOrderNoFasterThanItsRate(t *testing.T) {
	p := NewProxy()
	require.NoError(t, p.Setup(map[int]string{1: "127.0.0.1:1", 2: echoServer(t)}))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	const rate = 64 << 10
	require.NoError(t, p.Delay([][2]int{{1, 2}}, Shape{Delay: time.Millisecond, Jitter: 20 * time.Millisecond, Rate: rate}))
	c, err := net.Dial("tcp", p.Dial(1, 2))
	require.NoError(t, err)
	defer c.Close()
	msg := make([]byte, 2*rate)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	start := time.Now()
	go func() { _, _ = c.Write(msg) }()
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, got, "jitter never reorders a stream's bytes")
	// the first chunk (32 KB at most) goes at once, each later one waits
	// for the rate to carry the one before it: at least 1.5 s for 128 KB
	require.GreaterOrEqual(t, time.Since(start), 1500*time.Millisecond)
}

func TestAResetClosesALinksConnectionsMidStreamAndTheLinkStaysOpen(t *testing.T) {
	p := NewProxy()
	require.NoError(t, p.Setup(map[int]string{1: "127.0.0.1:1", 2: echoServer(t)}))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	c, err := net.Dial("tcp", p.Dial(1, 2))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	b := make([]byte, 4)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	require.NoError(t, p.Reset([][2]int{{1, 2}}))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = c.Read(b)
	require.ErrorIs(t, err, io.EOF, "the proxy closed the connection mid-stream")
	require.True(t, roundTrip(t, p.Dial(1, 2), ""), "a new connection gets through")
}

func TestLiftingADelayResetsWhatTheLinkHeldAndItCarriesBytesAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan []byte, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				b, _ := io.ReadAll(c)
				got <- b
			}()
		}
	}()
	p := NewProxy()
	require.NoError(t, p.Setup(map[int]string{1: "127.0.0.1:1", 2: ln.Addr().String()}))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	require.NoError(t, p.Delay([][2]int{{1, 2}}, Shape{Delay: time.Minute}))
	held, err := net.Dial("tcp", p.Dial(1, 2))
	require.NoError(t, err)
	defer held.Close()
	_, err = held.Write([]byte("held for a minute"))
	require.NoError(t, err)

	healed := time.Now()
	require.NoError(t, p.Delay(nil, Shape{}))
	select {
	case b := <-got:
		require.Empty(t, string(b), "the held bytes were dropped with their connection")
	case <-time.After(10 * time.Second):
		t.Fatal("the connection that held bytes under the lifted delay was not reset")
	}
	fresh, err := net.Dial("tcp", p.Dial(1, 2))
	require.NoError(t, err)
	_, err = fresh.Write([]byte("fresh"))
	require.NoError(t, err)
	require.NoError(t, fresh.Close())
	select {
	case b := <-got:
		require.Equal(t, "fresh", string(b))
	case <-time.After(10 * time.Second):
		t.Fatal("a new connection after the heal carried nothing")
	}
	require.Less(t, time.Since(healed), 5*time.Second, "bytes flow within their normal latency after the heal, not on the old schedule")
}
