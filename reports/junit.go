package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// SoakRun is one run of a soak, as the JUnit file and summary page show it.
type SoakRun struct {
	Name      string   `json:"name"`
	Dir       string   `json:"dir"`
	Seed      int64    `json:"seed"`
	Nemesis   string   `json:"nemesis"`
	Workload  string   `json:"workload"`
	Bug       string   `json:"bug,omitempty"` // a self-check run: a bug switch that must be caught
	Verdict   string   `json:"verdict"`       // valid, invalid, unknown, or crashed
	Seconds   float64  `json:"seconds"`
	Anomalies []string `json:"anomalies,omitempty"`
	Error     string   `json:"error,omitempty"`
	Trimmed   bool     `json:"trimmed,omitempty"`
	// Availability is the share of the load's seconds served, and of the
	// time a majority of the nodes was up; LongestGap and Recovery (the
	// median after a fault) in seconds; Shortfall what the power floor
	// said of an unknown run.
	Availability  float64 `json:"availability"`
	ServableShare float64 `json:"servable_share"`
	LongestGap    float64 `json:"longest_gap_s"`
	Recovery      float64 `json:"recovery_median_s"`
	Shortfall     string  `json:"shortfall,omitempty"`
}

// Power fills the run's availability figures from its results.
func (r *SoakRun) Power(res Results) {
	if a := res.Availability; a != nil {
		r.Availability, r.ServableShare, r.LongestGap = a.Share, a.ServableShare, a.LongestGap.Seconds()
		r.Recovery = Recoveries(a.Faults).Median
	}
	if p, ok := res.Checkers["power"]; ok && p.Verdict != "valid" {
		r.Shortfall = p.Detail
	}
}

// availability is the line the JUnit output gives a run ("" for one
// that crashed: it measured nothing).
func (r SoakRun) availability() string {
	if r.Verdict == "crashed" {
		return ""
	}
	return fmt.Sprintf("availability %.0f%% (%.0f%% of the time a majority was up); longest gap %.2f s; recovery median %.2f s",
		100*r.Availability, 100*r.ServableShare, r.LongestGap, r.Recovery)
}

// Passed reports whether the run is a pass: valid on the correct build, or
// invalid (caught) on a self-check run.
func (r SoakRun) Passed() bool {
	if r.Bug != "" {
		return r.Verdict == "invalid"
	}
	return r.Verdict == "valid"
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Class   string        `xml:"classname,attr"`
	Name    string        `xml:"name,attr"`
	Time    string        `xml:"time,attr"`
	Failure *junitMessage `xml:"failure,omitempty"`
	Error   *junitMessage `xml:"error,omitempty"`
	Out     string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes one testcase per run: an invalid verdict (or a missed
// self-check) is a failure, unknown or a crashed harness is an error.
func WriteJUnit(w io.Writer, runs []SoakRun) error {
	s := junitSuite{Name: "paxtest soak", Tests: len(runs)}
	var total float64
	for _, r := range runs {
		total += r.Seconds
		c := junitCase{Class: "paxtest." + r.Workload, Name: fmt.Sprintf("%s seed %d", r.Name, r.Seed), Time: fmt.Sprintf("%.3f", r.Seconds),
			Out: strings.TrimSpace(r.Dir + "\n" + r.availability())}
		body := strings.Join(append([]string{"run directory: " + r.Dir, r.availability()}, r.Anomalies...), "\n")
		switch {
		case r.Passed():
		case r.Verdict == "crashed":
			s.Errors++
			c.Error = &junitMessage{Message: "the harness failed: " + r.Error, Type: "crashed", Body: body}
		case r.Verdict == "unknown":
			s.Errors++
			why := "the checks could not decide"
			if r.Shortfall != "" {
				why = r.Shortfall
			}
			c.Error = &junitMessage{Message: "verdict unknown: " + why + " (" + r.Dir + ")", Type: "unknown", Body: body}
		case r.Bug != "":
			s.Failures++
			c.Failure = &junitMessage{Message: fmt.Sprintf("self-check: bug switch %s was not caught (%s)", r.Bug, r.Dir), Type: "missed", Body: body}
		default:
			s.Failures++
			c.Failure = &junitMessage{Message: fmt.Sprintf("invalid: %d anomalies (%s)", len(r.Anomalies), r.Dir), Type: "invalid", Body: body}
		}
		s.Cases = append(s.Cases, c)
	}
	s.Time = fmt.Sprintf("%.3f", total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
