package disk

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// lazyFS keeps, per file (by the backing file's inode number), the writes
// and truncations not yet synced, in the order they were made. Reads see
// them over the backing file; fsync applies them to it and syncs it; a
// power loss forgets them. The namespace (create, rename, unlink, mkdir)
// and preallocation go to the backing directory at once: what the layer
// makes lazy is file data and size, which is what a missing fsync loses.
type lazyFS struct {
	mu    sync.Mutex
	dirty map[uint64]*dirtyFile
}

type dirtyFile struct {
	path string // the backing file, as last opened
	ops  []pendingOp
}

// pendingOp is a write of data at off, or (data nil) a truncation to off.
type pendingOp struct {
	off  int64
	data []byte
}

// size is the file's size once ops apply to a backing file of base bytes.
func size(base int64, ops []pendingOp) int64 {
	for _, op := range ops {
		if op.data == nil {
			base = op.off
		} else {
			base = max(base, op.off+int64(len(op.data)))
		}
	}
	return base
}

// overlay applies ops to buf, which holds the backing file's bytes from
// off (zeros beyond its end).
func overlay(buf []byte, off int64, ops []pendingOp) {
	end := off + int64(len(buf))
	for _, op := range ops {
		if op.data == nil {
			if op.off < end {
				clear(buf[max(op.off-off, 0):])
			}
			continue
		}
		lo, hi := max(op.off, off), min(op.off+int64(len(op.data)), end)
		if lo < hi {
			copy(buf[lo-off:hi-off], op.data[lo-op.off:hi-op.off])
		}
	}
}

func (l *lazyFS) file(ino uint64, path string) *dirtyFile {
	d := l.dirty[ino]
	if d == nil {
		d = &dirtyFile{}
		l.dirty[ino] = d
	}
	d.path = path
	return d
}

// pendingSize sets out's size to the file's once its pending ops apply.
func (l *lazyFS) pendingSize(ino uint64, out *fuse.AttrOut) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.dirty[ino]; d != nil {
		out.Size = uint64(size(int64(out.Size), d.ops))
	}
}

// forget drops what is pending for a file that no longer exists.
func (l *lazyFS) forget(ino uint64) {
	l.mu.Lock()
	delete(l.dirty, ino)
	l.mu.Unlock()
}

// powerLoss forgets every pending op; with tear, one file's first pending
// write reaches its backing file in part.
func (l *lazyFS) powerLoss(tear *rand.Rand) (Loss, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var loss Loss
	var writes []uint64
	for ino, d := range l.dirty {
		if len(d.ops) == 0 {
			continue
		}
		loss.Files++
		for _, op := range d.ops {
			loss.Bytes += int64(len(op.data))
		}
		if len(d.ops[0].data) > 1 { // a write (a truncation has none) that can tear
			writes = append(writes, ino)
		}
	}
	if tear != nil && len(writes) > 0 {
		loss.Torn = l.tear(writes, tear)
	}
	l.dirty = map[uint64]*dirtyFile{}
	return loss, nil
}

// tear lets a prefix of the first held write of one of the files reach
// the disk, and says which. A file is found by the path it was opened at;
// one whose path has gone since (its directory was renamed: etcd renames
// wal.tmp to wal) is passed over for the next.
func (l *lazyFS) tear(writes []uint64, r *rand.Rand) string {
	sort.Slice(writes, func(a, b int) bool { return writes[a] < writes[b] })
	r.Shuffle(len(writes), func(a, b int) { writes[a], writes[b] = writes[b], writes[a] })
	var gone []string
	for _, ino := range writes {
		d := l.dirty[ino]
		op := d.ops[0]
		part := op.data[:1+r.Intn(len(op.data)-1)]
		if err := writeAt(d.path, part, op.off); err != nil {
			gone = append(gone, fmt.Sprintf("%s (%v)", filepath.Base(d.path), err))
			continue
		}
		return fmt.Sprintf("%s: %d of the %d bytes written at offset %d", filepath.Base(d.path), len(part), len(op.data), op.off)
	}
	return "none: no file held a write at a path it still has: " + strings.Join(gone, "; ")
}

// writeAt writes b at off of the backing file at path (no sync: what a
// power loss left is what the disk had).
func writeAt(path string, b []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("tear %s: %w", path, err)
	}
	_, err = f.WriteAt(b, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tear %s: %w", path, err)
	}
	return nil
}

// lazyNode is a loopback node whose files are lazy.
type lazyNode struct {
	*fs.LoopbackNode
	lfs *lazyFS
}

// WrapChild makes every node the loopback creates lazy too.
func (n *lazyNode) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if lb, ok := ops.(*fs.LoopbackNode); ok {
		return &lazyNode{LoopbackNode: lb, lfs: n.lfs}
	}
	return ops
}

var (
	_ fs.NodeWrapChilder    = (*lazyNode)(nil)
	_ fs.NodeOpener         = (*lazyNode)(nil)
	_ fs.NodeCreater        = (*lazyNode)(nil)
	_ fs.NodeGetattrer      = (*lazyNode)(nil)
	_ fs.NodeSetattrer      = (*lazyNode)(nil)
	_ fs.NodeUnlinker       = (*lazyNode)(nil)
	_ fs.NodeRenamer        = (*lazyNode)(nil)
	_ fs.NodeStatxer        = (*lazyNode)(nil)
	_ fs.NodeCopyFileRanger = (*lazyNode)(nil)
	_ fs.NodeTmpfiler       = (*lazyNode)(nil)

	_ fs.FileReader    = (*lazyFile)(nil)
	_ fs.FileWriter    = (*lazyFile)(nil)
	_ fs.FileFsyncer   = (*lazyFile)(nil)
	_ fs.FileGetattrer = (*lazyFile)(nil)
	_ fs.FileFlusher   = (*lazyFile)(nil)
	_ fs.FileReleaser  = (*lazyFile)(nil)
	_ fs.FileLseeker   = (*lazyFile)(nil)
	_ fs.FileAllocater = (*lazyFile)(nil)
	_ fs.FileGetlker   = (*lazyFile)(nil)
	_ fs.FileSetlker   = (*lazyFile)(nil)
	_ fs.FileSetlkwer  = (*lazyFile)(nil)
)

// backingPath is the node's file in the backing directory.
func (n *lazyNode) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// Open opens the backing file; the handle is lazy. The kernel drops its
// cache of the file at every open (no FOPEN_KEEP_CACHE), so a node
// restarted after a power loss reads what the layer says.
func (n *lazyNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, _, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	f, errno := n.wrap(ctx, fh, flags, n.backingPath())
	return f, 0, errno
}

// Create creates the backing file at once (the namespace is not lazy).
func (n *lazyNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, _, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	// the new inode is not in the tree yet: its path is its parent's
	f, errno := n.wrap(ctx, fh, flags, filepath.Join(n.backingPath(), name))
	return in, f, 0, errno
}

// wrap makes a loopback handle lazy. An O_TRUNC open truncated the backing
// file at once: what was pending for it is gone.
func (n *lazyNode) wrap(ctx context.Context, fh fs.FileHandle, flags uint32, path string) (*lazyFile, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	var a fuse.AttrOut
	if errno := lf.Getattr(ctx, &a); errno != 0 {
		_ = lf.Release(ctx)
		return nil, errno
	}
	f := &lazyFile{lf: lf, lfs: n.lfs, ino: a.Ino, path: path, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}
	if flags&syscall.O_TRUNC != 0 {
		n.lfs.forget(a.Ino)
	}
	return f, 0
}

// Getattr says the file's size with its pending writes.
func (n *lazyNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if lf, ok := f.(*lazyFile); ok {
		return lf.Getattr(ctx, out)
	}
	if errno := n.LoopbackNode.Getattr(ctx, nil, out); errno != 0 {
		return errno
	}
	n.lfs.pendingSize(out.Ino, out)
	return 0
}

// Setattr makes a truncation lazy; every other attribute goes to the
// backing file at once.
func (n *lazyNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var inner fs.FileHandle
	if lf, ok := f.(*lazyFile); ok {
		inner = lf.lf
	}
	if sz, ok := in.GetSize(); ok {
		var a fuse.AttrOut
		if errno := n.LoopbackNode.Getattr(ctx, inner, &a); errno != 0 {
			return errno
		}
		n.lfs.mu.Lock()
		d := n.lfs.file(a.Ino, n.backingPath())
		d.ops = append(d.ops, pendingOp{off: int64(sz)})
		n.lfs.mu.Unlock()
		in.Valid &^= fuse.FATTR_SIZE
	}
	if errno := n.LoopbackNode.Setattr(ctx, inner, in, out); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, f, out)
}

// Unlink forgets what was pending for a file whose last name goes.
func (n *lazyNode) Unlink(ctx context.Context, name string) syscall.Errno {
	ino, last := n.child(name)
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 && last {
		n.lfs.forget(ino)
	}
	return errno
}

// Rename forgets what was pending for a file it replaces.
func (n *lazyNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	var ino uint64
	var last bool
	if p, ok := newParent.(*lazyNode); ok {
		ino, last = p.child(newName)
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 && last && flags&unixRenameExchange == 0 {
		n.lfs.forget(ino)
	}
	return errno
}

// unixRenameExchange is RENAME_EXCHANGE: both files stay.
const unixRenameExchange = 2

// child is the inode number of the file name in this directory, and
// whether that name is its last link.
func (n *lazyNode) child(name string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(n.backingPath(), name), &st); err != nil {
		return 0, false
	}
	return st.Ino, st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Nlink <= 1
}

// Statx is not offered: the kernel then asks Getattr, which knows the
// pending size.
func (n *lazyNode) Statx(context.Context, fs.FileHandle, uint32, uint32, *fuse.StatxOut) syscall.Errno {
	return syscall.ENOSYS
}

// CopyFileRange is not offered: the kernel copies through Read and Write.
func (n *lazyNode) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Tmpfile is not offered (O_TMPFILE fails with EOPNOTSUPP): its handle
// would not be lazy.
func (n *lazyNode) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// lazyFile is an open file whose writes wait for its fsync.
type lazyFile struct {
	lf   *fs.LoopbackFile
	lfs  *lazyFS
	ino  uint64
	path string
	sync bool // opened O_SYNC or O_DSYNC: every write is synced
}

// Read reads the backing file with the pending writes over it.
func (f *lazyFile) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.lfs.mu.Lock()
	defer f.lfs.mu.Unlock()
	var a fuse.AttrOut
	if errno := f.lf.Getattr(ctx, &a); errno != 0 {
		return nil, errno
	}
	var ops []pendingOp
	if d := f.lfs.dirty[f.ino]; d != nil {
		ops = d.ops
	}
	base := int64(a.Size)
	end := min(off+int64(len(buf)), size(base, ops))
	if off >= end {
		return fuse.ReadResultData(nil), 0
	}
	out := buf[:end-off]
	clear(out)
	if off < base {
		res, errno := f.lf.Read(ctx, out[:min(end, base)-off], off)
		if errno != 0 {
			return nil, errno
		}
		got, st := res.Bytes(out[:min(end, base)-off])
		if st != fuse.OK {
			return nil, syscall.Errno(st)
		}
		copy(out, got)
	}
	overlay(out, off, ops)
	return fuse.ReadResultData(out), 0
}

// Write holds the data until the file is synced (at once, for a file
// opened O_SYNC or O_DSYNC).
func (f *lazyFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.lfs.mu.Lock()
	d := f.lfs.file(f.ino, f.path)
	d.ops = append(d.ops, pendingOp{off: off, data: append([]byte(nil), data...)})
	f.lfs.mu.Unlock()
	if f.sync {
		if errno := f.Fsync(ctx, 0); errno != 0 {
			return 0, errno
		}
	}
	return uint32(len(data)), 0
}

// Fsync applies the file's pending writes and truncations to the backing
// file, in order, and syncs it.
func (f *lazyFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	f.lfs.mu.Lock()
	defer f.lfs.mu.Unlock()
	if d := f.lfs.dirty[f.ino]; d != nil {
		for len(d.ops) > 0 {
			op := d.ops[0]
			var errno syscall.Errno
			if op.data == nil {
				in := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_SIZE, Size: uint64(op.off)}}
				var out fuse.AttrOut
				errno = f.lf.Setattr(ctx, &in, &out)
			} else {
				var n uint32
				n, errno = f.lf.Write(ctx, op.data, op.off)
				if errno == 0 && int(n) < len(op.data) {
					errno = syscall.EIO
				}
			}
			if errno != 0 {
				return errno
			}
			d.ops = d.ops[1:]
		}
		delete(f.lfs.dirty, f.ino)
	}
	return f.lf.Fsync(ctx, flags)
}

// Getattr says the size with the pending writes.
func (f *lazyFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if errno := f.lf.Getattr(ctx, out); errno != 0 {
		return errno
	}
	f.lfs.pendingSize(f.ino, out)
	return 0
}

// Flush is close(2): it syncs nothing, as a page cache does not.
func (f *lazyFile) Flush(ctx context.Context) syscall.Errno { return f.lf.Flush(ctx) }

// Release closes the backing file; what is pending stays pending.
func (f *lazyFile) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }

func (f *lazyFile) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}

// Allocate reserves space in the backing file at once.
func (f *lazyFile) Allocate(ctx context.Context, off, sz uint64, mode uint32) syscall.Errno {
	return f.lf.Allocate(ctx, off, sz, mode)
}

func (f *lazyFile) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return f.lf.Getlk(ctx, owner, lk, flags, out)
}

func (f *lazyFile) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlk(ctx, owner, lk, flags)
}

func (f *lazyFile) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlkw(ctx, owner, lk, flags)
}
