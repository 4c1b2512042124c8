package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/paxtest/paxtest/checker"
	"github.com/paxtest/paxtest/harness"
)

// Exit codes, as Jepsen's: 0 valid, 1 invalid, 2 unknown, 254 bad arguments
// or input, 255 the harness itself failed.
const (
	exitValid   = 0
	exitInvalid = 1
	exitUnknown = 2
	exitUsage   = 254
	exitFailure = 255
)

// usagef builds a usage error (exit 254): the one type, harness.UsageError.
func usagef(format string, args ...any) error {
	return harness.UsageError{Err: fmt.Errorf(format, args...)}
}

// verdictErr carries a non-valid verdict to the exit code.
type verdictErr struct{ verdict checker.Verdict }

func (e verdictErr) Error() string { return "verdict " + string(e.verdict) }

func verdictError(v checker.Verdict) error {
	if v == checker.Valid {
		return nil
	}
	return verdictErr{v}
}

// exitCode maps an error from any command to the process exit code, in one
// place, and prints it.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitValid
	}
	var ge gateError
	if errors.As(err, &ge) {
		fmt.Fprintf(stderr, "paxtest: %v\n", err)
		return exitInvalid
	}
	var se soakExit
	if errors.As(err, &se) {
		return se.code
	}
	var ve verdictErr
	if errors.As(err, &ve) {
		if ve.verdict == checker.Invalid {
			return exitInvalid
		}
		return exitUnknown
	}
	var ue harness.UsageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stderr, "paxtest: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "paxtest: %v\n", err)
	return exitFailure
}

// isCobraUsage recognises cobra's own argument errors (unknown command,
// wrong number of arguments), which it does not type.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires at least", "invalid argument"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
