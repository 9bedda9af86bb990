// Package diskspace tells how much room a file system has, for the checks before a
// run and for naming a full disk when a step's etcd dies of it.
package diskspace

import "fmt"

// Hint describes dir's free space when it is below need ("" when there is room or
// the platform cannot tell), for error messages.
func Hint(dir string, need int64) string {
	free, ok := Free(dir)
	if !ok || free >= need {
		return ""
	}
	return fmt.Sprintf("the file system of %s has %d MiB free, about %d MiB needed: free space and rerun", dir, MiB(free), MiB(need))
}

// MiB rounds bytes up to MiB.
func MiB(b int64) int64 { return (b + 1<<20 - 1) >> 20 }
