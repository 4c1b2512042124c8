package disk

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// mounted mounts a lazy disk on a fresh directory, or skips saying why
// it cannot (the lazy disk needs root and /dev/fuse; CI runs as root).
func mounted(t *testing.T) (*Lazy, string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	l := NewLazy()
	require.NoError(t, l.Mount(1, dir))
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l, dir
}

func TestAWriteNeverSyncedIsReadBackThenLostInAPowerLoss(t *testing.T) {
	l, dir := mounted(t)
	path := filepath.Join(dir, "wal.log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.Write([]byte("synced|"))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	_, err = f.Write([]byte("unsynced"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "synced|unsynced", string(b), "a closed file keeps its unsynced writes, as a page cache does")
	backing, err := os.ReadFile(filepath.Join(dir+".disk", "wal.log"))
	require.NoError(t, err)
	require.Equal(t, "synced|", string(backing), "only what was synced reached the disk")

	loss, err := l.PowerLoss(1, nil)
	require.NoError(t, err)
	require.Equal(t, Loss{Files: 1, Bytes: 8}, loss)
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "synced|", string(b), "the power loss dropped what was never synced")
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, int64(7), st.Size())
}

func TestATornPowerLossLeavesAPrefixOfTheFirstUnsyncedWrite(t *testing.T) {
	l, dir := mounted(t)
	path := filepath.Join(dir, "log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.Write([]byte("0123456789"))
	require.NoError(t, err)
	_, err = f.Write([]byte("abcdef"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	loss, err := l.PowerLoss(1, rand.New(rand.NewSource(3)))
	require.NoError(t, err)
	require.Contains(t, loss.Torn, "log: ")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotEmpty(t, b)
	require.Less(t, len(b), 10, "a strict prefix of the first write, nothing of the second")
	require.True(t, strings.HasPrefix("0123456789", string(b)), "%q", b)
}

func TestTruncationsAndOverwritesWaitForTheSyncInOrder(t *testing.T) {
	l, dir := mounted(t)
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, []byte("aaaaaaaaaa"), 0o644))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(4))
	_, err = f.WriteAt([]byte("XY"), 6)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "aaaa\x00\x00XY", string(b), "cut to 4, then a write past the end leaves a hole of zeros")
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	loss, err := l.PowerLoss(1, nil)
	require.NoError(t, err)
	require.Zero(t, loss.Bytes, "everything was synced")
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "aaaa\x00\x00XY", string(b))
}

func TestADirectoryCanBeSyncedAndAnUnlinkedFileForgetsItsWrites(t *testing.T) {
	l, dir := mounted(t)
	d, err := os.Open(dir)
	require.NoError(t, err)
	require.NoError(t, d.Sync(), "a WAL syncs its directory after creating its file")
	require.NoError(t, d.Close())
	path := filepath.Join(dir, "gone")
	require.NoError(t, os.WriteFile(path, []byte("never synced"), 0o644))
	require.NoError(t, os.Remove(path))
	loss, err := l.PowerLoss(1, nil)
	require.NoError(t, err)
	require.Zero(t, loss.Files)
}

func TestCloseLeavesNoMountBehind(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	l := NewLazy()
	require.NoError(t, l.Mount(2, dir))
	require.Contains(t, mounts(t), dir)
	require.NoError(t, l.Close())
	require.NotContains(t, mounts(t), dir)
}

func mounts(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mounts")
	require.NoError(t, err)
	return string(b)
}

func TestDamageFlipsOneBitOrCutsAFileAndSaysWhereAndUndoTakesItBack(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "member", "wal"), 0o755))
	orig := []byte("0123456789abcdef")
	wal := filepath.Join(root, "member", "wal", "0.wal")
	require.NoError(t, os.WriteFile(wal, orig, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "db"), []byte("unchecked"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "empty.wal"), nil, 0o644))
	among := []string{"member/wal/*.wal", "*.wal"}

	for seed := int64(1); seed <= 8; seed++ {
		d, err := Damage(root, "bitflip", "", -1, among, rand.New(rand.NewSource(seed)))
		require.NoError(t, err)
		require.Equal(t, filepath.Join("member", "wal", "0.wal"), d.File, "the only file with data that matches")
		b, err := os.ReadFile(wal)
		require.NoError(t, err)
		require.Len(t, b, len(orig))
		for i := range b {
			if int64(i) == d.Offset {
				require.Equal(t, orig[i]^(1<<d.Bit), b[i], "bit %d of byte %d flipped", d.Bit, i)
			} else {
				require.Equal(t, orig[i], b[i], "byte %d untouched", i)
			}
		}
		require.NoError(t, Undo(root, d))
		b, err = os.ReadFile(wal)
		require.NoError(t, err)
		require.Equal(t, orig, b, "undone")
	}

	pre := filepath.Join(root, "member", "wal", "1.wal")
	require.NoError(t, os.WriteFile(pre, append([]byte("abc"), make([]byte, 3<<20)...), 0o644))
	for seed := int64(1); seed <= 20; seed++ {
		d, err := Damage(root, "bitflip", filepath.Join("member", "wal", "1.wal"), -1, nil, rand.New(rand.NewSource(seed)))
		require.NoError(t, err)
		require.Less(t, d.Offset, int64(3), "a drawn place is among the bytes written, not the zeros set aside after them")
		require.NoError(t, Undo(root, d))
	}
	require.NoError(t, os.WriteFile(pre, make([]byte, 4096), 0o644))
	_, err := Damage(root, "bitflip", filepath.Join("member", "wal", "1.wal"), -1, nil, nil)
	require.ErrorIs(t, err, ErrNoFile, "a file of zeros holds nothing to damage")
	require.NoError(t, os.Remove(pre))

	d, err := Damage(root, "truncate", filepath.Join("member", "wal", "0.wal"), 5, nil, nil)
	require.NoError(t, err)
	require.Equal(t, int64(5), d.Offset)
	b, err := os.ReadFile(wal)
	require.NoError(t, err)
	require.Len(t, b, 5)
	require.NoError(t, Undo(root, d))
	b, err = os.ReadFile(wal)
	require.NoError(t, err)
	require.Equal(t, orig, b, "the cut bytes put back")

	d, err = Damage(root, "truncate", d.File, 5, nil, nil)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(wal, []byte("written since"), 0o644))
	require.ErrorContains(t, Undo(root, d), "changed since", "a file written since its cut is not undone")

	_, err = Damage(root, "bitflip", d.File, 99, nil, nil)
	require.ErrorContains(t, err, "past its end")
	_, err = Damage(root, "melt", "", -1, nil, nil)
	require.ErrorContains(t, err, "accepted: bitflip, truncate")
	_, err = Damage(root, "bitflip", "", -1, []string{"*.snap"}, nil)
	require.ErrorIs(t, err, ErrNoFile, "no file matches: nothing is damaged")
	require.ErrorContains(t, err, `matching ["*.snap"]`)
}

func TestATearPassesOverAFileWhoseDirectoryWasRenamedAndStillDropsItsWrites(t *testing.T) {
	l, dir := mounted(t)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "wal.tmp"), 0o755))
	f, err := os.OpenFile(filepath.Join(dir, "wal.tmp", "0.wal"), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.Write([]byte("held in memory"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(filepath.Join(dir, "wal.tmp"), filepath.Join(dir, "wal")), "as etcd renames its new WAL directory")
	loss, err := l.PowerLoss(1, rand.New(rand.NewSource(1)))
	require.NoError(t, err, "a write that cannot be torn is dropped whole, never a failed run")
	require.Equal(t, 14, int(loss.Bytes))
	require.Contains(t, loss.Torn, "none: no file held a write at a path it still has")
	b, err := os.ReadFile(filepath.Join(dir, "wal", "0.wal"))
	require.NoError(t, err)
	require.Empty(t, b)
}
