//go:build !linux

package checker

// adviseHuge is Linux's; elsewhere the memory is faulted in as it comes.
func adviseHuge[T any](s []T) {}
