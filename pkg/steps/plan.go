// Package steps owns the migration path: planning it (a pure function of the
// current state, the target and the bundled versions, returning typed steps), and
// the steps that go up: write-version, the patch and minor upgrades and the etcd2
// conversion. The rollbacks are pkg/rollback's; pkg/steprun runs them all.
package steps

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// ErrNotSupported marks moves the bundled binaries cannot make (etcd2 rollbacks,
// etcd2 at 2.x or 3.0 from etcd3); the message says what works.
var ErrNotSupported = errors.New("not supported yet")

// Plan returns the ordered steps that bring data at current to target using only
// the bundled etcd versions. current is nil for an empty data dir. No steps and no
// error means there is nothing to do.
func Plan(current *versionfile.Pair, target versionfile.Pair, bundled []*version.Version) ([]steprun.Step, error) {
	if !containsVersion(bundled, target.Version) {
		return nil, fmt.Errorf("target version %s is not bundled (bundled: %s): set TARGET_VERSION to one of them", target.Version, joinVersions(bundled))
	}
	if current == nil {
		return []steprun.Step{WriteVersion{steprun.Move{To: target}}}, nil
	}
	cur := *current
	if target.Storage == versionfile.StorageEtcd2 {
		switch {
		case cur.Equal(target):
			return nil, nil
		case cur.Storage == versionfile.StorageEtcd2 && versionfile.CompareMinor(cur.Version, target.Version) == 0:
			return []steprun.Step{WriteVersion{steprun.Move{From: cur, To: target}}}, nil
		case cur.Storage == versionfile.StorageEtcd3:
			return toEtcd2Steps(cur, target, bundled)
		case versionfile.CompareMinor(cur.Version, target.Version) < 0:
			return etcd2Steps(cur, target, bundled)
		}
		return nil, fmt.Errorf("%s -> %s: etcd has no downgrade of etcd2 data (etcd 2.x and the v2 API never had one); restore the backup taken before the upgrade, or convert to etcd3 first (TARGET_STORAGE=etcd3) and roll back from there: rollbacks are %w", cur, target, ErrNotSupported)
	}
	var steps []steprun.Step
	converted := cur.Storage == versionfile.StorageEtcd2
	if converted {
		conv, err := conversionStep(cur, target, bundled)
		if err != nil {
			return nil, err
		}
		steps = append(steps, conv)
		cur = conv.To
	}
	if cur.Major() != target.Major() {
		return nil, fmt.Errorf("%s -> %s: moves between etcd major versions are %w", cur, target, ErrNotSupported)
	}
	switch versionfile.CompareMinor(cur.Version, target.Version) {
	case 0:
		if cur.Equal(target) {
			return steps, nil
		}
		if cur.PatchUnknown {
			// The data tells its minor only (detected, or a step cut short): the
			// target etcd serves it once before version.txt names an exact patch.
			return append(steps, UpgradePatch{Move: steprun.Move{From: cur, To: target}}), nil
		}
		// Patch releases of one minor share their data format.
		return append(steps, WriteVersion{steprun.Move{From: cur, To: target}}), nil
	case 1:
		return rollbackSteps(steps, cur, target, bundled)
	}
	// Before the first minor hop the data's minor runs at its newest bundled patch
	// when the data's patch is older or unknown. Later hops start at a bundled
	// newest patch already.
	if floor := newestOfMinor(bundled, cur.Major(), cur.Minor()); floor != nil && (cur.PatchUnknown || cur.Version.LessThan(floor)) {
		to := versionfile.Pair{Version: floor, Storage: versionfile.StorageEtcd3}
		steps = append(steps, UpgradePatch{Move: steprun.Move{From: cur, To: to}})
		cur = to
	}
	from := cur
	for minor := cur.Minor() + 1; minor <= target.Minor(); minor++ {
		var v *version.Version
		if minor == target.Minor() {
			v = target.Version
		} else {
			v = newestOfMinor(bundled, target.Major(), minor)
			if v == nil {
				return nil, fmt.Errorf("%s -> %s: no bundled etcd %d.%d.x, and upgrades go one minor at a time (bundled: %s): bundle an etcd %d.%d release", cur, target, target.Major(), minor, joinVersions(bundled), target.Major(), minor)
			}
		}
		to := versionfile.Pair{Version: v, Storage: versionfile.StorageEtcd3}
		steps = append(steps, &UpgradeMinor{Move: steprun.Move{From: from, To: to}, converted: converted})
		from = to
	}
	return steps, nil
}

// etcd2Steps upgrades etcd2 data in etcd2 storage one minor at a time in etcd's
// release series (2.2 -> 2.3 -> 3.0 -> 3.1 ...), each minor at its newest bundled
// patch and the last at the target. Each hop is the next minor's etcd run on the
// data, as etcd's own upgrade guides have it; none is skipped, which also keeps
// etcd's rule that 3.0 runs on 2.3 data before any later 3.x (3.0 writes the v3
// backend that the later ones need).
func etcd2Steps(cur, target versionfile.Pair, bundled []*version.Version) ([]steprun.Step, error) {
	if !etcdversion.For(target.Version).V2API {
		return nil, fmt.Errorf("%s -> %s: etcd %s serves no v2 API (etcd2 storage ends with 3.5): target etcd3 storage (TARGET_STORAGE=etcd3), which converts the data", cur, target, target.Version)
	}
	var steps []steprun.Step
	from := cur
	for versionfile.CompareMinor(from.Version, target.Version) < 0 {
		next := versionfile.MustVersion(versionfile.NextMinor(from.Version) + ".0")
		if versionfile.CompareMinor(next, target.Version) > 0 {
			return nil, fmt.Errorf("%s -> %s: etcd's releases go from %s to %s; there is no etcd %s to upgrade to: fix TARGET_VERSION", cur, target, from.MinorString(), versionfile.MinorString(next), target.MinorString())
		}
		v := target.Version
		if versionfile.CompareMinor(next, target.Version) < 0 {
			if v = newestOfMinor(bundled, versionfile.Major(next), versionfile.Minor(next)); v == nil {
				return nil, fmt.Errorf("%s -> %s: no bundled etcd %s.x, and etcd2 upgrades go one minor at a time (bundled: %s): bundle an etcd %s release", cur, target, versionfile.MinorString(next), joinVersions(bundled), versionfile.MinorString(next))
			}
		}
		to := versionfile.Pair{Version: v, Storage: versionfile.StorageEtcd2}
		steps = append(steps, UpgradeEtcd2{steprun.Move{From: from, To: to}})
		from = to
	}
	return steps, nil
}

// rollbackSteps goes down one minor per step. Each step needs the bundled etcd of
// the minor it leaves (to downgrade the cluster, or to take the snapshot below
// 3.6) and of the minor it reaches. Within etcd 3 every minor down to 3.0 has a
// path: the downgrade API from 3.6, a snapshot restored by the older etcdctl
// before (each etcdctl writes the WAL its own etcd reads).
func rollbackSteps(steps []steprun.Step, cur, target versionfile.Pair, bundled []*version.Version) ([]steprun.Step, error) {
	if target.Major() != 3 {
		return nil, fmt.Errorf("%s -> %s: rollbacks out of etcd 3 are %w", cur, target, ErrNotSupported)
	}
	if cur.Major() != target.Major() {
		// Minors are counted within a major; no etcd release goes across one.
		return nil, fmt.Errorf("%s -> %s: moves between etcd major versions are %w", cur, target, ErrNotSupported)
	}
	from := cur
	for minor := cur.Minor() - 1; minor >= target.Minor(); minor-- {
		via := newestOfMinor(bundled, cur.Major(), minor+1)
		if via == nil {
			return nil, fmt.Errorf("%s -> %s: a rollback from %d.%d runs that minor's etcd, and none is bundled (bundled: %s)", cur, target, cur.Major(), minor+1, joinVersions(bundled))
		}
		to := target.Version
		if minor != target.Minor() {
			to = newestOfMinor(bundled, cur.Major(), minor)
			if to == nil {
				return nil, fmt.Errorf("%s -> %s: no bundled etcd %d.%d.x, and rollbacks go one minor at a time (bundled: %s): bundle an etcd %d.%d release", cur, target, cur.Major(), minor, joinVersions(bundled), cur.Major(), minor)
			}
		}
		next := versionfile.Pair{Version: to, Storage: versionfile.StorageEtcd3}
		steps = append(steps, rollbackMinor(steprun.Move{From: from, To: next}, via))
		from = next
	}
	return steps, nil
}

// toEtcd2Steps rolls etcd3 data back to etcd2: one minor at a time in etcd3 down to
// the target's minor (for etcd 2.x: to 3.0, the first etcd3 minor, as the
// Kubernetes rollback from 3.0 to 2.2 did), then the keyspace becomes a v2 store
// served by the target. Etcd 2.x and 3.0 get the member dir format they read
// (memberdir.Fit).
func toEtcd2Steps(cur, target versionfile.Pair, bundled []*version.Version) ([]steprun.Step, error) {
	if !etcdversion.For(target.Version).V2API {
		return nil, fmt.Errorf("%s -> %s: etcd %s serves no v2 API (etcd2 storage ends with 3.5): target an etcd 3.5 or older", cur, target, target.Version)
	}
	if cur.Major() != 3 {
		return nil, fmt.Errorf("%s -> %s: moves between etcd major versions are %w", cur, target, ErrNotSupported)
	}
	leave := target.Version // the etcd3 minor the keyspace leaves etcd3 at
	if target.Major() < cur.Major() {
		if leave = newestOfMinor(bundled, 3, 0); leave == nil {
			return nil, fmt.Errorf("%s -> %s: a rollback to etcd %s goes down etcd3 to 3.0, the first etcd3 minor, and no etcd 3.0.x is bundled (bundled: %s): bundle etcd 3.0.17 (the full image), or target etcd2 storage at 3.%d to 3.5", cur, target, target.MinorString(), joinVersions(bundled), max(1, lowestMinor(bundled, 3)))
		}
	}
	if versionfile.CompareMinor(leave, cur.Version) > 0 {
		return nil, fmt.Errorf("%s -> %s: etcd2 storage is reached by rolling back; upgrade in etcd3 to %s first, then roll back to etcd2 at that minor", cur, target, target.MinorString())
	}
	var steps []steprun.Step
	from := cur
	if versionfile.CompareMinor(leave, cur.Version) < 0 {
		var err error
		steps, err = rollbackSteps(nil, cur, versionfile.Pair{Version: leave, Storage: versionfile.StorageEtcd3}, bundled)
		if err != nil {
			return nil, err
		}
		from = steps[len(steps)-1].Span().To
	}
	return append(steps, rollback.ToEtcd2{Move: steprun.Move{From: from, To: target}}), nil
}

// lowestMinor is the lowest bundled minor of major, -1 if none.
func lowestMinor(vs []*version.Version, major int) int {
	low := -1
	for _, v := range vs {
		if versionfile.Major(v) == major && (low < 0 || versionfile.Minor(v) < low) {
			low = versionfile.Minor(v)
		}
	}
	return low
}

// rollbackMinor goes one minor down with the downgrade API of via (the minor being
// left) where it has one (3.6+); 3.5 cannot lower a cluster to 3.4, so 3.5 -> 3.4
// goes by a snapshot of the 3.5 server restored with 3.4's own etcdctl (revisions
// and leases kept; a new cluster and member ID).
func rollbackMinor(m steprun.Move, via *version.Version) steprun.Step {
	if etcdversion.For(via).DowngradeFrom {
		return &rollback.DowngradeMinor{Move: m, Via: via}
	}
	return &rollback.RestoreSnapshot{Move: m, Via: via}
}

// conversionStep plans the v2 -> v3 conversion of etcd2 data at cur. It happens at
// the first bundled etcd 3.x at or after cur's minor (3.0 for etcd 2.x data, as in
// etcd's own v2 -> v3 migration and the Kubernetes upgrade document): the newest
// bundled patch of that minor, which then serves the converted data. The conversion
// reads the v2 store offline (the WAL and snapshot formats of every etcd 2.x and
// 3.x) and writes a fresh member dir in the WAL framing that etcd reads
// (memberdir.Fit), so no etcd has to read the older data: bundled etcd 2.x minors
// newer than the data are not run first.
func conversionStep(cur, target versionfile.Pair, bundled []*version.Version) (ConvertV2ToV3, error) {
	if versionfile.CompareMinor(target.Version, cur.Version) < 0 {
		return ConvertV2ToV3{}, fmt.Errorf("%s -> %s: rollbacks are %w; the etcd2 data converts at %s or newer", cur, target, ErrNotSupported, cur.MinorString())
	}
	sorted := append([]*version.Version(nil), bundled...)
	sort.Sort(version.Collection(sorted))
	var at *version.Version
	for _, b := range sorted {
		if versionfile.Major(b) == 3 && versionfile.CompareMinor(b, cur.Version) >= 0 {
			at = newestOfMinor(bundled, 3, versionfile.Minor(b))
			break
		}
	}
	if at == nil {
		return ConvertV2ToV3{}, fmt.Errorf("%s -> %s: the v2 store converts at the first bundled etcd 3.x at or after %s, and none is bundled (bundled: %s)", cur, target, cur.MinorString(), joinVersions(bundled))
	}
	if versionfile.CompareMinor(at, target.Version) > 0 {
		return ConvertV2ToV3{}, fmt.Errorf("%s -> %s: the v2 store converts at the first bundled etcd 3.x at or after %s, which is %s, past the target: target %s or newer, or bundle an etcd %s release", cur, target, cur.MinorString(), at, versionfile.MinorString(at), target.MinorString())
	}
	return ConvertV2ToV3{steprun.Move{From: cur, To: versionfile.Pair{Version: at, Storage: versionfile.StorageEtcd3}}}, nil
}

func containsVersion(vs []*version.Version, v *version.Version) bool {
	for _, b := range vs {
		if b.Equal(v) {
			return true
		}
	}
	return false
}

func newestOfMinor(vs []*version.Version, major, minor int) *version.Version {
	var best *version.Version
	for _, v := range vs {
		if versionfile.Major(v) == major && versionfile.Minor(v) == minor && (best == nil || v.GreaterThan(best)) {
			best = v
		}
	}
	return best
}

func joinVersions(vs []*version.Version) string {
	if len(vs) == 0 {
		return "none"
	}
	sorted := append([]*version.Version(nil), vs...)
	sort.Sort(version.Collection(sorted))
	s := make([]string, len(sorted))
	for i, v := range sorted {
		s[i] = v.String()
	}
	return strings.Join(s, ", ")
}

// ParseBundled parses a comma- or space-separated version list such as
// BUNDLED_VERSIONS="3.4.13, 3.5.35 3.6.16".
func ParseBundled(s string) ([]*version.Version, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("no bundled versions: set BUNDLED_VERSIONS or --bundled-versions, e.g. 3.4.13,3.5.35")
	}
	var out []*version.Version
	for _, f := range fields {
		v, err := versionfile.ParseVersion(f)
		if err != nil {
			return nil, fmt.Errorf("bundled versions %q: %w", s, err)
		}
		out = append(out, v)
	}
	sort.Sort(version.Collection(out))
	return out, nil
}
