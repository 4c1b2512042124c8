// Package disk owns the fault filesystems mounted under the nodes' data
// directories (--disk lazy): a FUSE layer, written with go-fuse, over a
// backing directory of each node's own, that holds every file's writes in
// memory until the file is fsynced, as a machine's page cache does, so that
// a power loss (PowerLoss) drops what was never synced — and only that. It
// sits below the node's process, so it works for every system under test.
//
// It mounts, drops and unmounts, and finds and removes the mounts a killed
// harness left behind; it also damages a down node's synced files (Damage:
// a bit flipped, a file cut short) and takes that damage back (Undo). It
// must not start or signal nodes (the nemesis kills and restarts them
// through the cluster) nor decide faults.
package disk

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Lazy is the lazy disk of a cluster: one mount per node.
type Lazy struct {
	mu     sync.Mutex
	mounts map[int]*mount
}

type mount struct {
	dir, backing string
	server       *fuse.Server
	fs           *lazyFS
}

// NewLazy returns a lazy disk with nothing mounted.
func NewLazy() *Lazy { return &Lazy{mounts: map[int]*mount{}} }

// fsNamePrefix names this layer's mounts in /proc/mounts; the owning
// harness's pid follows it, so that a later run can tell a mount whose
// harness died from one in use.
const fsNamePrefix = "paxtest-lazy-"

// Mount puts the lazy layer on dir (node id's data directory), backed by
// dir+".disk", which holds what was synced.
func (l *Lazy) Mount(id int, dir string) error {
	backing := SyncedDir(dir)
	if err := os.MkdirAll(backing, 0o755); err != nil {
		return fmt.Errorf("lazy disk of n%d: %w", id, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lazy disk of n%d: %w", id, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return fmt.Errorf("lazy disk of n%d: %w", id, err)
	}
	lfs := &lazyFS{dirty: map[uint64]*dirtyFile{}}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	top := &lazyNode{LoopbackNode: &fs.LoopbackNode{RootData: root}, lfs: lfs}
	root.RootNode = top
	zero := time.Duration(0)
	server, err := fs.Mount(dir, top, &fs.Options{
		// no attribute or entry cache: a file's size is what the layer says
		// now, also after a power loss dropped writes
		AttrTimeout: &zero, EntryTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			DirectMount: true, FsName: fsNamePrefix + strconv.Itoa(os.Getpid()), Name: "paxtest",
			AllowOther: true, DisableXAttrs: true,
		},
	})
	if err != nil {
		return fmt.Errorf("mount the lazy disk of n%d on %s (it needs root and /dev/fuse): %w", id, dir, err)
	}
	if err := closeFuseOnExec(); err != nil {
		return errors.Join(fmt.Errorf("lazy disk of n%d: %w", id, err), unmount(server, dir))
	}
	l.mu.Lock()
	l.mounts[id] = &mount{dir: dir, backing: backing, server: server, fs: lfs}
	l.mu.Unlock()
	return nil
}

// closeFuseOnExec marks every /dev/fuse descriptor of this process
// close-on-exec. A direct mount leaves it inheritable, and a node that
// inherits it keeps the FUSE connection open after the harness dies: its
// own last flush then waits for a server that is gone, forever.
func closeFuseOnExec() error {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list this process's descriptors: %w", err)
	}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == "/dev/fuse" {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}

// SyncedDir is where the lazy disk mounted on a node's data directory keeps
// what was synced: the directory beside it, named with ".disk".
func SyncedDir(dataDir string) string {
	return strings.TrimSuffix(dataDir, string(filepath.Separator)) + ".disk"
}

// Loss is what a power loss dropped.
type Loss struct {
	Files int   `json:"files"` // files that had unsynced writes
	Bytes int64 `json:"bytes"` // bytes of them dropped
	// Torn names a file whose first unsynced write reached the disk in
	// part, and how much of it.
	Torn string `json:"torn,omitempty"`
}

func (l Loss) String() string {
	s := fmt.Sprintf("dropped %d unsynced bytes of %d files", l.Bytes, l.Files)
	if l.Torn != "" {
		s += "; torn: " + l.Torn
	}
	return s
}

// PowerLoss drops every write of node id's files that was not synced, as
// a power loss does; with tear, a random file's first unsynced write
// reaches the disk in part (a prefix cut at a random byte). The node must
// be down: its process's writes would otherwise race the loss.
func (l *Lazy) PowerLoss(id int, tear *rand.Rand) (Loss, error) {
	l.mu.Lock()
	m, ok := l.mounts[id]
	l.mu.Unlock()
	if !ok {
		return Loss{}, fmt.Errorf("power loss of n%d: no lazy disk is mounted for it", id)
	}
	return m.fs.powerLoss(tear)
}

// Close unmounts every node's lazy disk (the nodes are stopped first);
// unsynced writes are dropped with it. A mount that stays busy is
// detached.
func (l *Lazy) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	ids := make([]int, 0, len(l.mounts))
	for id := range l.mounts {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		m := l.mounts[id]
		if err := unmount(m.server, m.dir); err != nil {
			errs = append(errs, fmt.Errorf("unmount the lazy disk of n%d: %w", id, err))
		}
		delete(l.mounts, id)
	}
	return errors.Join(errs...)
}

// unmount unmounts a server's mount, detaching it if it stays busy.
// go-fuse's Unmount already retries a busy mount for a while.
func unmount(server *fuse.Server, dir string) error {
	err := server.Unmount()
	if err == nil {
		server.Wait()
		return nil
	}
	if derr := syscall.Unmount(dir, syscall.MNT_DETACH); derr != nil {
		return errors.Join(err, derr)
	}
	return nil
}

// RemoveStale unmounts the lazy disks whose harness is no longer running
// (it was killed before its teardown) and returns their mount points.
func RemoveStale() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, nil // no /proc: nothing this layer could have mounted
	}
	var removed []string
	var errs []error
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], fsNamePrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(f[0], fsNamePrefix))
		if err != nil || alive(pid) {
			continue
		}
		dir := unescapeMount(f[1])
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("remove the stale lazy disk %s: %w", dir, err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// alive reports whether a process with this pid runs.
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Available says whether this process can mount the lazy disk: it needs
// root and /dev/fuse.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("the lazy disk mounts FUSE filesystems, which needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("the lazy disk needs /dev/fuse: %w", err)
	}
	return nil
}
