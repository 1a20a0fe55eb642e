//go:build race

package mqtt

// raceEnabled: the race detector makes sync.Pool drop a share of what it is given, so
// allocation counts are not the program's.
const raceEnabled = true
