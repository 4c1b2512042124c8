package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/paxtest/paxtest/reports"
)

// MergeSoaks gathers the soaks kept in several stores (the shards of one
// soak, each run on a machine of its own) into one store, into: every run
// a soak summary of theirs lists is copied to into/<name>/<time>/ (never
// over a directory already there), and one summary lists them all, by
// seed, under into/soak-<time>/. The stores given are only read.
func MergeSoaks(into string, stores []string, now time.Time) (string, []reports.SoakRun, error) {
	if len(stores) == 0 {
		return "", nil, UsageError{errors.New("soak merge: name the stores to merge (the shards' --store directories)")}
	}
	var runs []reports.SoakRun
	for _, store := range stores {
		got, err := storeSoakRuns(store)
		if err != nil {
			return "", nil, err
		}
		for _, r := range got {
			if r.Dir != "" {
				if r.Dir, err = copyRun(into, store, r.Dir); err != nil {
					return "", nil, err
				}
			}
			runs = append(runs, r)
		}
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Seed < runs[j].Seed })
	dir, err := WriteSoakSummary(into, now, runs)
	return dir, runs, err
}

// storeSoakRuns reads the runs of every soak summary under store.
func storeSoakRuns(store string) ([]reports.SoakRun, error) {
	paths, err := filepath.Glob(filepath.Join(store, "soak-*", "summary.json"))
	if err != nil {
		return nil, fmt.Errorf("soak merge: %w", err)
	}
	if len(paths) == 0 {
		return nil, UsageError{fmt.Errorf("soak merge: %s holds no soak summary (soak-*/summary.json): is it a soak's --store?", store)}
	}
	var runs []reports.SoakRun
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("soak merge: %w", err)
		}
		var got []reports.SoakRun
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			return nil, UsageError{fmt.Errorf("soak merge: %s: %w", p, err)}
		}
		runs = append(runs, got...)
	}
	return runs, nil
}

// copyRun copies a run a summary under store lists (as the soak named it:
// <its store>/<name>/<time>) to into/<name>/<time>, and returns that.
func copyRun(into, store, dir string) (string, error) {
	rel := filepath.Join(filepath.Base(filepath.Dir(dir)), filepath.Base(dir))
	src := filepath.Join(store, rel)
	if _, err := os.Stat(filepath.Join(src, "config.json")); err != nil {
		return "", UsageError{fmt.Errorf("soak merge: run %s of %s is not there (%w): was the store moved in part?", rel, store, err)}
	}
	dst := filepath.Join(into, rel)
	if _, err := os.Stat(dst); err == nil {
		return "", UsageError{fmt.Errorf("soak merge: %s is already there; merge into a new directory", dst)}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("soak merge: %w", err)
	}
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		return "", fmt.Errorf("soak merge: copy %s: %w", src, err)
	}
	return dst, nil
}
