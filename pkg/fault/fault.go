// Package fault lets the crash tests kill migrate at a named point. It is compiled
// in always and inert unless ETCD_MIGRATE_FAULT is set, so the binary under test is
// the binary that ships.
//
//	ETCD_MIGRATE_FAULT=<point>      SIGKILL this process the first time <point> is reached
//	ETCD_MIGRATE_FAULT=<point>:<n>  ... the n-th time (counting from 1)
//
// A child etcd dies with migrate (Pdeathsig), as it would under a kubelet kill.
package fault

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// Env names the fault to inject.
const Env = "ETCD_MIGRATE_FAULT"

// The injection points, in the order a run reaches them.
const (
	BackupBeforeCopy   = "backup.before-copy"
	BackupAfterCopy    = "backup.after-copy" // copied and synced, not yet renamed into place
	BackupAfterRename  = "backup.after-rename"
	StepBeforeStart    = "step.before-start"        // before a step's etcd starts
	StepAfterStart     = "step.after-start"         // its etcd answers
	StepBeforeStop     = "step.before-stop"         // ready, snapshot saved, not yet stopped
	StepAfterStop      = "step.after-stop"          // stopped, version.txt not yet written
	VersionAfterTemp   = "versionfile.after-temp"   // temp file written, not synced
	VersionAfterSync   = "versionfile.after-sync"   // temp file synced, not renamed
	VersionAfterRename = "versionfile.after-rename" // renamed, dir not synced
	ConvertMidWrite    = "v2tov3.mid-write"         // some keys committed to the new backend
	ConvertBeforeSwap  = "v2tov3.before-swap"       // new member dir verified, not swapped in
	MemberDirMidSwap   = "memberdir.mid-swap"       // old member dir moved aside, new one not in place
	RollbackMidWrite   = "rollback.mid-write"       // v2 snapshot being written
	RollbackBeforeSwap = "rollback.before-swap"     // etcd2 member dir verified, not swapped in
)

// Points lists every injection point.
var Points = []string{
	BackupBeforeCopy, BackupAfterCopy, BackupAfterRename,
	StepBeforeStart, StepAfterStart, StepBeforeStop, StepAfterStop,
	VersionAfterTemp, VersionAfterSync, VersionAfterRename,
	ConvertMidWrite, ConvertBeforeSwap, MemberDirMidSwap,
	RollbackMidWrite, RollbackBeforeSwap,
}

var (
	once   sync.Once
	target string
	nth    int
	mu     sync.Mutex
	hits   int
)

func load() {
	v := os.Getenv(Env)
	if v == "" {
		return
	}
	target, nth = v, 1
	if i := strings.LastIndexByte(v, ':'); i > 0 {
		if n, err := strconv.Atoi(v[i+1:]); err == nil && n > 0 {
			target, nth = v[:i], n
		}
	}
}

// Point kills the process if the configured fault names this point and this is
// the configured occurrence.
func Point(name string) {
	once.Do(load)
	if target == "" || name != target {
		return
	}
	mu.Lock()
	hits++
	hit := hits == nth
	mu.Unlock()
	if hit {
		kill()
	}
}
