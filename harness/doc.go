// Package harness is the controller of a run: it lays out the run directory,
// launches and stops the target's nodes through a Launcher (local child
// processes today; remote hosts later), waits for them to be healthy, keeps
// the run's shared clock, and tears everything down — on success, on a
// failure half-way and on Ctrl-C — collecting every error.
//
// It owns processes and ports. It must not decide faults (nemesis/),
// generate operations (workloads/) or judge histories (checker/); it knows
// the network fault layer only through the small Network interface.
package harness
