// Package quorum holds the majority arithmetic every other part of the
// target relies on: how many of n acceptors form a quorum, and whether a set
// of replies reaches one. It is pure: no state, no I/O.
package quorum

// Majority returns the smallest number of acceptors out of n whose replies
// decide: any two sets of that size intersect. n must be positive.
func Majority(n int) int {
	if n <= 0 {
		panic("quorum: cluster size must be positive")
	}
	return n/2 + 1
}

// Reached reports whether votes distinct acceptors out of n form a majority.
func Reached(votes, n int) bool {
	return votes >= Majority(n)
}

// Tolerates returns how many of n acceptors may fail while a majority of
// the rest can still decide.
func Tolerates(n int) int {
	return n - Majority(n)
}
