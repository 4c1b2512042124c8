package disk

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
)

// ErrNoFile means no file under a node's data holds data to damage (yet,
// or of those asked for).
var ErrNoFile = errors.New("no file with data to damage")

// Damaged is what Damage did to a file, and what Undo needs to take it back.
type Damaged struct {
	Kind   string // bitflip or truncate
	File   string // relative to the root given
	Offset int64
	Bit    int
	Cut    []byte // truncate: the bytes cut off
}

// Damage damages a file under root (a node's synced data; its node must be
// down), as Jepsen's bitflip and truncate do: "bitflip" flips bit Bit
// (drawn) of byte offset of file, "truncate" cuts the file short at
// offset. A blank file is drawn among root's regular files that hold data
// and match one of among (slash-separated globs relative to root; none:
// every file), a negative offset within what the file holds before its
// trailing zeros.
func Damage(root, kind, file string, offset int64, among []string, r *rand.Rand) (Damaged, error) {
	if kind != "bitflip" && kind != "truncate" {
		return Damaged{}, fmt.Errorf("damage %q: accepted: bitflip, truncate", kind)
	}
	if r == nil {
		r = rand.New(rand.NewSource(0))
	}
	if file == "" {
		var err error
		if file, err = drawFile(root, among, r); err != nil {
			return Damaged{}, err
		}
	}
	path := filepath.Join(root, file)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Damaged{}, fmt.Errorf("damage %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Damaged{}, fmt.Errorf("damage %s: %w", path, err)
	}
	if offset < 0 {
		// within what was written: zeros past the last byte that is not
		// are space set aside (etcd preallocates its WAL), not data
		end, err := dataEnd(f, st.Size())
		if err != nil {
			return Damaged{}, fmt.Errorf("damage %s: %w", path, err)
		}
		if end == 0 {
			return Damaged{}, fmt.Errorf("%w: %s holds only zeros", ErrNoFile, path)
		}
		offset = r.Int63n(end)
	}
	if offset >= st.Size() {
		return Damaged{}, fmt.Errorf("damage %s: byte %d is past its end (%d bytes)", path, offset, st.Size())
	}
	d := Damaged{Kind: kind, File: file, Offset: offset}
	if kind == "truncate" {
		d.Cut = make([]byte, st.Size()-offset)
		if _, err := f.ReadAt(d.Cut, offset); err != nil {
			return Damaged{}, fmt.Errorf("damage %s: keep what is cut: %w", path, err)
		}
		if err := f.Truncate(offset); err != nil {
			return Damaged{}, fmt.Errorf("damage %s: %w", path, err)
		}
		return d, f.Sync()
	}
	d.Bit = r.Intn(8)
	return d, flip(f, path, offset, d.Bit)
}

// Undo takes back damage d under root: the bit flipped again, or the cut
// bytes put back. The file must not have changed since (its node refused
// to start on it).
func Undo(root string, d Damaged) error {
	path := filepath.Join(root, d.File)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("undo damage to %s: %w", path, err)
	}
	defer f.Close()
	if d.Kind == "bitflip" {
		return flip(f, path, d.Offset, d.Bit)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("undo damage to %s: %w", path, err)
	}
	if st.Size() != d.Offset {
		return fmt.Errorf("undo damage to %s: it was cut at byte %d but now holds %d: it changed since", path, d.Offset, st.Size())
	}
	if _, err := f.WriteAt(d.Cut, d.Offset); err != nil {
		return fmt.Errorf("undo damage to %s: %w", path, err)
	}
	return f.Sync()
}

// dataEnd is the offset just past the last byte of f that is not zero.
func dataEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 1<<20)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// flip flips one bit of f and syncs it.
func flip(f *os.File, path string, offset int64, bit int) error {
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, offset); err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	b[0] ^= 1 << bit
	if _, err := f.WriteAt(b, offset); err != nil {
		return fmt.Errorf("damage %s: %w", path, err)
	}
	return f.Sync()
}

// drawFile draws one of root's regular files that hold data and match one
// of among (none: any), by path relative to root.
func drawFile(root string, among []string, r *rand.Rand) (string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if ok, err := matchesAny(filepath.ToSlash(rel), among); err != nil || !ok {
			return err
		}
		if info, err := e.Info(); err == nil && info.Size() > 0 {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("list the files of %s: %w", root, err)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%w under %s matching %q", ErrNoFile, root, among)
	}
	sort.Strings(files)
	return files[r.Intn(len(files))], nil
}

// matchesAny reports whether rel matches one of globs (none: true).
func matchesAny(rel string, globs []string) (bool, error) {
	if len(globs) == 0 {
		return true, nil
	}
	for _, g := range globs {
		ok, err := filepath.Match(g, rel)
		if err != nil {
			return false, fmt.Errorf("file pattern %q: %w", g, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}
