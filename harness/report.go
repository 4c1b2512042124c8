package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/harness/layout"
	"github.com/paxtest/paxtest/reports"
)

// Report re-renders a run directory's index.html from its files.
func Report(dir string) error {
	lay := layout.Layout{Dir: dir}
	b, err := os.ReadFile(lay.Results())
	if err != nil {
		return UsageError{fmt.Errorf("%s: %w (run `paxtest check %s` first)", lay.Results(), err, dir)}
	}
	var res reports.Results
	if err := json.Unmarshal(b, &res); err != nil {
		return UsageError{fmt.Errorf("%s is damaged: %w", lay.Results(), err)}
	}
	var o Options
	if err := json.Unmarshal(res.Config, &o); err != nil {
		return UsageError{fmt.Errorf("%s: its config is damaged: %w", lay.Results(), err)}
	}
	h, err := checker.LoadHistory(lay.History(), o.Workload)
	if err != nil {
		return UsageError{err}
	}
	logs, err := checker.ReadLogs(lay.Logs())
	if err != nil {
		return UsageError{err}
	}
	return render(lay, res, h, logs)
}

func render(lay layout.Layout, res reports.Results, h *checker.History, logs []checker.LogSample) error {
	var o Options
	if err := json.Unmarshal(res.Config, &o); err != nil {
		return fmt.Errorf("render %s: the run's config is damaged: %w", lay.Index(), err)
	}
	at := int64(-1)
	if len(res.Anomalies) > 0 {
		at = res.Anomalies[0].Time
		for _, a := range res.Anomalies {
			at = min(at, a.Time)
		}
	}
	page := reports.Page{Results: res, History: h, Logs: logs, NodeLogs: nodeLogs(lay.Dir, o.StartedAt, at)}
	tmp := lay.Index() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", lay.Index(), err)
	}
	err = reports.RenderIndex(f, page)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", lay.Index(), err), os.Remove(tmp))
	}
	return os.Rename(tmp, lay.Index())
}

// nodeLogs lists the nodes' log files with the lines logged within a second
// of run time at (ns since start; -1 for none).
func nodeLogs(dir string, started time.Time, at int64) []reports.NodeLog {
	paths, _ := filepath.Glob(filepath.Join(dir, "nodes", "*.log"))
	sort.Strings(paths)
	var out []reports.NodeLog
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		nl := reports.NodeLog{Name: strings.TrimSuffix(filepath.Base(p), ".log"), Path: rel}
		if at >= 0 && !started.IsZero() {
			nl.Excerpt = excerpt(p, started.Add(time.Duration(at)), time.Second, 40)
		}
		out = append(out, nl)
	}
	return out
}

// excerpt returns up to limit lines whose slog time= lies within d of t.
func excerpt(path string, t time.Time, d time.Duration, limit int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(out) < limit {
		line := sc.Text()
		ts, _, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if !ok {
			continue
		}
		lt, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		if lt.After(t.Add(-d)) && lt.Before(t.Add(d)) {
			out = append(out, line)
		}
	}
	return out
}
