package reports

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/checker/history"
	"github.com/paxtest/paxtest/nemesis/fault"
)

//go:embed assets/vendor/uplot/uPlot.iife.min.js
var uplotJS string

//go:embed assets/vendor/uplot/uPlot.min.css
var uplotCSS string

//go:embed assets/index.html.tmpl
var indexTmpl string

//go:embed assets/report.js
var reportJS string

//go:embed assets/report.css
var reportCSS string

// NodeLog is one node's log file and the lines around the first anomaly.
type NodeLog struct {
	Name    string
	Path    string // relative to the run directory
	Excerpt []string
}

// Page is everything index.html shows.
type Page struct {
	Results  Results
	History  *checker.History
	Logs     []checker.LogSample
	NodeLogs []NodeLog
}

// Explain says in plain words what an anomaly kind means.
func Explain(kind string) string {
	switch kind {
	case checker.KindCommittedThenOverwritten:
		return "A log index was chosen with one value and later, on some node, with another: a value the cluster had committed was overwritten. This is the violation of Raft's Figure 8 — a leader counted an entry as committed that a later leader could still replace."
	case checker.KindAckWriteLost:
		return "The cluster told a client its write succeeded, but the write is in no node's final log (or a later read does not contain it): an acknowledged write was lost."
	case checker.KindNonLinearizable:
		return "No single order of this key's operations, consistent with when each began and ended, explains the values the clients read: the key did not behave like one register."
	case checker.KindAppendNotPrefix:
		return "Two reads of the same list disagree: neither is a prefix of the other, or a later read is shorter than an earlier, completed one."
	case checker.KindDuplicateAppend:
		return "A read holds the same appended value twice: one append took effect twice."
	case checker.KindPhantomValue:
		return "A read holds a value that no client ever appended."
	case checker.KindDidNotRecover:
		return "A liveness finding: once every fault was healed, a node (or the whole cluster) did not serve again within the bound set by the system's recovery time, although no damage was injected that it could rightly refuse."
	case checker.KindNeverSucceeded:
		return "A liveness finding: a kind of operation was invoked many times and never once succeeded."
	}
	return "See the detail and evidence."
}

type cell struct {
	Sightings []string `json:"sightings"`
	Mark      string   `json:"mark"` // committed, overwritten, ""
}

type matrix struct {
	Index uint64            `json:"index"`
	Slots []uint64          `json:"slots"`
	Nodes []string          `json:"nodes"`
	Cells map[string][]cell `json:"cells"` // node -> per slot
}

// evidenceMatrix lays out, for an overwritten index, every node's values
// at the slots around it, each with the ballot and when it was first seen.
func evidenceMatrix(index uint64, logs []checker.LogSample) matrix {
	first := map[uint64]checker.LogEntryRef{}
	type seen struct {
		t      int64
		ballot string
		digest string
		value  string
	}
	per := map[string]map[uint64][]seen{}
	nodes := map[string]bool{}
	lo, hi := max(index, 3)-2, index+2
	for _, s := range logs {
		nodes[s.Node] = true
		add := func(i uint64, ballot, digest, value string) {
			if i < lo || i > hi {
				return
			}
			m := per[s.Node]
			if m == nil {
				m = map[uint64][]seen{}
				per[s.Node] = m
			}
			l := m[i]
			if len(l) > 0 && l[len(l)-1].digest == digest {
				return
			}
			m[i] = append(l, seen{s.Time, ballot, digest, value})
		}
		for _, e := range s.Entries {
			if _, ok := first[e.Index]; !ok {
				first[e.Index] = checker.LogEntryRef{Ballot: e.Ballot, Digest: e.Digest, Value: e.Value}
			}
			add(e.Index, e.Ballot, e.Digest, e.Value)
		}
		for _, r := range s.Same {
			for i := max(r[0], lo); i <= min(r[1], hi); i++ {
				if f, ok := first[i]; ok {
					add(i, f.Ballot, f.Digest, f.Value)
				}
			}
		}
	}
	m := matrix{Index: index, Cells: map[string][]cell{}}
	for i := lo; i <= hi; i++ {
		m.Slots = append(m.Slots, i)
	}
	for n := range nodes {
		m.Nodes = append(m.Nodes, n)
	}
	sort.Strings(m.Nodes)
	for _, n := range m.Nodes {
		for _, i := range m.Slots {
			var c cell
			for _, s := range per[n][i] {
				c.Sightings = append(c.Sightings, fmt.Sprintf("%.3fs  b%s  %s", float64(s.t)/1e9, s.ballot, shortValue(s.value)))
				if f, ok := first[i]; ok && s.digest != f.Digest {
					c.Mark = "overwritten"
				} else if i == index && c.Mark == "" {
					c.Mark = "committed"
				}
			}
			m.Cells[n] = append(m.Cells[n], c)
		}
	}
	return m
}

// shortValue renders a command compactly: "put r1-3=42 (p3#17)".
func shortValue(v string) string {
	var r struct {
		Client, Op, Key, Value, From, To string
		Seq                              uint64
	}
	if v == "" {
		return "no-op"
	}
	if json.Unmarshal([]byte(v), &r) != nil || r.Op == "" {
		if len(v) > 40 {
			return v[:37] + "..."
		}
		return v
	}
	switch r.Op {
	case "put", "append":
		return fmt.Sprintf("%s %s=%s (%s#%d)", r.Op, r.Key, r.Value, r.Client, r.Seq)
	case "cas":
		return fmt.Sprintf("cas %s %s→%s (%s#%d)", r.Key, r.From, r.To, r.Client, r.Seq)
	}
	return fmt.Sprintf("%s %s (%s#%d)", r.Op, r.Key, r.Client, r.Seq)
}

type opRow struct {
	Process string
	Type    string
	F       string
	Value   string
	Invoke  string
	Done    string
	Node    string
	Error   string
}

// keyOps lists the operations on key that overlap [t-2s, t+2s].
func keyOps(h *checker.History, key string, t int64) []opRow {
	var rows []opRow
	for _, op := range h.KeyOps(key) {
		if op.Type == "" || op.Return < t-2e9 || op.Call > t+2e9 {
			continue
		}
		rows = append(rows, opRow{Process: fmt.Sprint(op.Process), Type: op.Type, F: op.F, Value: opValue(op),
			Invoke: fmt.Sprintf("%.3f", float64(op.Call)/1e9), Done: fmt.Sprintf("%.3f", float64(op.Return)/1e9), Node: op.Node, Error: op.Error})
		if len(rows) >= 200 {
			break
		}
	}
	return rows
}

// opValue shows what an operation wrote or read.
func opValue(op *checker.Op) string {
	switch op.F {
	case "cas":
		return fmt.Sprintf("%q→%q", op.From, op.Value)
	case "get":
		if op.Type != history.OK {
			return ""
		}
		if !op.Found {
			return "nil"
		}
		return fmt.Sprintf("%q", op.Value)
	case "read":
		if op.Type != history.OK {
			return ""
		}
		return fmt.Sprintf("%q", op.List)
	}
	return fmt.Sprintf("%q", op.Value)
}

type chartData struct {
	// latency: x = invocation second, y = latency ms per outcome (null elsewhere)
	LatX    []float64  `json:"lat_x"`
	LatOK   []*float64 `json:"lat_ok"`
	LatFail []*float64 `json:"lat_fail"`
	LatInfo []*float64 `json:"lat_info"`
	// throughput per second
	RateX    []float64   `json:"rate_x"`
	RateOK   []int       `json:"rate_ok"`
	RateFail []int       `json:"rate_fail"`
	RateInfo []int       `json:"rate_info"`
	Faults   []faultView `json:"faults"`
	// Unserved are the load's seconds without an acknowledged operation,
	// drawn on the throughput plot.
	Unserved []checker.Span `json:"unserved"`
	Matrix   []matrix       `json:"matrices"`
}

type faultView struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Label string  `json:"label"`
}

// maxPoints bounds the latency scatter, so a million-operation report stays
// a few MB: beyond it operations are sampled evenly (every anomaly's
// evidence is kept elsewhere on the page).
const maxPoints = 60000

// maxBuckets bounds the throughput chart's buckets.
const maxBuckets = 10000

func charts(h *checker.History) chartData {
	var d chartData
	type pt struct {
		x, y float64
		typ  string
	}
	completed := 0
	for i := range h.Ops {
		if op := &h.Ops[i]; !op.Final && op.Type != "" {
			completed++
		}
	}
	// sample while reading (ops are in invocation order), sort only the sample
	step := max(1, completed/maxPoints)
	pts := make([]pt, 0, min(completed, maxPoints+1))
	seen := 0
	// one bucket a second, or wider ones when the history spans more than
	// maxBuckets seconds (its times are the user's, and may be anything)
	width := max(int64(1e9), h.Last/maxBuckets+1)
	buckets := int(h.Last/width) + 1
	d.RateOK, d.RateFail, d.RateInfo = make([]int, buckets), make([]int, buckets), make([]int, buckets)
	for i := 0; i < buckets; i++ {
		d.RateX = append(d.RateX, float64(int64(i)*width)/1e9)
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Final || op.Type == "" {
			continue
		}
		if seen%step == 0 {
			pts = append(pts, pt{float64(op.Call) / 1e9, float64(op.Return-op.Call) / 1e6, op.Type})
		}
		seen++
		s := min(int(op.Return/width), buckets-1)
		switch op.Type {
		case history.OK:
			d.RateOK[s]++
		case history.Fail:
			d.RateFail[s]++
		case history.Info:
			d.RateInfo[s]++
		}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].x < pts[j].x })
	for _, p := range pts {
		y := p.y
		d.LatX = append(d.LatX, p.x)
		var ok, fail, info *float64
		switch p.typ {
		case history.OK:
			ok = &y
		case history.Fail:
			fail = &y
		default:
			info = &y
		}
		d.LatOK, d.LatFail, d.LatInfo = append(d.LatOK, ok), append(d.LatFail, fail), append(d.LatInfo, info)
	}
	for _, iv := range checker.FaultIntervals(h) {
		d.Faults = append(d.Faults, faultView{float64(iv.Start) / 1e9, float64(iv.End) / 1e9, strings.TrimSpace(iv.Kind + " " + fault.Names(iv.Nodes))})
	}
	sort.Slice(d.Faults, func(i, j int) bool { return d.Faults[i].Start < d.Faults[j].Start })
	return d
}

type anomalyView struct {
	checker.Anomaly
	Explain string
	Seconds string
	Ops     []opRow
}

// RenderIndex writes index.html: self-contained, loading nothing from the
// network.
func RenderIndex(w io.Writer, p Page) error {
	t, err := template.New("index").Funcs(template.FuncMap{
		"upper": func(v checker.Verdict) string { return strings.ToUpper(string(v)) },
		"pct":   func(f float64) float64 { return 100 * f },
		"secs":  func(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) },
	}).Parse(indexTmpl)
	if err != nil {
		return fmt.Errorf("parse report template: %w", err)
	}
	data := charts(p.History)
	if a := p.Results.Availability; a != nil {
		data.Unserved = a.Unserved
	}
	views := anomalyViews(p, &data)
	cfgRows, err := configRows(p.Results.Config)
	if err != nil {
		return err
	}
	checkers := make([]string, 0, len(p.Results.Checkers))
	for k := range p.Results.Checkers {
		checkers = append(checkers, k)
	}
	sort.Strings(checkers)
	js, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	err = t.Execute(&buf, map[string]any{
		"R":         p.Results,
		"Config":    cfgRows,
		"Checkers":  checkers,
		"Anomalies": views,
		"Kinds":     kindViews(views, p.Results.Anomalies),
		"Faults":    faultRows(p.Results.Availability),
		"HasMatrix": len(data.Matrix) > 0,
		"More":      len(p.Results.Anomalies) - len(views),
		"NodeLogs":  p.NodeLogs,
		"Data":      template.JS(js),
		"UPlotJS":   template.JS(uplotJS),
		"UPlotCSS":  template.CSS(uplotCSS),
		"ReportJS":  template.JS(reportJS),
		"ReportCSS": template.CSS(reportCSS),
		"Rendered":  time.Now().UTC().Format(time.RFC3339),
	})
	if err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// anomalyViews are the first 50 anomalies with their explanations, the
// operations on the first five keys, and up to three evidence matrices
// (added to data).
func anomalyViews(p Page, data *chartData) []anomalyView {
	var views []anomalyView
	seenKey := map[string]bool{}
	for i, a := range p.Results.Anomalies {
		if i >= 50 {
			break
		}
		v := anomalyView{Anomaly: a, Explain: Explain(a.Kind), Seconds: fmt.Sprintf("%.3fs", float64(a.Time)/1e9)}
		if a.Key != "" && !seenKey[a.Key] && len(seenKey) < 5 {
			seenKey[a.Key] = true
			v.Ops = keyOps(p.History, a.Key, a.Time)
		}
		if a.Kind == checker.KindCommittedThenOverwritten && len(data.Matrix) < 3 {
			data.Matrix = append(data.Matrix, evidenceMatrix(a.Index, p.Logs))
		}
		views = append(views, v)
	}
	return views
}

// kindView is one kind of anomaly: how many, and the first shown.
type kindView struct {
	Kind     string
	Count    int
	Explain  string
	First    anomalyView
	Liveness bool // the system stopped serving, as opposed to a safety violation
}

// faultRow is one fault in the availability table.
type faultRow struct {
	checker.FaultFigure
	Name     string
	Recovery string
}

// faultRows are the availability table's rows: each fault, its
// acknowledgements while in force and its recovery.
func faultRows(a *checker.Availability) []faultRow {
	if a == nil {
		return nil
	}
	var out []faultRow
	for _, f := range a.Faults {
		r := faultRow{FaultFigure: f, Name: strings.TrimSpace(f.Kind + " " + fault.Names(f.Nodes)), Recovery: "did not recover"}
		if f.Attempt {
			r.Name = "attempt of " + r.Name
		}
		if f.Recovered() {
			r.Recovery = fmt.Sprintf("%.2f", f.Recovery)
		}
		if f.AfterLoad && f.Recovered() {
			r.Recovery += " (final reads)"
		}
		out = append(out, r)
	}
	return out
}

func kindViews(views []anomalyView, all []checker.Anomaly) []*kindView {
	var kinds []*kindView
	byKind := map[string]*kindView{}
	for _, v := range views {
		if byKind[v.Kind] == nil {
			k := &kindView{Kind: v.Kind, Explain: v.Explain, First: v, Liveness: checker.IsLiveness(v.Kind)}
			byKind[v.Kind] = k
			kinds = append(kinds, k)
		}
	}
	for _, a := range all {
		if k := byKind[a.Kind]; k != nil {
			k.Count++
		}
	}
	return kinds
}

// configRows are the run's config as sorted name/value rows, durations
// readable.
func configRows(raw json.RawMessage) ([][2]string, error) {
	var cfg map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("read the run's config in results.json: %w", err)
		}
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var rows [][2]string
	for _, k := range keys {
		v := fmt.Sprint(cfg[k])
		if ns, ok := cfg[k].(float64); ok && (strings.HasSuffix(k, "limit") || strings.HasSuffix(k, "interval") || strings.HasSuffix(k, "timeout")) {
			v = time.Duration(ns).String() // Go durations are nanoseconds in config.json
		}
		rows = append(rows, [2]string{k, v})
	}
	return rows, nil
}
