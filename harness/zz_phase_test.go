package harness

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/paxtest/paxtest/checker"
)

func TestZZPhases(t *testing.T) {
	dir := os.Getenv("PROF_DIR")
	if dir == "" {
		t.Skip()
	}
	s := time.Now()
	h, err := checker.LoadHistory(filepath.Join(dir, "history.jsonl"), "register")
	t.Log("load", time.Since(s), err)
	s = time.Now()
	l := checker.CheckLinearizable(h, time.Minute)
	t.Log("lin", time.Since(s), l.Verdict)
	s = time.Now()
	_, err = Check(CheckOptions{Dir: dir, Checkers: []string{"linearizable", "stats"}})
	t.Log("whole check", time.Since(s), err)
}
