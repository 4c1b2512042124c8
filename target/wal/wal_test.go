package wal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/paxtest/paxtest/target/paxos"
)

func sampleRecords() []paxos.Record {
	return []paxos.Record{
		{Type: paxos.RecPromise, Ballot: paxos.Ballot{Round: 3, Node: 2}},
		{Type: paxos.RecAccept, Ballot: paxos.Ballot{Round: 3, Node: 2}, Slot: 1, Entry: paxos.Entry{Kind: paxos.EntryCommand, Data: []byte(`{"op":"put"}`)}},
		{Type: paxos.RecAccept, Ballot: paxos.Ballot{Round: 3, Node: 2}, Slot: 2, Entry: paxos.Entry{Kind: paxos.EntryNoop}},
		{Type: paxos.RecChosen, Ballot: paxos.Ballot{Round: 3, Node: 2}, Slot: 1, Entry: paxos.Entry{Kind: paxos.EntryCommand, Data: []byte(`{"op":"put"}`)}},
	}
}

func TestRecordsSurviveCloseAndReopen(t *testing.T) {
	dir := t.TempDir()
	l, recs, err := Open(dir, Options{})
	require.NoError(t, err)
	require.Empty(t, recs)
	require.NoError(t, l.Append(sampleRecords()))
	require.NoError(t, l.Close())
	l, recs, err = Open(dir, Options{})
	require.NoError(t, err)
	require.Equal(t, sampleRecords(), recs)
	require.NoError(t, l.Close())
}

// Every proper prefix of a log whose last frame was torn replays to the
// records before the torn frame, and the file is cut back to them.
func TestTornTailIsCutAtEveryLength(t *testing.T) {
	var full []byte
	var ends []int
	for _, r := range sampleRecords() {
		full = AppendFrame(full, r)
		ends = append(ends, len(full))
	}
	for cut := 0; cut < len(full); cut++ {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), full[:cut], 0o644))
		l, recs, err := Open(dir, Options{})
		require.NoError(t, err, "cut at %d", cut)
		whole := 0
		for _, e := range ends {
			if e <= cut {
				whole++
			}
		}
		require.Len(t, recs, whole, "cut at %d", cut)
		require.NoError(t, l.Append(sampleRecords()[:1]))
		require.NoError(t, l.Close())
		_, recs, err = Open(dir, Options{})
		require.NoError(t, err)
		require.Len(t, recs, whole+1, "a record appended after the cut is readable, cut at %d", cut)
	}
}

// A final frame written whole but failing its checksum is damage, as
// anywhere else; one with a sector's share still zeros is a write whose
// length reached the disk before its data, a tear.
func TestAWholeFinalFrameIsDamagedUnlessASectorOfItIsZeros(t *testing.T) {
	var data []byte
	for _, r := range sampleRecords() {
		data = AppendFrame(data, r)
	}
	last := len(data) - len(AppendFrame(nil, sampleRecords()[len(sampleRecords())-1]))
	big := AppendFrame(nil, paxos.Record{Type: paxos.RecAccept, Slot: 9, Entry: paxos.Entry{Kind: paxos.EntryCommand, Data: bytes.Repeat([]byte("v"), 3*sectorSize)}})
	long := append(append([]byte(nil), data...), big...)
	cases := []struct {
		name   string
		data   []byte
		damage func(d []byte)
		kept   int // records replayed when torn; -1: damage
	}{
		{"a bit flipped in the last payload byte", data, func(d []byte) { d[len(d)-1] ^= 0x01 }, -1},
		{"a bit flipped in the last checksum", data, func(d []byte) { d[last+5] ^= 0x80 }, -1},
		{"the last payload zeroed under its written header, in one sector", data, func(d []byte) { clear(d[last+headerSize:]) }, -1},
		{"the whole last frame zeroed", data, func(d []byte) { clear(d[last:]) }, 3},
		{"one sector of a long final frame zeroed", long, func(d []byte) {
			s := (len(d)/sectorSize - 1) * sectorSize
			clear(d[s : s+sectorSize])
		}, 4},
		{"a long final frame with one bit flipped", long, func(d []byte) { d[len(d)-sectorSize] ^= 0x04 }, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := append([]byte(nil), c.data...)
			c.damage(d)
			recs, good, err := Replay(d)
			if c.kept < 0 {
				var ce *CorruptError
				require.ErrorAs(t, err, &ce, "a whole final frame that fails its checksum is damage")
				return
			}
			require.NoError(t, err)
			require.Less(t, good, len(d))
			require.Len(t, recs, c.kept)
		})
	}
}

func TestDamageBeforeTheEndNamesFileAndOffset(t *testing.T) {
	var data []byte
	for _, r := range sampleRecords() {
		data = AppendFrame(data, r)
	}
	second := len(AppendFrame(nil, sampleRecords()[0]))
	data[second+headerSize+2] ^= 0x01 // inside the second frame's payload
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), data, 0o644))
	_, _, err := Open(dir, Options{})
	require.ErrorContains(t, err, filepath.Join(dir, FileName))
	require.ErrorContains(t, err, fmt.Sprintf("offset %d", second))
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	after, rerr := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, rerr)
	require.Equal(t, data, after, "a corrupt log is never truncated")
}

func TestConcurrentAppendsAreAllDurable(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, Options{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				require.NoError(t, l.Append([]paxos.Record{{Type: paxos.RecAccept, Slot: uint64(w*1000 + i)}}))
			}
		}(w)
	}
	wg.Wait()
	require.NoError(t, l.Close())
	_, recs, err := Open(dir, Options{})
	require.NoError(t, err)
	require.Len(t, recs, 500)
}

// Under the no-fsync switch, Append returns before the records reach the
// file: a process killed before the next flush loses them.
func TestNoFsyncAppendReturnsBeforeTheRecordIsOnDisk(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, Options{NoFsync: true, FlushInterval: 1 << 40})
	require.NoError(t, err)
	require.NoError(t, l.Append(sampleRecords()))
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Empty(t, data, "records must still be only in the process's buffer")
	require.NoError(t, l.Close())
	_, recs, err := Open(dir, Options{})
	require.NoError(t, err)
	require.Len(t, recs, len(sampleRecords()), "a clean close flushes the buffer")
}

func FuzzDecodeFrame(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(AppendFrame(nil, r))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, n, err := DecodeFrame(data)
		if err != nil {
			return
		}
		if n > len(data) {
			t.Fatalf("frame size %d beyond input %d", n, len(data))
		}
		again, m, err := DecodeFrame(AppendFrame(nil, r))
		if err != nil || m != n || again.Type != r.Type || again.Slot != r.Slot || again.Ballot != r.Ballot || !again.Entry.Equal(r.Entry) {
			t.Fatalf("record does not round-trip: %+v -> %+v (%v)", r, again, err)
		}
		// Replay never panics on arbitrary bytes either.
		_, _, _ = Replay(data)
	})
}

// BenchmarkAppend compares group commit with one fsync per record, with 10
// concurrent writers; the ns/op ratio of the two sub-benchmarks is the
// figure to report.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts Options
	}{{"group-commit", Options{}}, {"fsync-per-record", Options{SyncEachRecord: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			l, _, err := Open(b.TempDir(), mode.opts)
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, l.Close()) })
			rec := []paxos.Record{{Type: paxos.RecAccept, Slot: 1, Entry: paxos.Entry{Kind: paxos.EntryCommand, Data: make([]byte, 100)}}}
			var wg sync.WaitGroup
			per := (b.N + 9) / 10
			b.ResetTimer()
			for w := 0; w < 10; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						if err := l.Append(rec); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func TestAConfigurationEntrySurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, Options{})
	require.NoError(t, err)
	rec := paxos.Record{Type: paxos.RecChosen, Ballot: paxos.Ballot{Round: 3, Node: 2}, Slot: 3, Entry: paxos.ConfigEntry([]paxos.NodeID{1, 2, 4})}
	require.NoError(t, l.Append([]paxos.Record{rec}))
	require.NoError(t, l.Close())
	l, recs, err := Open(dir, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	require.Equal(t, []paxos.Record{rec}, recs)
}
