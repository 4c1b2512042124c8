package cluster

import "syscall"

// sysProcAttr makes a child die with the harness (Pdeathsig) and puts it in
// its own process group, so a terminal's Ctrl-C reaches only the harness,
// which then tears the cluster down in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
