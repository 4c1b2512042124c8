package reports

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJUnitHasOneTestcasePerRunAndClassifiesVerdicts(t *testing.T) {
	runs := []SoakRun{
		{Name: "register-partition", Workload: "register", Seed: 1, Verdict: "valid", Seconds: 12, Dir: "s/a",
			Availability: 0.93, ServableShare: 0.98, LongestGap: 1.25, Recovery: 0.4},
		{Name: "append-kill", Workload: "append", Seed: 2, Verdict: "invalid", Seconds: 11, Dir: "s/b", Anomalies: []string{"acknowledged-write-lost: x"}},
		{Name: "register-all", Workload: "register", Seed: 3, Verdict: "unknown", Dir: "s/c", Availability: 0.2, ServableShare: 0.2, LongestGap: 12,
			Shortfall: "the run tested too little to say valid: 12.0 s of 15.0 s had no acknowledged operation"},
		{Name: "register-figure8", Workload: "register", Seed: 4, Bug: "reconfirm-old-ballot", Verdict: "invalid", Dir: "s/d"},
		{Name: "register-kill", Workload: "register", Seed: 5, Bug: "no-fsync", Verdict: "valid", Dir: "s/e"},
		{Name: "register-pause", Workload: "register", Seed: 6, Verdict: "crashed", Error: "port in use"},
	}
	var buf bytes.Buffer
	require.NoError(t, WriteJUnit(&buf, runs))
	golden := filepath.Join("testdata", "soak.junit.xml")
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), buf.String())
	var parsed junitSuites
	require.NoError(t, xml.Unmarshal(buf.Bytes(), &parsed))
	s := parsed.Suites[0]
	require.Equal(t, 6, s.Tests)
	require.Len(t, s.Cases, 6)
	require.Equal(t, 2, s.Failures, "the invalid run and the missed self-check")
	require.Equal(t, 2, s.Errors, "unknown and crashed")
	require.Contains(t, s.Cases[2].Error.Message, "12.0 s of 15.0 s had no acknowledged operation", "an unknown run says what fell short")
	require.Contains(t, s.Cases[0].Out, "availability 93% (98% of the time a majority was up); longest gap 1.25 s")
}
