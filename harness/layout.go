package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Layout names the files of one run directory (DESIGN §6).
type Layout struct{ Dir string }

func (l Layout) Config() string             { return filepath.Join(l.Dir, "config.json") }
func (l Layout) History() string            { return filepath.Join(l.Dir, "history.jsonl") }
func (l Layout) Results() string            { return filepath.Join(l.Dir, "results.json") }
func (l Layout) Logs() string               { return filepath.Join(l.Dir, "logs.jsonl") }
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
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return Layout{}, fmt.Errorf("link %s: %w", latest, err)
	}
	if err := os.Rename(tmp, latest); err != nil {
		return Layout{}, fmt.Errorf("link %s: %w", latest, err)
	}
	return Layout{Dir: dir}, nil
}

// Clock is the run's shared clock: nanoseconds since the run started, for
// clients, nemesis and log samples alike.
type Clock struct{ start time.Time }

// NewClock starts a clock now.
func NewClock() Clock { return Clock{start: time.Now()} }

// Now returns nanoseconds since the start.
func (c Clock) Now() int64 { return int64(time.Since(c.start)) }

// Start is the wall-clock time the run began.
func (c Clock) Start() time.Time { return c.start }
