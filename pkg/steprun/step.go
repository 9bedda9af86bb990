// Package steprun runs migration steps on one data dir: the Step interface every
// kind of step implements (pkg/steps has the planner and the upgrades, pkg/rollback
// the rollbacks), and the Env a step runs in: the data dir, the bundled binaries,
// the member's identity, an etcd run that ends with a snapshot, and the keyspace
// proof carried from step to step.
package steprun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// Kind names what a step does, in plans and logs.
type Kind string

const (
	KindWriteVersion    Kind = "write-version"
	KindUpgradeMinor    Kind = "upgrade-minor"
	KindHandOver        Kind = "hand-over"
	KindUpgradePatch    Kind = "upgrade-patch"
	KindV2ToV3          Kind = "v2-to-v3"
	KindRollbackMinor   Kind = "rollback-minor"
	KindRollbackToEtcd2 Kind = "rollback-to-etcd2"
	KindUpgradeEtcd2    Kind = "upgrade-etcd2"
)

// Step is one planned move of the data. Run does the work; Env.Run records To in
// version.txt once the data is in that state.
type Step interface {
	Kind() Kind
	// Span is the move: the pair the data starts at and the one version.txt
	// records after the step.
	Span() Move
	// String describes the step for plans, logs and errors.
	String() string
	// Binaries lists the bundled binaries the step runs; none means the step
	// changes no data (only version.txt).
	Binaries(binDir string) []string
	// RewritesMemberDir: the step builds a new member dir (new WAL included) and
	// swaps it in; the others keep the member dir and its WAL.
	RewritesMemberDir() bool
	// Space is the room the step needs in the data dir's file system for data of
	// dataSize bytes.
	Space(dataSize int64) int64
	// Preflight checks what the step will read before anything is touched, and
	// keeps what Run needs from it.
	Preflight(env *Env) error
	// Run moves the data and returns the step's timings and counts as log
	// attributes.
	Run(ctx context.Context, env *Env) ([]any, error)
}

// StepSpace is about the room a step's etcd needs to write: a new 64 MiB WAL
// segment, allocated up front.
const StepSpace = 64 << 20

// Move is From and To of a step. Its methods are the defaults of a step that runs
// etcd on the member dir it keeps: embed it and override what differs.
type Move struct {
	From versionfile.Pair
	To   versionfile.Pair
	// Final marks the last step of a walk on a cluster of several members: its
	// last run's barrier lease is revoked once everybody passed it.
	Final bool
}

func (m Move) Span() Move                 { return m }
func (m Move) RewritesMemberDir() bool    { return false }
func (m Move) Preflight(*Env) error       { return nil }
func (m Move) Space(dataSize int64) int64 { return StepSpace + dataSize/4 }

// RewriteSpace is Space of a step that writes a second member dir beside the first.
func RewriteSpace(dataSize int64) int64 { return StepSpace + dataSize/4 + dataSize }

// EtcdBinary is the path of the bundled etcd of version v.
func EtcdBinary(binDir string, v *version.Version) string {
	return filepath.Join(binDir, "etcd-"+v.String())
}

// EtcdctlBinary is the path of the bundled etcdctl of version v.
func EtcdctlBinary(binDir string, v *version.Version) string {
	return filepath.Join(binDir, "etcdctl-"+v.String())
}

// CheckExecutable refuses a bundled binary that is missing or not executable,
// saying how to fix it.
func CheckExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("bundled binary %s is missing: build it (make etcd-binaries) or fix --bin-dir/BUNDLED_VERSIONS", path)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("bundled binary %s is not an executable file (mode %s): chmod +x it or fix --bin-dir", path, fi.Mode())
	}
	return nil
}

// ChangesData says whether s changes the data (it runs a bundled binary), not only
// version.txt.
func ChangesData(s Step) bool { return len(s.Binaries("")) > 0 }

// AnyChangesData says whether a step of plan changes the data.
func AnyChangesData(plan []Step) bool { return slices.ContainsFunc(plan, ChangesData) }
