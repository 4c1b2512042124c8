package reports

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/harness/layout"
)

// RunEntry is one run directory as the store index lists it.
type RunEntry struct {
	Path      string // relative to the store, slash-separated
	Name      string
	Verdict   string
	When      time.Time
	OK        int
	Anomalies int
}

// ListRuns finds every run directory (one holding results.json or
// config.json) under store, newest first.
func ListRuns(store string) ([]RunEntry, error) {
	var out []RunEntry
	err := filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // store/latest: listed through its target
		}
		if !d.IsDir() || p == store {
			return nil
		}
		if _, err := os.Stat(layout.Layout{Dir: p}.Config()); err != nil {
			return nil
		}
		rel, _ := filepath.Rel(store, p)
		e := RunEntry{Path: filepath.ToSlash(rel), Name: filepath.ToSlash(filepath.Dir(rel)), Verdict: "incomplete"}
		if st, err := os.Stat(layout.Layout{Dir: p}.Config()); err == nil {
			e.When = st.ModTime()
		}
		if b, err := os.ReadFile(layout.Layout{Dir: p}.Results()); err == nil {
			var r Results
			if json.Unmarshal(b, &r) == nil {
				e.Verdict, e.OK, e.Anomalies = string(r.Verdict), r.Ops.OK, len(r.Anomalies)
			}
		}
		out = append(out, e)
		return filepath.SkipDir
	})
	sort.Slice(out, func(i, j int) bool { return out[i].When.After(out[j].When) })
	return out, err
}

// BenchEntry is one `paxtest bench` result directory (bench-<name>-<time>).
type BenchEntry struct {
	Path  string // relative to the store, slash-separated
	Name  string // detect, mutants, window, ...
	When  time.Time
	Table string // <name>.md
}

// ListBenches finds every bench directory directly under store, newest
// first, with its markdown table.
func ListBenches(store string) ([]BenchEntry, error) {
	entries, err := os.ReadDir(store)
	if err != nil {
		return nil, err
	}
	var out []BenchEntry
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "bench-")
		if !e.IsDir() || !ok {
			continue
		}
		i := strings.LastIndex(rest, "-")
		if i <= 0 {
			continue
		}
		name := rest[:i]
		md := filepath.Join(store, e.Name(), name+".md")
		b, err := os.ReadFile(md)
		if err != nil {
			continue // a bench still running has written nothing yet
		}
		st, err := os.Stat(md)
		if err != nil {
			return nil, err
		}
		out = append(out, BenchEntry{Path: e.Name(), Name: name, When: st.ModTime(), Table: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].When.After(out[j].When) })
	return out, nil
}

var storeTmpl = template.Must(template.New("store").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>paxtest store</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
tr.valid td { background: #e8f5ec; } tr.invalid td { background: #fdecea; } tr.unknown td, tr.incomplete td { background: #fff7d6; }
</style></head><body>
<h1>paxtest runs</h1>
<p>{{len .Runs}} runs{{if .Filter}} with verdict {{.Filter}} (<a href="/">show all</a>){{else}} (<a href="/?verdict=invalid">only invalid</a>){{end}}</p>
<table id="runs"><tr><th>when</th><th>run</th><th>verdict</th><th>ok ops</th><th>anomalies</th><th></th></tr>
{{range .Runs}}<tr class="{{.Verdict}}"><td>{{.When.Format "2006-01-02 15:04:05"}}</td><td><a href="/runs/{{.Path}}/index.html">{{.Path}}</a></td>
<td>{{.Verdict}}</td><td>{{.OK}}</td><td>{{.Anomalies}}</td><td><a href="/runs/{{.Path}}/">files</a> · <a href="/archive/{{.Path}}.tar.gz">download</a></td></tr>
{{end}}</table>
{{if .Benches}}<h2>Benchmarks</h2>
{{range .Benches}}<details id="bench-{{.Path}}"{{if eq .Path $.Open}} open{{end}}><summary>{{.When.Format "2006-01-02 15:04:05"}} <b>{{.Name}}</b> — <a href="/runs/{{.Path}}/">{{.Path}}</a></summary><pre>{{.Table}}</pre></details>
{{end}}{{end}}</body></html>
`))

// StoreHandler serves a store: the run list at /, files under /runs/, and
// a run as a tar.gz at /archive/<run>.tar.gz. Nothing outside the store is
// ever served, symbolic links included.
func StoreHandler(store string) (http.Handler, error) {
	root, err := filepath.Abs(store)
	if err != nil {
		return nil, err
	}
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, fmt.Errorf("store %s: %w", store, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		runs, err := ListRuns(root)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		filter := r.URL.Query().Get("verdict")
		if filter != "" {
			kept := runs[:0]
			for _, e := range runs {
				if e.Verdict == filter {
					kept = append(kept, e)
				}
			}
			runs = kept
		}
		benches, err := ListBenches(root)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		open := "" // the newest mutation score is shown open
		for _, b := range benches {
			if b.Name == "mutants" {
				open = b.Path
				break
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := storeTmpl.Execute(w, map[string]any{"Runs": runs, "Filter": filter, "Benches": benches, "Open": open}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /runs/{path...}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := inside(root, r.PathValue("path"))
		if !ok {
			http.Error(w, "outside the store", http.StatusForbidden)
			return
		}
		http.ServeFile(w, r, p)
	})
	mux.HandleFunc("GET /archive/{path...}", func(w http.ResponseWriter, r *http.Request) {
		rel := strings.TrimSuffix(r.PathValue("path"), ".tar.gz")
		p, ok := inside(root, rel)
		if !ok {
			http.Error(w, "outside the store", http.StatusForbidden)
			return
		}
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", strings.ReplaceAll(rel, "/", "_")+".tar.gz"))
		if err := writeTarGz(w, p, filepath.Base(p)); err != nil {
			// headers are gone; the truncated archive will fail to unpack
			return
		}
	})
	return mux, nil
}

// inside resolves rel under root, following symbolic links, and reports
// whether the result is still inside root.
func inside(root, rel string) (string, bool) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			real = p // ServeFile answers 404
		} else {
			return "", false
		}
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return "", false
	}
	return real, true
}

func writeTarGz(w io.Writer, dir, prefix string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(filepath.Join(prefix, rel))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := gz.Close(); err == nil {
		err = cerr
	}
	return err
}
