package steps_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// fuzzCandidates are versions a bundle may hold; a fuzzed mask picks some.
var fuzzCandidates = []string{
	"2.2.1", "3.0.17", "3.1.20", "3.2.32", "3.3.27", "3.4.13", "3.4.30", "3.5.0",
	"3.5.35", "3.6.0", "3.6.16", "3.7.0", "3.7.3", "3.8.1", "3.9.0", "4.0.0",
}

// fuzzVersion maps fuzzed bytes onto versions near the ones that exist: majors 2-4,
// minors 0-11, patches 0-49.
func fuzzVersion(maj, min, patch uint8) *version.Version {
	return versionfile.MustVersion(fmt.Sprintf("%d.%d.%d", 2+maj%3, min%12, patch%50))
}

func storageOf(etcd2 bool) versionfile.Storage {
	if etcd2 {
		return versionfile.StorageEtcd2
	}
	return versionfile.StorageEtcd3
}

// FuzzPlan: Plan never panics; an error is one clear line; a plan is a chain from
// the current pair to the target in which every step moves one minor at most (an
// upgrade exactly one up, a rollback exactly one down), changes storage only by
// the conversions, and runs only bundled binaries.
func FuzzPlan(f *testing.F) {
	// cur (maj, min, patch, etcd2, empty), target (maj, min, patch, etcd2),
	// bundle mask, add target/current to the bundle, extra bundle text.
	f.Add(uint8(1), uint8(4), uint8(13), false, false, uint8(1), uint8(7), uint8(3), false, uint16(0x1560), true, true, "")
	f.Add(uint8(1), uint8(4), uint8(13), true, false, uint8(1), uint8(7), uint8(3), false, uint16(0x1560), false, false, "")
	f.Add(uint8(1), uint8(7), uint8(3), false, false, uint8(1), uint8(4), uint8(13), true, uint16(0x1560), false, false, "")
	f.Add(uint8(1), uint8(7), uint8(3), false, false, uint8(1), uint8(4), uint8(13), false, uint16(0x1020), false, false, "")
	f.Add(uint8(1), uint8(0), uint8(17), false, false, uint8(0), uint8(2), uint8(1), true, uint16(0x0003), false, false, "")
	f.Add(uint8(1), uint8(5), uint8(0), false, false, uint8(1), uint8(5), uint8(35), false, uint16(0x0100), false, false, "")
	f.Add(uint8(1), uint8(3), uint8(27), true, false, uint8(1), uint8(5), uint8(35), false, uint16(0xffff), false, false, "3.3.1 3.4.0")
	f.Add(uint8(0), uint8(0), uint8(0), false, true, uint8(1), uint8(6), uint8(16), false, uint16(0), true, false, "")
	f.Add(uint8(2), uint8(0), uint8(0), false, false, uint8(1), uint8(9), uint8(0), false, uint16(0xffff), false, false, "3.8.0,3.9.9")
	// Patch unknown (cPatch >= 200): detected 3.4 data to 3.7.3, a 3.5 step cut
	// short on 3.4 data back to 3.4.13, an old 3.5 patch to 3.6.16.
	f.Add(uint8(1), uint8(4), uint8(200), false, false, uint8(1), uint8(7), uint8(3), false, uint16(0x1560), true, false, "")
	f.Add(uint8(1), uint8(5), uint8(210), false, false, uint8(1), uint8(4), uint8(13), false, uint16(0x1560), true, false, "")
	f.Add(uint8(1), uint8(5), uint8(10), false, false, uint8(1), uint8(6), uint8(16), false, uint16(0x1560), true, false, "")
	f.Fuzz(func(t *testing.T, cMaj, cMin, cPatch uint8, cEtcd2, empty bool, tMaj, tMin, tPatch uint8, tEtcd2 bool, mask uint16, addTarget, addCurrent bool, extra string) {
		var bundled []*version.Version
		for i, v := range fuzzCandidates {
			if mask&(1<<i) != 0 {
				bundled = append(bundled, versionfile.MustVersion(v))
			}
		}
		if extra != "" {
			more, err := steps.ParseBundled(extra)
			if err != nil {
				checkOneLine(t, "ParseBundled("+fmt.Sprintf("%q", extra)+")", err, len(extra))
				return
			}
			bundled = append(bundled, more...)
		}
		target := versionfile.Pair{Version: fuzzVersion(tMaj, tMin, tPatch), Storage: storageOf(tEtcd2)}
		if _, err := versionfile.ParsePair(target.String()); err != nil {
			return // not a pair version.txt could hold (e.g. 2.x/etcd3)
		}
		var cur *versionfile.Pair
		if !empty {
			c := versionfile.Pair{Version: fuzzVersion(cMaj, cMin, cPatch), Storage: storageOf(cEtcd2)}
			if _, err := versionfile.ParsePair(c.String()); err != nil {
				return
			}
			if cPatch >= 200 && !cEtcd2 {
				// Detected data, or a step cut short: the minor is all the data tells.
				c = versionfile.Pair{Version: fuzzVersion(cMaj, cMin, 0), Storage: versionfile.StorageEtcd3, PatchUnknown: true}
			}
			cur = &c
			if addCurrent {
				bundled = append(bundled, c.Version)
			}
		}
		if addTarget {
			bundled = append(bundled, target.Version)
		}
		what := fmt.Sprintf("Plan(%v -> %v, bundled %v)", cur, target, bundled)
		plan, err := steps.Plan(cur, target, bundled)
		if err != nil {
			checkOneLine(t, what, err, len(extra))
			if !strings.Contains(err.Error(), target.Version.String()) && !strings.Contains(err.Error(), target.MinorString()) {
				t.Fatalf("%s: the error does not name the target: %v", what, err)
			}
			return
		}
		checkChain(t, what, cur, target, bundled, plan)
	})
}

func checkOneLine(t *testing.T, what string, err error, extra int) {
	t.Helper()
	msg := err.Error()
	if strings.TrimSpace(msg) == "" || strings.ContainsAny(msg, "\n\r") || !utf8.ValidString(msg) || len(msg) > 800+8*extra {
		t.Fatalf("%s: error is not one clear line: %q", what, msg)
	}
}

func checkChain(t *testing.T, what string, cur *versionfile.Pair, target versionfile.Pair, bundled []*version.Version, plan []steprun.Step) {
	t.Helper()
	isBundled := func(v *version.Version) bool {
		for _, b := range bundled {
			if b.Equal(v) {
				return true
			}
		}
		return false
	}
	fail := func(format string, a ...any) {
		t.Helper()
		var s []string
		for _, st := range plan {
			s = append(s, st.String())
		}
		t.Fatalf("%s = [%s]: %s", what, strings.Join(s, "; "), fmt.Sprintf(format, a...))
	}
	if cur == nil {
		if len(plan) != 1 || plan[0].Kind() != steprun.KindWriteVersion || !plan[0].Span().To.Equal(target) {
			fail("an empty data dir only gets the target recorded")
		}
		return
	}
	if len(plan) == 0 {
		if !cur.Equal(target) {
			fail("no steps, but the data is not at the target")
		}
		return
	}
	minorDistance := cur.Minor() - target.Minor()
	if minorDistance < 0 {
		minorDistance = -minorDistance
	}
	if cur.Major() != target.Major() {
		minorDistance = cur.Minor() + target.Minor() + 1
	}
	if len(plan) > minorDistance+2 {
		fail("%d steps for %d minors", len(plan), minorDistance)
	}
	from := *cur
	for i, st := range plan {
		s := st.Span()
		if !s.From.Equal(from) {
			fail("step %d starts at %v, the previous one ended at %v", i+1, s.From, from)
		}
		if !isBundled(s.To.Version) {
			fail("step %d ends at %v, which is not bundled", i+1, s.To)
		}
		if st.String() == "" {
			fail("step %d prints as nothing", i+1)
		}
		sameMinor := versionfile.CompareMinor(s.From.Version, s.To.Version) == 0
		switch st.Kind() {
		case steprun.KindWriteVersion:
			if !sameMinor || s.From.Storage != s.To.Storage {
				fail("step %d records %v over %v: only a patch change needs no run", i+1, s.To, s.From)
			}
		case steprun.KindUpgradeMinor:
			if s.From.Storage != versionfile.StorageEtcd3 || s.To.Storage != versionfile.StorageEtcd3 ||
				s.From.Major() != s.To.Major() || s.To.Minor() != s.From.Minor()+1 {
				fail("step %d upgrades %v -> %v: not one minor up in etcd3", i+1, s.From, s.To)
			}
			// Patch floor: a minor hop starts at the newest bundled patch of its
			// minor, or a newer known one.
			for _, b := range bundled {
				if versionfile.CompareMinor(b, s.From.Version) == 0 && (s.From.PatchUnknown || s.From.Version.LessThan(b)) {
					fail("step %d upgrades from %v, older than the bundled %s of its minor", i+1, s.From, b)
				}
			}
		case steprun.KindUpgradePatch:
			if s.From.Storage != versionfile.StorageEtcd3 || s.To.Storage != versionfile.StorageEtcd3 || !sameMinor ||
				(!s.From.PatchUnknown && !s.From.Version.LessThan(s.To.Version)) {
				fail("step %d runs %v on %v: not a newer patch (or a known one over an unknown) of one minor in etcd3", i+1, s.To, s.From)
			}
		case steprun.KindV2ToV3:
			// At the first bundled etcd 3.x at or after the data's minor (the
			// conversion writes the WAL framing that etcd reads).
			from := s.From.Version
			if s.From.Storage != versionfile.StorageEtcd2 || s.To.Storage != versionfile.StorageEtcd3 ||
				s.To.Major() != 3 || versionfile.CompareMinor(s.To.Version, from) < 0 {
				fail("step %d converts %v -> %v: not etcd2 -> etcd3 3.x at or after the data's minor", i+1, s.From, s.To)
			}
			for _, b := range bundled {
				if versionfile.Major(b) == 3 && versionfile.CompareMinor(b, from) >= 0 && versionfile.CompareMinor(b, s.To.Version) < 0 {
					fail("step %d converts %v -> %v, but etcd %s is bundled and comes first", i+1, s.From, s.To, b)
				}
			}
		case steprun.KindUpgradeEtcd2:
			// One minor of etcd's series up (2.3 -> 3.0 included), in etcd2, run
			// by an etcd that serves the v2 API.
			if s.From.Storage != versionfile.StorageEtcd2 || s.To.Storage != versionfile.StorageEtcd2 ||
				versionfile.NextMinor(s.From.Version) != s.To.MinorString() || !etcdversion.For(s.To.Version).V2API {
				fail("step %d upgrades %v -> %v: not one minor up in etcd2 by an etcd serving v2", i+1, s.From, s.To)
			}
		case steprun.KindRollbackMinor:
			if s.From.Storage != versionfile.StorageEtcd3 || s.To.Storage != versionfile.StorageEtcd3 ||
				s.From.Major() != s.To.Major() || s.To.Minor() != s.From.Minor()-1 {
				fail("step %d rolls back %v -> %v: not one minor down in etcd3", i+1, s.From, s.To)
			}
			if v := via(st); v == nil || !isBundled(v) || versionfile.CompareMinor(v, s.From.Version) != 0 {
				fail("step %d rolls back through %v, not a bundled etcd of %v's minor", i+1, v, s.From)
			}
		case steprun.KindRollbackToEtcd2:
			// At one minor of etcd 3, or from 3.0 (the first etcd3 minor) to 2.x.
			to2x := s.To.Major() == 2 && s.From.Major() == 3 && s.From.Minor() == 0
			ok := s.From.Storage == versionfile.StorageEtcd3 && s.To.Storage == versionfile.StorageEtcd2 &&
				(sameMinor || to2x) && etcdversion.For(s.To.Version).V2API
			if !ok {
				fail("step %d converts %v -> %v: not etcd3 -> etcd2 at one minor, nor 3.0 -> 2.x", i+1, s.From, s.To)
			}
		default:
			fail("step %d has unknown kind %q", i+1, st.Kind())
		}
		for _, b := range st.Binaries("/bin") {
			v := b[strings.LastIndex(b, "-")+1:]
			if !isBundled(versionfile.MustVersion(v)) {
				fail("step %d runs %s, which is not bundled", i+1, b)
			}
		}
		from = s.To
	}
	if !from.Equal(target) {
		fail("the plan ends at %v, not at the target", from)
	}
}

// via is the etcd a rollback step runs first (nil for other steps).
func via(s steprun.Step) *version.Version {
	switch r := s.(type) {
	case *rollback.DowngradeMinor:
		return r.Via
	case *rollback.RestoreSnapshot:
		return r.Via
	}
	return nil
}
