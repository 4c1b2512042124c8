package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/paxtest/paxtest/target/paxos"
)

// FileName is the log's file inside its directory.
const FileName = "wal.log"

// Options configure a Log.
type Options struct {
	// SyncEachRecord writes and syncs every Append on its own, without
	// batching: the baseline of the group-commit benchmark.
	SyncEachRecord bool
	// NoFsync is the no-fsync bug switch: Append returns as soon as the
	// records are in the user-space buffer, which a background loop writes
	// and syncs every FlushInterval.
	NoFsync       bool
	FlushInterval time.Duration
	// WriteNoFsync is the write-no-fsync bug switch: Append writes the
	// records to the kernel and returns without syncing them.
	WriteNoFsync bool
}

// Log is an append-only, checksummed record log. Append is safe for
// concurrent use.
type Log struct {
	path string
	opts Options
	f    *os.File

	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte // encoded, not yet written
	queued   uint64 // bytes ever queued
	durable  uint64 // bytes ever made durable (batches are written in order)
	flushing bool
	err      error // sticky write or sync failure
	closed   bool

	stop chan struct{}
	done chan struct{}
}

// Open opens (or creates) the log in dir, replays it, cuts a torn tail, and
// returns the records it holds.
func Open(dir string, opts Options) (*Log, []paxos.Record, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create wal dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("read wal %s: %w", path, err)
	}
	recs, good, err := Replay(data)
	if err != nil {
		return nil, nil, fmt.Errorf("wal %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open wal %s: %w", path, err)
	}
	if good < len(data) {
		// A torn final record: the write that was cut never reached a reply.
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("cut torn tail of wal %s at offset %d: %w", path, good, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("sync wal %s after cutting its tail: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), 0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("seek wal %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, nil, err
	}
	l := &Log{path: path, opts: opts, f: f, stop: make(chan struct{}), done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	if opts.NoFsync {
		if l.opts.FlushInterval <= 0 {
			l.opts.FlushInterval = 100 * time.Millisecond
		}
		go l.flushLoop()
	} else {
		close(l.done)
	}
	return l, recs, nil
}

// CorruptError reports damage that is not a torn tail.
type CorruptError struct {
	Offset int
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt record at offset %d: %v (damage, not a torn write: restore the file or remove the node's data directory)", e.Offset, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Replay decodes every frame of data. It returns the records and the length
// of the intact prefix. A torn tail ends the prefix: a final frame that the
// data ends inside of, or a whole final frame that fails its checksum with
// a sector of it still zeros (its length reached the disk before its data).
// Any other damage, a whole final frame's included, is a *CorruptError.
func Replay(data []byte) ([]paxos.Record, int, error) {
	var recs []paxos.Record
	off := 0
	for off < len(data) {
		r, n, err := DecodeFrame(data[off:])
		if err == errShort {
			return recs, off, nil
		}
		if err != nil {
			if torn(data, off) {
				return recs, off, nil
			}
			return nil, 0, &CorruptError{Offset: off, Err: err}
		}
		recs = append(recs, r)
		off += n
	}
	return recs, off, nil
}

// sectorSize is the unit a disk writes whole or not at all.
const sectorSize = 512

// torn reports whether the damaged frame at off is a write cut by a crash:
// the data ends inside it (as its header claims: a length flipped to
// more than is left reads the same way), or it is the last frame and one
// sector's share of it is zeros. A flipped bit in a final frame written
// whole is damage, not a tear.
func torn(data []byte, off int) bool {
	frame := data[off:]
	if len(frame) < headerSize || allZero(frame) {
		return true // nothing of it, or no whole header, reached the disk
	}
	n := uint64(binary.LittleEndian.Uint32(frame))
	switch {
	case uint64(len(frame)) < headerSize+n:
		return true
	case uint64(len(frame)) > headerSize+n:
		return false // frames follow: not the tail
	}
	for s := off; s < len(data); {
		e := min(len(data), (s/sectorSize+1)*sectorSize)
		if allZero(data[s:e]) {
			return true
		}
		s = e
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Append makes recs durable. With group commit, concurrent callers share
// one write and one fsync. Under the no-fsync bug it returns at once.
func (l *Log) Append(recs []paxos.Record) error {
	if len(recs) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("wal: append after close")
	}
	if l.err != nil {
		return l.err
	}
	before := len(l.buf)
	for _, r := range recs {
		l.buf = AppendFrame(l.buf, r)
	}
	l.queued += uint64(len(l.buf) - before)
	// BUG SWITCH no-fsync (breaks rules 1, 2): the caller goes on to send
	// replies while the records are still in this process's buffer.
	if l.opts.NoFsync {
		return nil
	}
	target := l.queued
	if l.opts.SyncEachRecord {
		for l.flushing {
			l.cond.Wait()
		}
		return l.flushLocked(true)
	}
	for l.durable < target && l.err == nil {
		if !l.flushing {
			if err := l.flushLocked(false); err != nil {
				return err
			}
			continue
		}
		l.cond.Wait()
	}
	return l.err
}

// flushLocked writes and syncs the current buffer. Called with mu held; it
// releases mu during the I/O unless hold is set.
func (l *Log) flushLocked(hold bool) error {
	batch := l.buf
	l.buf = nil
	l.flushing = true
	if !hold {
		l.mu.Unlock()
	}
	_, err := l.f.Write(batch)
	// BUG SWITCH write-no-fsync (breaks rules 1, 2): the records reach
	// the kernel's page cache and the caller goes on to send replies; a
	// process crash loses nothing, a power loss loses them.
	if err == nil && !l.opts.WriteNoFsync {
		err = l.f.Sync()
	}
	if !hold {
		l.mu.Lock()
	}
	l.flushing = false
	if err != nil {
		l.err = fmt.Errorf("write wal %s: %w", l.path, err)
	} else {
		l.durable += uint64(len(batch))
	}
	l.cond.Broadcast()
	return l.err
}

func (l *Log) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if len(l.buf) > 0 && !l.flushing && l.err == nil {
				// a failure is kept in l.err, which every later write returns
				_ = l.flushLocked(false)
			}
			l.mu.Unlock()
		}
	}
}

// Close flushes what is buffered and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	if l.opts.NoFsync {
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	for l.flushing {
		l.cond.Wait()
	}
	var err error
	if len(l.buf) > 0 && l.err == nil {
		err = l.flushLocked(true)
	}
	l.mu.Unlock()
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close wal %s: %w", l.path, cerr)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open wal dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync wal dir %s: %w", dir, err)
	}
	return nil
}
