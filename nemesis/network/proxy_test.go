package network

import (
	"io"
	"net"
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
	require.NoError(t, p.Delay([][2]int{{1, 2}}, d))

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
