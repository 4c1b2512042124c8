package reports

import (
	"html/template"
	"io"
	"path/filepath"
)

var soakTmpl = template.Must(template.New("soak").Funcs(template.FuncMap{
	"pass": func(r SoakRun) bool { return r.Passed() },
	"pct":  func(f float64) float64 { return 100 * f },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>paxtest soak</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
tr.pass td { background: #e8f5ec; } tr.fail td { background: #fdecea; } tr.unknown td, tr.crashed td { background: #fff7d6; }
</style></head><body>
<h1>paxtest soak: {{len .Runs}} runs, {{.Passed}} passed</h1>
<table><tr><th>#</th><th>run</th><th>seed</th><th>nemesis</th><th>workload</th><th>bug (self-check)</th><th>verdict</th><th>seconds</th><th>availability</th><th>of the time a majority was up</th><th>longest gap (s)</th><th>recovery median (s)</th><th>anomalies</th></tr>
{{range $i, $r := .Runs}}<tr class="{{if pass $r}}pass{{else if eq $r.Verdict "unknown"}}unknown{{else if eq $r.Verdict "crashed"}}crashed{{else}}fail{{end}}">
<td>{{$i}}</td><td>{{if $r.Dir}}<a href="{{index $.Links $i}}">{{$r.Name}}</a>{{else}}{{$r.Name}}{{end}}</td><td>{{$r.Seed}}</td><td>{{$r.Nemesis}}</td>
<td>{{$r.Workload}}</td><td>{{$r.Bug}}</td><td>{{$r.Verdict}}{{if $r.Error}}: {{$r.Error}}{{end}}{{if $r.Shortfall}}: {{$r.Shortfall}}{{end}}</td><td>{{printf "%.1f" $r.Seconds}}</td>
<td>{{printf "%.0f" (pct $r.Availability)}}%</td><td>{{printf "%.0f" (pct $r.ServableShare)}}%</td><td>{{printf "%.2f" $r.LongestGap}}</td><td>{{printf "%.2f" $r.Recovery}}</td><td>{{len $r.Anomalies}}</td></tr>
{{end}}</table></body></html>
`))

// RenderSoak writes the soak summary page; links are relative to dir.
func RenderSoak(w io.Writer, dir string, runs []SoakRun) error {
	var links []string
	passed := 0
	for _, r := range runs {
		rel, err := filepath.Rel(dir, filepath.Join(r.Dir, "index.html"))
		if err != nil {
			rel = ""
		}
		links = append(links, rel)
		if r.Passed() {
			passed++
		}
	}
	return soakTmpl.Execute(w, map[string]any{"Runs": runs, "Links": links, "Passed": passed})
}
