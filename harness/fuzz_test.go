package harness

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/paxtest/paxtest/checker"
)

// FuzzCheck: a run directory with any history gets a verdict or a
// UsageError (exit 254) naming what it refused, never a panic, and a
// valid verdict only when every checker that ran said valid.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(`{"index":0,"time":1,"process":0,"type":"invoke","f":"put","key":"k","value":"1","client":"p0","seq":1}
{"index":1,"time":2,"process":0,"type":"ok","f":"put","key":"k","value":"1","client":"p0","seq":1}
{"index":2,"time":3,"process":1,"type":"invoke","f":"get","key":"k","value":null}
{"index":3,"time":4,"process":1,"type":"ok","f":"get","key":"k","value":"2"}
`))
	f.Add([]byte(`{"time":1,"process":0,"type":"invoke","f":"cas","key":"k","value":[1,2]}
{"time":2,"process":0,"type":"fail","f":"cas","key":"k","value":[1,2]}`))
	f.Fuzz(func(t *testing.T, hist []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"workload":"register","check_timeout":1000000000}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "history.jsonl"), hist, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Check(CheckOptions{Dir: dir, Checkers: []string{"linearizable", "stats"}, Timeout: 50 * time.Millisecond})
		if err != nil {
			if !errors.As(err, new(UsageError)) {
				t.Fatalf("not a usage error: %v", err)
			}
			return
		}
		if res.Verdict == checker.Valid {
			for name, c := range res.Checkers {
				if c.Verdict != checker.Valid {
					t.Fatalf("valid overall, but %s said %s", name, c.Verdict)
				}
			}
		}
	})
}
