package db

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EtcdVersion is the etcd release --db etcd runs.
const EtcdVersion = "v3.7.3"

// etcdModule is the Go module etcd's server is built from.
const etcdModule = "go.etcd.io/etcd/server/v3"

// EtcdBinary is the etcd program to run: given (--db-binary) if set;
// otherwise the pinned release in the user's cache, which is built there
// from the Go module proxy the first time (a few minutes, once).
func EtcdBinary(given string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("--db-binary: %w", err)
		}
		return given, nil
	}
	bin, err := EtcdCachePath()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("etcd in the cache: %w", err)
	}
	fmt.Fprintf(os.Stderr, "building etcd %s from the Go module proxy into %s (once; a few minutes)\n", EtcdVersion, bin)
	return bin, buildEtcd(bin)
}

// EtcdCachePath is where the pinned etcd is kept once built.
func EtcdCachePath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory for etcd (set HOME or XDG_CACHE_HOME, or give --db-binary): %w", err)
	}
	return filepath.Join(dir, "paxtest", "etcd-"+EtcdVersion, "etcd"), nil
}

// buildEtcd builds the pinned etcd into bin, through a scratch module (its
// own go.mod pins the release; the go tool fetches it from the proxy).
// Concurrent builds each write a file of their own and rename it into
// place, so bin is always whole.
func buildEtcd(bin string) error {
	work, err := os.MkdirTemp("", "paxtest-etcd-build-")
	if err != nil {
		return fmt.Errorf("build etcd: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return fmt.Errorf("build etcd: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	defer func() { _ = os.Remove(tmp) }() // gone already once renamed into place
	for _, args := range [][]string{
		{"mod", "init", "paxtest-etcd-build"},
		{"get", etcdModule + "@" + EtcdVersion},
		{"build", "-o", tmp, etcdModule},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build etcd %s: go %s: %w\n%s\n(or build etcd yourself and give --db-binary)", EtcdVersion, strings.Join(args, " "), err, lastLines(out, 10))
		}
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("build etcd: %w", err)
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
