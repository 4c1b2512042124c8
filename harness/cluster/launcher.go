package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Spec says how to start one node process.
type Spec struct {
	Name    string   // for errors and logs, e.g. "n3"
	Binary  string   // the paxtest binary
	Args    []string // after the binary
	Env     []string // added to the harness's environment
	LogPath string   // stdout and stderr are appended here
}

// Launcher starts node processes.
type Launcher interface {
	Launch(spec Spec) (Process, error)
}

// Process is a running node process.
type Process interface {
	Kill() error   // SIGKILL, then wait for it to exit
	Stop() error   // SIGTERM, then SIGKILL after a grace period
	Pause() error  // SIGSTOP
	Resume() error // SIGCONT
	Exited() <-chan struct{}
	ExitErr() error // valid once Exited is closed
	Pid() int
}

// Local launches nodes as child processes of this process. On Linux each
// child gets Pdeathsig, so it dies with the harness even on kill -9.
type Local struct{}

// Launch starts spec as a child process.
func (Local) Launch(spec Spec) (Process, error) {
	logf, err := os.OpenFile(spec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Binary, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Binary, err)
	}
	p := &localProcess{name: spec.Name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

type localProcess struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func (p *localProcess) Pid() int                { return p.cmd.Process.Pid }
func (p *localProcess) Exited() <-chan struct{} { return p.exited }
func (p *localProcess) ExitErr() error          { <-p.exited; return p.err }

func (p *localProcess) signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	return nil
}

func (p *localProcess) Pause() error  { return p.signal(syscall.SIGSTOP) }
func (p *localProcess) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *localProcess) Kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 10s after SIGKILL", p.name, p.Pid())
	}
}

func (p *localProcess) Stop() error {
	// a paused process cannot handle SIGTERM until it runs again
	if err := p.signal(syscall.SIGCONT); err != nil {
		return err
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		return p.Kill()
	}
}
