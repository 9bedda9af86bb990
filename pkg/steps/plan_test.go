package steps_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/rollback"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

func mustBundled(t *testing.T, s string) []*version.Version {
	t.Helper()
	b, err := steps.ParseBundled(s)
	if err != nil {
		t.Fatalf("ParseBundled(%q): %v", s, err)
	}
	return b
}

// pairPtr parses a pair; "3.5.x/etcd3" is a pair whose patch is unknown.
func pairPtr(s string) *versionfile.Pair {
	if v, st, ok := strings.Cut(s, ".x/"); ok {
		p := versionfile.MustPair(v + ".0/" + st)
		p.PatchUnknown = true
		return &p
	}
	p := versionfile.MustPair(s)
	return &p
}

// stepText renders a step as "kind from->to" with "-" for an unset From.
func stepText(s steprun.Step) string {
	from := "-"
	if m := s.Span(); m.From.Version != nil {
		from = m.From.String()
	}
	return fmt.Sprintf("%s %s->%s", s.Kind(), from, s.Span().To)
}

func TestPlan(t *testing.T) {
	const std = "3.4.13,3.5.35,3.6.16,3.7.3"
	tests := []struct {
		name    string
		bundled string
		current string // "" for an empty data dir
		target  string
		want    []string // nil with wantErr == "" means no steps
		wantErr []string
		notSupp bool // errors.Is(err, steps.ErrNotSupported)
	}{
		{name: "empty dir", bundled: std, target: "3.7.3/etcd3",
			want: []string{"write-version -->3.7.3/etcd3"}},
		{name: "empty dir, older bundled target", bundled: std, target: "3.4.13/etcd3",
			want: []string{"write-version -->3.4.13/etcd3"}},
		{name: "3.4.13 to 3.7.3", bundled: std, current: "3.4.13/etcd3", target: "3.7.3/etcd3",
			want: []string{
				"upgrade-minor 3.4.13/etcd3->3.5.35/etcd3",
				"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3",
				"upgrade-minor 3.6.16/etcd3->3.7.3/etcd3",
			}},
		// Patch floors: before a minor hop the data's minor runs at its newest
		// bundled patch when the data's patch is older or unknown.
		{name: "3.4.10 (not bundled) to 3.5.35: 3.4.13 first", bundled: std, current: "3.4.10/etcd3", target: "3.5.35/etcd3",
			want: []string{"upgrade-patch 3.4.10/etcd3->3.4.13/etcd3", "upgrade-minor 3.4.13/etcd3->3.5.35/etcd3"}},
		{name: "3.5.0 to 3.6.16: 3.5.35 first", bundled: std, current: "3.5.0/etcd3", target: "3.6.16/etcd3",
			want: []string{"upgrade-patch 3.5.0/etcd3->3.5.35/etcd3", "upgrade-minor 3.5.35/etcd3->3.6.16/etcd3"}},
		{name: "3.5.10 to 3.6.16: 3.5.35 first", bundled: std, current: "3.5.10/etcd3", target: "3.6.16/etcd3",
			want: []string{"upgrade-patch 3.5.10/etcd3->3.5.35/etcd3", "upgrade-minor 3.5.35/etcd3->3.6.16/etcd3"}},
		{name: "3.5.10 to 3.7.3: only the first minor needs a floor", bundled: std, current: "3.5.10/etcd3", target: "3.7.3/etcd3",
			want: []string{
				"upgrade-patch 3.5.10/etcd3->3.5.35/etcd3",
				"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3",
				"upgrade-minor 3.6.16/etcd3->3.7.3/etcd3",
			}},
		{name: "detected 3.6 (patch unknown) to 3.7.3: 3.6.16 first", bundled: std, current: "3.6.x/etcd3", target: "3.7.3/etcd3",
			want: []string{"upgrade-patch 3.6.x/etcd3->3.6.16/etcd3", "upgrade-minor 3.6.16/etcd3->3.7.3/etcd3"}},
		{name: "detected 3.4 (patch unknown) to 3.7.3", bundled: std, current: "3.4.x/etcd3", target: "3.7.3/etcd3",
			want: []string{
				"upgrade-patch 3.4.x/etcd3->3.4.13/etcd3",
				"upgrade-minor 3.4.13/etcd3->3.5.35/etcd3",
				"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3",
				"upgrade-minor 3.6.16/etcd3->3.7.3/etcd3",
			}},
		{name: "data at the newest bundled patch needs no floor", bundled: std, current: "3.5.35/etcd3", target: "3.6.16/etcd3",
			want: []string{"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3"}},
		{name: "data newer than every bundled patch of its minor needs no floor", bundled: std, current: "3.5.40/etcd3", target: "3.6.16/etcd3",
			want: []string{"upgrade-minor 3.5.40/etcd3->3.6.16/etcd3"}},
		{name: "floor is the newest bundled patch, not the target's minor's", bundled: "3.5.20,3.5.35,3.6.0,3.6.16", current: "3.5.10/etcd3", target: "3.6.0/etcd3",
			want: []string{"upgrade-patch 3.5.10/etcd3->3.5.35/etcd3", "upgrade-minor 3.5.35/etcd3->3.6.0/etcd3"}},
		{name: "no bundled etcd of the data's minor: no floor to run", bundled: "3.5.35,3.6.16", current: "3.4.13/etcd3", target: "3.5.35/etcd3",
			want: []string{"upgrade-minor 3.4.13/etcd3->3.5.35/etcd3"}},
		{name: "patch-only change, known patch: no run", bundled: std, current: "3.5.10/etcd3", target: "3.5.35/etcd3",
			want: []string{"write-version 3.5.10/etcd3->3.5.35/etcd3"}},
		{name: "patch unknown, target at that minor: the target runs once", bundled: std, current: "3.5.x/etcd3", target: "3.5.35/etcd3",
			want: []string{"upgrade-patch 3.5.x/etcd3->3.5.35/etcd3"}},
		{name: "patch unknown, older target patch at that minor: the target runs once", bundled: "3.5.0,3.5.35", current: "3.5.x/etcd3", target: "3.5.0/etcd3",
			want: []string{"upgrade-patch 3.5.x/etcd3->3.5.0/etcd3"}},
		{name: "patch unknown (a 3.5 step cut short on 3.4 data), target 3.4.13: a rollback", bundled: std, current: "3.5.x/etcd3", target: "3.4.13/etcd3",
			want: []string{"rollback-minor 3.5.x/etcd3->3.4.13/etcd3"}},
		{name: "patch unknown (a 3.6 rollback cut short), target 3.7.3", bundled: std, current: "3.6.x/etcd3", target: "3.7.3/etcd3",
			want: []string{"upgrade-patch 3.6.x/etcd3->3.6.16/etcd3", "upgrade-minor 3.6.16/etcd3->3.7.3/etcd3"}},
		{name: "patch unknown to etcd2 at its minor", bundled: std, current: "3.5.x/etcd3", target: "3.5.35/etcd2",
			want: []string{"rollback-to-etcd2 3.5.x/etcd3->3.5.35/etcd2"}},
		{name: "no floor for rollbacks", bundled: std, current: "3.6.0/etcd3", target: "3.5.35/etcd3",
			want: []string{"rollback-minor 3.6.0/etcd3->3.5.35/etcd3"}},
		{name: "already at target", bundled: std, current: "3.5.35/etcd3", target: "3.5.35/etcd3"},
		{name: "patch upgrade within minor", bundled: std, current: "3.7.0/etcd3", target: "3.7.3/etcd3",
			want: []string{"write-version 3.7.0/etcd3->3.7.3/etcd3"}},
		{name: "newer patch, same minor", bundled: std, current: "3.7.5/etcd3", target: "3.7.3/etcd3",
			want: []string{"write-version 3.7.5/etcd3->3.7.3/etcd3"}},
		{name: "intermediate minor picks the newest bundled patch", bundled: "3.4.13, 3.5.1, 3.5.35, 3.5.2, 3.6.16",
			current: "3.4.13/etcd3", target: "3.6.16/etcd3",
			want: []string{
				"upgrade-minor 3.4.13/etcd3->3.5.35/etcd3",
				"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3",
			}},
		{name: "target minor uses the target patch, not the newest", bundled: "3.5.1,3.5.35",
			current: "3.4.13/etcd3", target: "3.5.1/etcd3",
			want: []string{"upgrade-minor 3.4.13/etcd3->3.5.1/etcd3"}},
		{name: "target not bundled", bundled: std, current: "3.4.13/etcd3", target: "3.8.0/etcd3",
			wantErr: []string{"target version 3.8.0 is not bundled (bundled: 3.4.13, 3.5.35, 3.6.16, 3.7.3): set TARGET_VERSION to one of them"}},
		{name: "target not bundled, empty dir", bundled: std, target: "3.7.4/etcd3",
			wantErr: []string{"target version 3.7.4 is not bundled"}},
		{name: "target not bundled even when current equals it", bundled: std, current: "3.7.4/etcd3", target: "3.7.4/etcd3",
			wantErr: []string{"target version 3.7.4 is not bundled"}},
		{name: "gap in bundled minors", bundled: "3.4.13,3.6.16", current: "3.4.13/etcd3", target: "3.6.16/etcd3",
			wantErr: []string{"3.4.13/etcd3 -> 3.6.16/etcd3: no bundled etcd 3.5.x, and upgrades go one minor at a time (bundled: 3.4.13, 3.6.16): bundle an etcd 3.5 release"}},
		{name: "gap further up", bundled: "3.4.13,3.5.35,3.7.3", current: "3.4.13/etcd3", target: "3.7.3/etcd3",
			wantErr: []string{"no bundled etcd 3.6.x"}},
		{name: "rollback one minor", bundled: std, current: "3.7.3/etcd3", target: "3.6.16/etcd3",
			want: []string{"rollback-minor 3.7.3/etcd3->3.6.16/etcd3"}},
		{name: "rollback two minors, one per step", bundled: std, current: "3.7.3/etcd3", target: "3.5.35/etcd3",
			want: []string{"rollback-minor 3.7.3/etcd3->3.6.16/etcd3", "rollback-minor 3.6.16/etcd3->3.5.35/etcd3"}},
		{name: "rollback from an unbundled patch runs the bundled patch of that minor", bundled: std, current: "3.7.1/etcd3", target: "3.6.16/etcd3",
			want: []string{"rollback-minor 3.7.1/etcd3->3.6.16/etcd3"}},
		{name: "rollback needs the binary of the minor it leaves", bundled: "3.5.35,3.6.16,3.8.0", current: "3.7.3/etcd3", target: "3.6.16/etcd3",
			wantErr: []string{"3.7.3/etcd3 -> 3.6.16/etcd3: a rollback from 3.7 runs that minor's etcd, and none is bundled (bundled: 3.5.35, 3.6.16, 3.8.0)"}},
		{name: "rollback to 3.4 ends with a snapshot restore step", bundled: std, current: "3.6.0/etcd3", target: "3.4.13/etcd3",
			want: []string{"rollback-minor 3.6.0/etcd3->3.5.35/etcd3", "rollback-minor 3.5.35/etcd3->3.4.13/etcd3"}},
		{name: "rollback below 3.4: snapshot restored by the older etcdctl", bundled: "3.3.25,3.4.13,3.5.35", current: "3.4.13/etcd3", target: "3.3.25/etcd3",
			want: []string{"rollback-minor 3.4.13/etcd3->3.3.25/etcd3"}},
		{name: "the full bundle rolls 3.7 back to 3.0, one minor per step", bundled: "2.2.5,2.3.8,3.0.17,3.1.20,3.2.32,3.3.27,3.4.13,3.4.25,3.5.35,3.6.16,3.7.3", current: "3.7.3/etcd3", target: "3.0.17/etcd3",
			want: []string{"rollback-minor 3.7.3/etcd3->3.6.16/etcd3", "rollback-minor 3.6.16/etcd3->3.5.35/etcd3", "rollback-minor 3.5.35/etcd3->3.4.25/etcd3",
				"rollback-minor 3.4.25/etcd3->3.3.27/etcd3", "rollback-minor 3.3.27/etcd3->3.2.32/etcd3", "rollback-minor 3.2.32/etcd3->3.1.20/etcd3", "rollback-minor 3.1.20/etcd3->3.0.17/etcd3"}},
		{name: "etcd2 older than every bundled minor converts at the first bundled 3.x", bundled: std, current: "3.0.17/etcd2", target: "3.5.35/etcd3",
			want: []string{"v2-to-v3 3.0.17/etcd2->3.4.13/etcd3", "upgrade-minor 3.4.13/etcd3->3.5.35/etcd3"}},
		{name: "etcd2 3.3 converts at 3.4", bundled: std, current: "3.3.25/etcd2", target: "3.4.13/etcd3",
			want: []string{"v2-to-v3 3.3.25/etcd2->3.4.13/etcd3"}},
		{name: "etcd2 3.4.13 to 3.7.3 converts at 3.4.13, then upgrades", bundled: std, current: "3.4.13/etcd2", target: "3.7.3/etcd3",
			want: []string{
				"v2-to-v3 3.4.13/etcd2->3.4.13/etcd3",
				"upgrade-minor 3.4.13/etcd3->3.5.35/etcd3",
				"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3",
				"upgrade-minor 3.6.16/etcd3->3.7.3/etcd3",
			}},
		{name: "etcd2 older patch converts at the newest bundled patch", bundled: std, current: "3.4.2/etcd2", target: "3.4.13/etcd3",
			want: []string{"v2-to-v3 3.4.2/etcd2->3.4.13/etcd3"}},
		{name: "etcd2 converts, then a patch step to a non-newest target patch", bundled: "3.4.1,3.4.13", current: "3.4.2/etcd2", target: "3.4.1/etcd3",
			want: []string{"v2-to-v3 3.4.2/etcd2->3.4.13/etcd3", "write-version 3.4.13/etcd3->3.4.1/etcd3"}},
		{name: "etcd2 at 3.5 converts at 3.5", bundled: std, current: "3.5.35/etcd2", target: "3.7.3/etcd3",
			want: []string{
				"v2-to-v3 3.5.35/etcd2->3.5.35/etcd3",
				"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3",
				"upgrade-minor 3.6.16/etcd3->3.7.3/etcd3",
			}},
		{name: "etcd2 to an older etcd3 minor", bundled: std, current: "3.5.35/etcd2", target: "3.4.13/etcd3", notSupp: true,
			wantErr: []string{"3.5.35/etcd2 -> 3.4.13/etcd3: rollbacks are not supported yet; the etcd2 data converts at 3.5 or newer"}},
		{name: "etcd2 patch change only", bundled: std, current: "3.4.2/etcd2", target: "3.4.13/etcd2",
			want: []string{"write-version 3.4.2/etcd2->3.4.13/etcd2"}},
		{name: "etcd3 to etcd2 at a newer minor", bundled: std, current: "3.4.13/etcd3", target: "3.5.35/etcd2",
			wantErr: []string{"3.4.13/etcd3 -> 3.5.35/etcd2: etcd2 storage is reached by rolling back; upgrade in etcd3 to 3.5 first, then roll back to etcd2 at that minor"}},
		{name: "etcd3 to etcd2 at the same minor", bundled: std, current: "3.4.13/etcd3", target: "3.4.13/etcd2",
			want: []string{"rollback-to-etcd2 3.4.13/etcd3->3.4.13/etcd2"}},
		{name: "etcd3 3.7 to etcd2 3.4: three rollbacks, then the conversion", bundled: std, current: "3.7.3/etcd3", target: "3.4.13/etcd2",
			want: []string{
				"rollback-minor 3.7.3/etcd3->3.6.16/etcd3",
				"rollback-minor 3.6.16/etcd3->3.5.35/etcd3",
				"rollback-minor 3.5.35/etcd3->3.4.13/etcd3",
				"rollback-to-etcd2 3.4.13/etcd3->3.4.13/etcd2",
			}},
		{name: "etcd2 target without a v2 API", bundled: std, current: "3.7.3/etcd3", target: "3.6.16/etcd2",
			wantErr: []string{"3.7.3/etcd3 -> 3.6.16/etcd2: etcd 3.6.16 serves no v2 API (etcd2 storage ends with 3.5): target an etcd 3.5 or older"}},
		{name: "the document's rollback: 3.0/etcd3 -> 2.2.5/etcd2 in one conversion", bundled: "2.2.5,3.0.17", current: "3.0.17/etcd3", target: "2.2.5/etcd2",
			want: []string{"rollback-to-etcd2 3.0.17/etcd3->2.2.5/etcd2"}},
		{name: "3.0/etcd3 -> 2.3/etcd2", bundled: "2.2.5,2.3.8,3.0.17", current: "3.0.17/etcd3", target: "2.3.8/etcd2",
			want: []string{"rollback-to-etcd2 3.0.17/etcd3->2.3.8/etcd2"}},
		{name: "3.7/etcd3 -> 2.2/etcd2: down etcd3 minor by minor to 3.0, then to etcd2", bundled: "2.2.5,2.3.8,3.0.17,3.1.20,3.2.32,3.3.27,3.4.13,3.4.25,3.5.35,3.6.16,3.7.3", current: "3.7.3/etcd3", target: "2.2.5/etcd2",
			want: []string{"rollback-minor 3.7.3/etcd3->3.6.16/etcd3", "rollback-minor 3.6.16/etcd3->3.5.35/etcd3", "rollback-minor 3.5.35/etcd3->3.4.25/etcd3",
				"rollback-minor 3.4.25/etcd3->3.3.27/etcd3", "rollback-minor 3.3.27/etcd3->3.2.32/etcd3", "rollback-minor 3.2.32/etcd3->3.1.20/etcd3",
				"rollback-minor 3.1.20/etcd3->3.0.17/etcd3", "rollback-to-etcd2 3.0.17/etcd3->2.2.5/etcd2"}},
		{name: "etcd2 at 2.x without a bundled 3.0", bundled: "2.2.5,3.1.20,3.4.13", current: "3.4.13/etcd3", target: "2.2.5/etcd2",
			wantErr: []string{"3.4.13/etcd3 -> 2.2.5/etcd2: a rollback to etcd 2.2 goes down etcd3 to 3.0, the first etcd3 minor, and no etcd 3.0.x is bundled (bundled: 2.2.5, 3.1.20, 3.4.13): bundle etcd 3.0.17 (the full image), or target etcd2 storage at 3.1 to 3.5"}},
		{name: "3.0/etcd3 -> 3.0/etcd2 at the same minor", bundled: "3.0.17,3.4.13", current: "3.0.17/etcd3", target: "3.0.17/etcd2",
			want: []string{"rollback-to-etcd2 3.0.17/etcd3->3.0.17/etcd2"}},
		{name: "3.1/etcd3 -> 3.1/etcd2 at the same minor", bundled: "3.1.20,3.4.13", current: "3.1.20/etcd3", target: "3.1.20/etcd2",
			want: []string{"rollback-to-etcd2 3.1.20/etcd3->3.1.20/etcd2"}},
		{name: "etcd2 from etcd 2.x converts at the first bundled 3.x", bundled: "2.2.1,3.4.13", current: "2.2.1/etcd2", target: "3.4.13/etcd3",
			want: []string{"v2-to-v3 2.2.1/etcd2->3.4.13/etcd3"}},
		{name: "etcd2 from etcd 2.x with a newer 2.x bundled converts at the first 3.x", bundled: "2.2.5,2.3.8,3.0.17,3.1.20", current: "2.2.5/etcd2", target: "3.1.20/etcd3",
			want: []string{"v2-to-v3 2.2.5/etcd2->3.0.17/etcd3", "upgrade-minor 3.0.17/etcd3->3.1.20/etcd3"}},
		{name: "the document's upgrade: etcd2 of 2.2 converts at 3.0", bundled: "2.2.5,3.0.17,3.4.13", current: "2.2.5/etcd2", target: "3.0.17/etcd3",
			want: []string{"v2-to-v3 2.2.5/etcd2->3.0.17/etcd3"}},
		{name: "etcd2 of 3.0 converts at 3.0", bundled: "2.2.5,3.0.17,3.4.13", current: "3.0.17/etcd2", target: "3.0.17/etcd3",
			want: []string{"v2-to-v3 3.0.17/etcd2->3.0.17/etcd3"}},
		{name: "etcd2 past the target's minor", bundled: "2.2.5,3.1.20,3.4.13", current: "2.2.5/etcd2", target: "3.0.17/etcd3",
			wantErr: []string{"target version 3.0.17 is not bundled"}},
		{name: "the first 3.x is past the target", bundled: "2.2.5,3.0.17,3.4.13", current: "3.4.13/etcd2", target: "3.0.17/etcd3", notSupp: true,
			wantErr: []string{"3.4.13/etcd2 -> 3.0.17/etcd3: rollbacks are not supported yet; the etcd2 data converts at 3.4 or newer"}},
		{name: "the seed's bundle: 2.2 etcd2 data walks every minor to 3.7", bundled: "2.2.5,2.3.8,3.0.17,3.1.20,3.2.32,3.3.27,3.4.13,3.5.35,3.6.16,3.7.3", current: "2.2.5/etcd2", target: "3.7.3/etcd3",
			want: []string{"v2-to-v3 2.2.5/etcd2->3.0.17/etcd3", "upgrade-minor 3.0.17/etcd3->3.1.20/etcd3", "upgrade-minor 3.1.20/etcd3->3.2.32/etcd3",
				"upgrade-minor 3.2.32/etcd3->3.3.27/etcd3", "upgrade-minor 3.3.27/etcd3->3.4.13/etcd3", "upgrade-minor 3.4.13/etcd3->3.5.35/etcd3",
				"upgrade-minor 3.5.35/etcd3->3.6.16/etcd3", "upgrade-minor 3.6.16/etcd3->3.7.3/etcd3"}},
		{name: "etcd2 already at target", bundled: "2.2.1,3.5.35", current: "2.2.1/etcd2", target: "2.2.1/etcd2"},
		{name: "the full image's bundle: 3.4.13 data runs 3.4.25 before 3.5", bundled: "2.2.5,2.3.8,3.0.17,3.1.20,3.2.32,3.3.27,3.4.13,3.4.25,3.5.35,3.6.16,3.7.3", current: "3.4.13/etcd3", target: "3.5.35/etcd3",
			want: []string{"upgrade-patch 3.4.13/etcd3->3.4.25/etcd3", "upgrade-minor 3.4.25/etcd3->3.5.35/etcd3"}},
		{name: "the full image's bundle: 3.3 walks through 3.4.25; a 3.4.13 target stays reachable", bundled: "3.3.27,3.4.13,3.4.25,3.5.35", current: "3.3.27/etcd3", target: "3.4.13/etcd3",
			want: []string{"upgrade-minor 3.3.27/etcd3->3.4.13/etcd3"}},
		{name: "the seed's etcd2 upgrade: 2.2 -> 2.3 -> 3.0 in etcd2", bundled: "2.2.5,2.3.7,2.3.8,3.0.17,3.4.13", current: "2.2.5/etcd2", target: "3.0.17/etcd2",
			want: []string{"upgrade-etcd2 2.2.5/etcd2->2.3.8/etcd2", "upgrade-etcd2 2.3.8/etcd2->3.0.17/etcd2"}},
		{name: "etcd2 upgrade to an older patch of the next minor", bundled: "2.2.5,2.3.7,2.3.8", current: "2.2.5/etcd2", target: "2.3.7/etcd2",
			want: []string{"upgrade-etcd2 2.2.5/etcd2->2.3.7/etcd2"}},
		{name: "etcd2 upgrade through 3.4 to 3.5 (served with --enable-v2)", bundled: std, current: "3.3.27/etcd2", target: "3.5.35/etcd2",
			want: []string{"upgrade-etcd2 3.3.27/etcd2->3.4.13/etcd2", "upgrade-etcd2 3.4.13/etcd2->3.5.35/etcd2"}},
		{name: "etcd2 upgrade missing a minor", bundled: "2.2.5,3.0.17", current: "2.2.5/etcd2", target: "3.0.17/etcd2",
			wantErr: []string{"2.2.5/etcd2 -> 3.0.17/etcd2: no bundled etcd 2.3.x, and etcd2 upgrades go one minor at a time (bundled: 2.2.5, 3.0.17): bundle an etcd 2.3 release"}},
		{name: "etcd2 upgrade to an etcd without v2", bundled: std, current: "3.5.35/etcd2", target: "3.6.16/etcd2",
			wantErr: []string{"3.5.35/etcd2 -> 3.6.16/etcd2: etcd 3.6.16 serves no v2 API (etcd2 storage ends with 3.5): target etcd3 storage (TARGET_STORAGE=etcd3), which converts the data"}},
		{name: "etcd2 rollback", bundled: "2.2.5,2.3.8,3.0.17", current: "3.0.17/etcd2", target: "2.3.8/etcd2", notSupp: true,
			wantErr: []string{"3.0.17/etcd2 -> 2.3.8/etcd2: etcd has no downgrade of etcd2 data"}},
		{name: "etcd 2.3 etcd2 data converts at 3.0", bundled: "2.3.8,3.0.17,3.1.20,3.5.35", current: "2.3.8/etcd2", target: "3.1.20/etcd3",
			want: []string{"v2-to-v3 2.3.8/etcd2->3.0.17/etcd3", "upgrade-minor 3.0.17/etcd3->3.1.20/etcd3"}},
		{name: "etcd 2.3 etcd2 data without a bundled 3.0 converts at 3.1", bundled: "2.3.8,3.1.20,3.5.35", current: "2.3.8/etcd2", target: "3.1.20/etcd3",
			want: []string{"v2-to-v3 2.3.8/etcd2->3.1.20/etcd3"}},
		{name: "major jump, etcd3 storage", bundled: "3.7.3,4.0.0", current: "3.7.3/etcd3", target: "4.0.0/etcd3", notSupp: true,
			wantErr: []string{"3.7.3/etcd3 -> 4.0.0/etcd3: moves between etcd major versions are not supported yet"}},
		// Found by FuzzPlan: minors were counted across the major, planning nothing
		// (a panic) or 4.10 ... 4.4 rollbacks on etcd 3 binaries.
		{name: "etcd 4 data to etcd2 storage", bundled: "2.2.1,3.0.17", current: "4.0.0/etcd3", target: "2.2.1/etcd2", notSupp: true,
			wantErr: []string{"4.0.0/etcd3 -> 2.2.1/etcd2: moves between etcd major versions are not supported yet"}},
		{name: "etcd 4 data to etcd2 storage at 3.4", bundled: "3.4.13,3.5.35,3.6.16,3.7.3", current: "4.11.0/etcd3", target: "3.4.13/etcd2", notSupp: true,
			wantErr: []string{"4.11.0/etcd3 -> 3.4.13/etcd2: moves between etcd major versions are not supported yet"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cur *versionfile.Pair
			if tc.current != "" {
				cur = pairPtr(tc.current)
			}
			got, err := steps.Plan(cur, versionfile.MustPair(tc.target), mustBundled(t, tc.bundled))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Plan = %v, want error", got)
				}
				if got != nil {
					t.Errorf("Plan returned steps %v with an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if is := errors.Is(err, steps.ErrNotSupported); is != tc.notSupp {
					t.Errorf("errors.Is(err, ErrNotSupported) = %v, want %v (err %q)", is, tc.notSupp, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var texts []string
			for _, s := range got {
				texts = append(texts, stepText(s))
				// A step changes data exactly when it runs a binary and needs room.
				if steprun.ChangesData(s) != (s.Space(0) > 0) || steprun.ChangesData(s) == (s.Kind() == steprun.KindWriteVersion) {
					t.Errorf("%s: ChangesData %v, Space(0) %d", s, steprun.ChangesData(s), s.Space(0))
				}
			}
			if strings.Join(texts, "\n") != strings.Join(tc.want, "\n") || len(got) != len(tc.want) {
				t.Errorf("Plan =\n  %s\nwant\n  %s", strings.Join(texts, "\n  "), strings.Join(tc.want, "\n  "))
			}
			// Steps chain: each step starts where the previous ended.
			for i := 1; i < len(got); i++ {
				if !got[i].Span().From.Equal(got[i-1].Span().To) {
					t.Errorf("step %d From %s != step %d To %s", i+1, got[i].Span().From, i, got[i-1].Span().To)
				}
			}
			if len(got) > 0 && !got[len(got)-1].Span().To.Equal(versionfile.MustPair(tc.target)) {
				t.Errorf("last step ends at %s, want %s", got[len(got)-1].Span().To, tc.target)
			}
		})
	}
}

func TestPlanDoesNotReorderBundled(t *testing.T) {
	// Plan must not depend on (or change) the order of the bundled slice.
	b := []*version.Version{
		versionfile.MustVersion("3.7.3"), versionfile.MustVersion("3.5.35"),
		versionfile.MustVersion("3.6.16"), versionfile.MustVersion("3.5.1"),
	}
	got, err := steps.Plan(pairPtr("3.4.13/etcd3"), versionfile.MustPair("3.7.3/etcd3"), b)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, s := range got {
		texts = append(texts, stepText(s))
	}
	want := "upgrade-minor 3.4.13/etcd3->3.5.35/etcd3,upgrade-minor 3.5.35/etcd3->3.6.16/etcd3,upgrade-minor 3.6.16/etcd3->3.7.3/etcd3"
	if strings.Join(texts, ",") != want {
		t.Errorf("Plan = %v, want %s", texts, want)
	}
	if b[0].String() != "3.7.3" || b[3].String() != "3.5.1" {
		t.Errorf("Plan reordered the bundled slice: %v", b)
	}
	_, err = steps.Plan(nil, versionfile.MustPair("3.8.0/etcd3"), b)
	if err == nil || !strings.Contains(err.Error(), "(bundled: 3.5.1, 3.5.35, 3.6.16, 3.7.3)") {
		t.Errorf("error %v does not list the bundled versions sorted", err)
	}
	if b[0].String() != "3.7.3" {
		t.Errorf("error formatting reordered the bundled slice: %v", b)
	}
	_, err = steps.Plan(nil, versionfile.MustPair("3.8.0/etcd3"), nil)
	if err == nil || !strings.Contains(err.Error(), "(bundled: none)") {
		t.Errorf("error %v does not say bundled: none", err)
	}
}

func TestParseBundled(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"3.4.13,3.5.35,3.6.16,3.7.3", "3.4.13 3.5.35 3.6.16 3.7.3"},
		{"3.4.13 3.5.35 3.6.16", "3.4.13 3.5.35 3.6.16"},
		{"3.4.13, 3.5.35 3.6.16", "3.4.13 3.5.35 3.6.16"},
		{" ,3.7.3,,\t3.4.13\n3.10.0 , 3.5.35, ", "3.4.13 3.5.35 3.7.3 3.10.0"},
		{"3.7.3,3.4.13,3.6.16,3.5.35", "3.4.13 3.5.35 3.6.16 3.7.3"},
		{"3.5.35,3.5.1,3.5.2", "3.5.1 3.5.2 3.5.35"},
		{"3.5.35", "3.5.35"},
	}
	for _, tc := range tests {
		got, err := steps.ParseBundled(tc.in)
		if err != nil {
			t.Errorf("ParseBundled(%q): %v", tc.in, err)
			continue
		}
		var s []string
		for _, v := range got {
			s = append(s, v.String())
		}
		if strings.Join(s, " ") != tc.want {
			t.Errorf("ParseBundled(%q) = %v, want %s", tc.in, s, tc.want)
		}
	}
}

func TestParseBundledErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", "no bundled versions: set BUNDLED_VERSIONS or --bundled-versions, e.g. 3.4.13,3.5.35"},
		{" , ,\t\n", "no bundled versions"},
		{"3.4.13,3.5", `bundled versions "3.4.13,3.5": invalid etcd version "3.5": want major.minor.patch`},
		{"3.4.13 v3.5.35", `invalid etcd version "v3.5.35"`},
		{"3.4.13;3.5.35", `invalid etcd version "3.4.13;3.5.35"`},
		{"3.5.35-rc.0", `invalid etcd version "3.5.35-rc.0"`},
	}
	for _, tc := range tests {
		got, err := steps.ParseBundled(tc.in)
		if err == nil {
			t.Errorf("ParseBundled(%q) = %v, want error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseBundled(%q) error = %q, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestStepString(t *testing.T) {
	tests := []struct {
		s    steprun.Step
		want string
	}{
		{&steps.UpgradeMinor{Move: move("3.4.13/etcd3", "3.5.35/etcd3")},
			"upgrade-minor 3.4.13/etcd3 -> 3.5.35/etcd3 (run etcd-3.5.35)"},
		{steps.WriteVersion{Move: move("3.7.0/etcd3", "3.7.3/etcd3")},
			"write-version 3.7.0/etcd3 -> 3.7.3/etcd3"},
		{steps.WriteVersion{Move: steprun.Move{To: versionfile.MustPair("3.7.3/etcd3")}},
			"write-version (empty data dir) -> 3.7.3/etcd3"},
		{&rollback.DowngradeMinor{Move: move("3.7.1/etcd3", "3.6.16/etcd3"), Via: versionfile.MustVersion("3.7.3")},
			"rollback-minor 3.7.1/etcd3 -> 3.6.16/etcd3 (downgrade with etcd-3.7.3, then run etcd-3.6.16)"},
		{&rollback.RestoreSnapshot{Move: move("3.5.35/etcd3", "3.4.13/etcd3"), Via: versionfile.MustVersion("3.5.35")},
			"rollback-minor 3.5.35/etcd3 -> 3.4.13/etcd3 (snapshot with etcd-3.5.35, restore with etcdctl-3.4.13, then run etcd-3.4.13)"},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func move(from, to string) steprun.Move {
	return steprun.Move{From: versionfile.MustPair(from), To: versionfile.MustPair(to)}
}

func TestBinaries(t *testing.T) {
	up := &steps.UpgradeMinor{Move: move("3.4.13/etcd3", "3.5.35/etcd3")}
	got := up.Binaries("/usr/local/bin")
	if len(got) != 1 || got[0] != filepath.Join("/usr/local/bin", "etcd-3.5.35") {
		t.Errorf("Binaries(upgrade) = %v, want [/usr/local/bin/etcd-3.5.35]", got)
	}
	wv := steps.WriteVersion{Move: steprun.Move{To: versionfile.MustPair("3.5.35/etcd3")}}
	if got := wv.Binaries("/usr/local/bin"); len(got) != 0 {
		t.Errorf("Binaries(write-version) = %v, want none", got)
	}
	rs := &rollback.RestoreSnapshot{Move: move("3.5.35/etcd3", "3.4.13/etcd3"), Via: versionfile.MustVersion("3.5.35")}
	if got := strings.Join(rs.Binaries("/b"), " "); got != "/b/etcd-3.5.35 /b/etcd-3.4.13 /b/etcdctl-3.4.13" {
		t.Errorf("Binaries(snapshot rollback) = %s", got)
	}
}

// What a step writes: the conversions and the snapshot restore build a second
// member dir, so they need the data's size again; write-version needs nothing.
func TestSpaceAndRewrites(t *testing.T) {
	const size = 1 << 30
	tests := []struct {
		s       steprun.Step
		rewrite bool
		space   int64
	}{
		{steps.WriteVersion{Move: move("3.7.0/etcd3", "3.7.3/etcd3")}, false, 0},
		{&steps.UpgradeMinor{Move: move("3.4.13/etcd3", "3.5.35/etcd3")}, false, steprun.StepSpace + size/4},
		{steps.UpgradePatch{Move: move("3.4.0/etcd3", "3.4.13/etcd3")}, false, steprun.StepSpace + size/4},
		{steps.ConvertV2ToV3{Move: move("3.4.13/etcd2", "3.4.13/etcd3")}, true, steprun.StepSpace + size/4 + size},
		{&rollback.DowngradeMinor{Move: move("3.7.3/etcd3", "3.6.16/etcd3"), Via: versionfile.MustVersion("3.7.3")}, false, steprun.StepSpace + size/4},
		{&rollback.RestoreSnapshot{Move: move("3.5.35/etcd3", "3.4.13/etcd3"), Via: versionfile.MustVersion("3.5.35")}, true, steprun.StepSpace + size/4 + size},
		{rollback.ToEtcd2{Move: move("3.4.13/etcd3", "3.4.13/etcd2")}, true, steprun.StepSpace + size/4 + size},
	}
	for _, tc := range tests {
		if got := tc.s.RewritesMemberDir(); got != tc.rewrite {
			t.Errorf("%s: RewritesMemberDir = %v", tc.s, got)
		}
		if got := tc.s.Space(size); got != tc.space {
			t.Errorf("%s: Space = %d, want %d", tc.s, got, tc.space)
		}
	}
}

// A rollback runs the bundled etcd of the minor it leaves, whatever patch the data
// was last written by.
func TestPlanRollbackVia(t *testing.T) {
	plan, err := steps.Plan(pairPtr("3.7.1/etcd3"), versionfile.MustPair("3.5.35/etcd3"), mustBundled(t, "3.4.13,3.5.35,3.6.16,3.7.3"))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 || via(plan[0]).String() != "3.7.3" || via(plan[1]).String() != "3.6.16" {
		t.Fatalf("plan = %v, want steps via etcd 3.7.3 then 3.6.16", plan)
	}
	// 3.6+ lowers the cluster with the downgrade API; 3.5 cannot reach 3.4, so that
	// step restores a snapshot.
	plan, err = steps.Plan(pairPtr("3.6.16/etcd3"), versionfile.MustPair("3.4.13/etcd3"), mustBundled(t, "3.4.13,3.5.35,3.6.16,3.7.3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := plan[0].(*rollback.DowngradeMinor); !ok || len(plan) != 2 {
		t.Fatalf("plan = %v: 3.6 -> 3.5 is not a downgrade through the API", plan)
	}
	if _, ok := plan[1].(*rollback.RestoreSnapshot); !ok {
		t.Fatalf("plan = %v: 3.5 -> 3.4 is not a snapshot restore", plan)
	}
}

// A member of several: the steps that write a new member dir are refused, the last
// minor hop up is handed over to the target etcd.
func TestForCluster(t *testing.T) {
	const std = "3.4.13,3.5.35,3.6.16,3.7.3"
	tests := []struct {
		current, target string
		want            []string
		wantErr         string
	}{
		{current: "3.4.13/etcd3", target: "3.7.3/etcd3", want: []string{"upgrade-minor 3.4.13/etcd3->3.5.35/etcd3", "upgrade-minor 3.5.35/etcd3->3.6.16/etcd3", "hand-over 3.6.16/etcd3->3.7.3/etcd3"}},
		{current: "3.6.16/etcd3", target: "3.7.3/etcd3", want: []string{"hand-over 3.6.16/etcd3->3.7.3/etcd3"}},
		{current: "3.6.x/etcd3", target: "3.7.3/etcd3", want: []string{"upgrade-patch 3.6.x/etcd3->3.6.16/etcd3", "hand-over 3.6.16/etcd3->3.7.3/etcd3"}},
		{current: "3.6.x/etcd3", target: "3.6.16/etcd3", want: []string{"upgrade-patch 3.6.x/etcd3->3.6.16/etcd3"}},
		{current: "3.7.3/etcd3", target: "3.5.35/etcd3", want: []string{"rollback-minor 3.7.3/etcd3->3.6.16/etcd3", "rollback-minor 3.6.16/etcd3->3.5.35/etcd3"}},
		{current: "3.5.35/etcd3", target: "3.4.13/etcd3", wantErr: "rollback-minor 3.5.35/etcd3 -> 3.4.13/etcd3 (snapshot with etcd-3.5.35, restore with etcdctl-3.4.13, then run etcd-3.4.13): on a cluster of 3 members this step rebuilds membership"},
		{current: "3.4.13/etcd2", target: "3.7.3/etcd3", wantErr: "v2-to-v3 3.4.13/etcd2 -> 3.4.13/etcd3 (convert offline, then run etcd-3.4.13): on a cluster of 3 members this step rebuilds membership"},
		{current: "3.5.35/etcd3", target: "3.5.35/etcd2", wantErr: "rollback-to-etcd2 3.5.35/etcd3 -> 3.5.35/etcd2 (convert offline, then run etcd-3.5.35 with the v2 API): on a cluster of 3 members this step rebuilds membership"},
	}
	for _, tc := range tests {
		plan, err := steps.Plan(pairPtr(tc.current), versionfile.MustPair(tc.target), mustBundled(t, std))
		if err != nil {
			t.Fatalf("Plan(%s -> %s): %v", tc.current, tc.target, err)
		}
		got, err := steps.ForCluster(plan, 3)
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || !errors.Is(err, steps.ErrRebuildsMembership) {
				t.Errorf("ForCluster(%s -> %s) = %v, want error starting %q", tc.current, tc.target, err, tc.wantErr)
			}
			continue
		}
		var texts []string
		for _, s := range got {
			texts = append(texts, stepText(s))
		}
		if strings.Join(texts, "; ") != strings.Join(tc.want, "; ") || err != nil {
			t.Errorf("ForCluster(%s -> %s) = %v, %v; want %v", tc.current, tc.target, texts, err, tc.want)
		}
		if h, ok := got[len(got)-1].(*steps.HandOver); ok {
			if b := strings.Join(h.Binaries("/b"), " "); b != "/b/etcd-3.6.16 /b/etcd-3.7.3" {
				t.Errorf("hand-over binaries = %s", b)
			}
		}
	}
	// The plan itself is left as it was.
	plan, _ := steps.Plan(pairPtr("3.6.16/etcd3"), versionfile.MustPair("3.7.3/etcd3"), mustBundled(t, std))
	if _, err := steps.ForCluster(plan, 3); err != nil || plan[0].Kind() != steprun.KindUpgradeMinor {
		t.Errorf("ForCluster changed its input: %v, %v", plan[0], err)
	}
}
