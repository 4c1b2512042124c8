// Package layout owns the names of a run directory's files and makes a new
// run directory under the store (DESIGN §6). It is a leaf any package may
// import: it creates directories and links, and knows nothing of what goes
// in the files.
package layout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Layout names the files of one run directory (DESIGN §6).
type Layout struct{ Dir string }

// The files of a run directory.
const (
	ConfigFile   = "config.json"
	HistoryFile  = "history.jsonl"
	ResultsFile  = "results.json"
	LogsFile     = "logs.jsonl"
	ScheduleFile = "schedule.jsonl"
	ReplayFile   = "replay.json"
)

func (l Layout) Config() string             { return filepath.Join(l.Dir, ConfigFile) }
func (l Layout) History() string            { return filepath.Join(l.Dir, HistoryFile) }
func (l Layout) Results() string            { return filepath.Join(l.Dir, ResultsFile) }
func (l Layout) Logs() string               { return filepath.Join(l.Dir, LogsFile) }
func (l Layout) Schedule() string           { return filepath.Join(l.Dir, ScheduleFile) }
func (l Layout) Replay() string             { return filepath.Join(l.Dir, ReplayFile) }
func (l Layout) Linearizability() string    { return filepath.Join(l.Dir, "linearizability.html") }
func (l Layout) Index() string              { return filepath.Join(l.Dir, "index.html") }
func (l Layout) NodeLog(name string) string { return filepath.Join(l.Dir, "nodes", name+".log") }

// NewRun creates store/<name>/<timestamp>/ and points store/latest at it.
func NewRun(store, name string, now time.Time) (Layout, error) {
	base := filepath.Join(store, name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return Layout{}, fmt.Errorf("create store %s: %w", base, err)
	}
	stamp := now.UTC().Format("20060102T150405.000")
	dir := filepath.Join(base, stamp)
	for i := 1; ; i++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !os.IsExist(err) || i > 100 {
			return Layout{}, fmt.Errorf("create run directory %s: %w", dir, err)
		}
		dir = filepath.Join(base, fmt.Sprintf("%s-%d", stamp, i))
	}
	if err := os.MkdirAll(filepath.Join(dir, "nodes"), 0o755); err != nil {
		return Layout{}, fmt.Errorf("create %s/nodes: %w", dir, err)
	}
	rel, err := filepath.Rel(store, dir)
	if err != nil {
		return Layout{}, err
	}
	latest := filepath.Join(store, "latest")
	tmp := latest + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Layout{}, fmt.Errorf("remove a stale %s: %w", tmp, err)
	}
	if err := os.Symlink(rel, tmp); err != nil {
		return Layout{}, fmt.Errorf("link %s: %w", latest, err)
	}
	if err := os.Rename(tmp, latest); err != nil {
		return Layout{}, fmt.Errorf("link %s: %w", latest, err)
	}
	return Layout{Dir: dir}, nil
}
