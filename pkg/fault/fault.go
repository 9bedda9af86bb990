// Package fault lets the crash tests kill migrate at a named point. It is compiled
// in always and inert unless ETCD_MIGRATE_FAULT is set, so the binary under test is
// the binary that ships.
//
//	ETCD_MIGRATE_FAULT=<point>      SIGKILL this process the first time <point> is reached
//	ETCD_MIGRATE_FAULT=<point>:<n>  ... the n-th time (counting from 1)
//
// A child etcd dies with migrate (Pdeathsig), as it would under a kubelet kill.
//
//	ETCD_MIGRATE_FAULT_FILL=<point>[:<n>]@<file>  fill the file system of <file>
//	                                               by writing <file> until ENOSPC
//
// makes every later write on that file system fail for real (the full-disk tests).
//
//	ETCD_MIGRATE_FAULT_PAUSE=<point>[:<n>]@<duration>  sleep there (the signal tests
//	                                                  send a signal meanwhile)
package fault

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Env names the kill to inject; FillEnv the point at which to fill the disk.
const (
	Env      = "ETCD_MIGRATE_FAULT"
	FillEnv  = "ETCD_MIGRATE_FAULT_FILL"
	PauseEnv = "ETCD_MIGRATE_FAULT_PAUSE"
)

// BeforeExec is reached after the migration, just before the check for a signal
// that ends the run without exec. Not in Points: a kill there is a kill after the
// last step.
const BeforeExec = "migrate.before-exec"

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
	RestoreRunning     = "rollback.restore-running" // the older etcdctl's snapshot restore started, not done
	RollbackMidWrite   = "rollback.mid-write"       // v2 snapshot being written
	RollbackBeforeSwap = "rollback.before-swap"     // etcd2 member dir verified, not swapped in
)

// Points lists every injection point.
var Points = []string{
	BackupBeforeCopy, BackupAfterCopy, BackupAfterRename,
	StepBeforeStart, StepAfterStart, StepBeforeStop, StepAfterStop,
	VersionAfterTemp, VersionAfterSync, VersionAfterRename,
	ConvertMidWrite, ConvertBeforeSwap, MemberDirMidSwap,
	RestoreRunning, RollbackMidWrite, RollbackBeforeSwap,
}

// trigger is one configured fault: a point, the occurrence that fires it and how
// many times the point was reached.
type trigger struct {
	point string
	nth   int
	hits  int
	arg   string
}

func (t *trigger) parse(v string) {
	if v == "" {
		return
	}
	t.point, t.nth = v, 1
	if i := strings.LastIndexByte(v, ':'); i > 0 {
		if n, err := strconv.Atoi(v[i+1:]); err == nil && n > 0 {
			t.point, t.nth = v[:i], n
		}
	}
}

// reached counts a visit of point and says whether the fault fires now.
func (t *trigger) reached(point string) bool {
	if t.point == "" || point != t.point {
		return false
	}
	t.hits++
	return t.hits == t.nth
}

var (
	once    sync.Once
	mu      sync.Mutex
	killAt  trigger
	fillAt  trigger
	pauseAt trigger
)

func load() {
	killAt.parse(os.Getenv(Env))
	if v := os.Getenv(FillEnv); v != "" {
		if point, file, ok := strings.Cut(v, "@"); ok && file != "" {
			fillAt.parse(point)
			fillAt.arg = file
		}
	}
	if v := os.Getenv(PauseEnv); v != "" {
		if point, d, ok := strings.Cut(v, "@"); ok && d != "" {
			pauseAt.parse(point)
			pauseAt.arg = d
		}
	}
}

// Point injects the configured faults that name this point at this occurrence.
func Point(name string) {
	once.Do(load)
	mu.Lock()
	kill := killAt.reached(name)
	fill := fillAt.reached(name)
	pause := pauseAt.reached(name)
	mu.Unlock()
	if fill {
		fillDisk(fillAt.arg)
	}
	if pause {
		if d, err := time.ParseDuration(pauseAt.arg); err == nil {
			fmt.Fprintf(os.Stderr, "fault: pausing at %s for %v\n", name, d)
			time.Sleep(d)
		}
	}
	if kill {
		killProcess()
	}
}

// fillDisk writes file until its file system has no space left (errors ignored:
// a full disk is the point).
func fillDisk(file string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 0xa5 // not zeros, which some file systems store as holes
	}
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	// The last bytes a 1 MiB write could not take.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
	_ = f.Sync()
}
