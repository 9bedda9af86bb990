package lockstep

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// The barrier on a real etcd 3.7.3, three members' migrators played by one test
// (their lease IDs are all this barrier knows of them): a member rerun after the
// others finished the walk passes any point through their walk-done leases; without
// them it times out naming them; walk-done leases of the other direction neither
// count nor survive its arrival.
func TestBarrierWalkDone(t *testing.T) {
	s := etcdtest.Serve(t, etcdtest.BinDir(t), "3.7.3", filepath.Join(t.TempDir(), "data"))
	members := []v3backend.Member{{ID: types.ID(0xa1), Name: "a"}, {ID: types.ID(0xb2), Name: "b"}, {ID: types.ID(0xc3), Name: "c"}}
	cl := func(timeout time.Duration) *Cluster {
		return &Cluster{Members: members, Self: "a", Timeout: timeout, ReportEvery: time.Minute,
			Linger: 10 * time.Millisecond, DoneTTL: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	ctx := context.Background()
	final := Point{Rank: Up(306, PhaseHandOver).Rank, Soft: true, Prev: Up(306, PhaseMinor).Rank, Final: true}
	hard := Up(305, PhaseMinor)

	// b and c walked down earlier: their down walk-done leases must not count
	// for an up walk, and a's arrival revokes them.
	down := Point{Down: true, Rank: Down(305, 1).Rank}
	for _, m := range members[1:] {
		if err := grant(ctx, s.Client, leaseID(down, uint64(m.ID))|doneBit, 60); err != nil {
			t.Fatal(err)
		}
	}
	err := cl(time.Second).Arrive(ctx, s.Client, 0xa1, hard)
	if err == nil || !strings.Contains(err.Error(), "members b, c did not reach this step within --members-timeout=1s") {
		t.Fatalf("a at a hard point with b and c nowhere: %v, want the timeout naming b, c", err)
	}
	if n := countLeases(t, s.Client, func(id int64) bool { return IsDoneLease(id) }); n != 0 {
		t.Fatalf("%d walk-done leases of the other direction survived an arrival", n)
	}

	// b and c finished the up walk (their last point's leases revoked, their
	// walk-done leases granted): a, rerun at an earlier hard point, passes.
	for _, m := range members[1:] {
		if err := grant(ctx, s.Client, leaseID(final, uint64(m.ID))|doneBit, 60); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := cl(10*time.Second).Arrive(ctx, s.Client, 0xa1, hard); err != nil {
		t.Fatalf("a rerun after b and c finished: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a waited %v for members that had finished", d)
	}
	// Then at the last point: a leaves its own walk-done lease and no other
	// barrier lease.
	if err := cl(10*time.Second).Arrive(ctx, s.Client, 0xa1, final); err != nil {
		t.Fatalf("a at the last point: %v", err)
	}
	if n := countLeases(t, s.Client, func(id int64) bool { return IsDoneLease(id) }); n != 3 {
		t.Fatalf("%d walk-done leases, want 3 (a, b, c)", n)
	}
	if n := countLeases(t, s.Client, func(id int64) bool { return IsBarrierLease(id) && !IsDoneLease(id) }); n != 0 {
		t.Fatalf("%d barrier leases outlived the walk", n)
	}
}

func countLeases(t *testing.T, c *clientv3.Client, match func(int64) bool) int {
	t.Helper()
	resp, err := c.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range resp.Leases {
		if match(int64(l.ID)) {
			n++
		}
	}
	return n
}

// On etcd 3.0-3.2 (no LeaseLeases) the barrier probes the lease IDs a point
// depends on. On a real etcd 3.7.3 that lists them, the probe finds exactly the
// candidates the list holds: point and walk-done leases of several members and
// ranks, in and out of the window, of both directions; a lease that is not there
// is not found, and nothing is created by probing.
func TestProbeFindsWhatTheListHas(t *testing.T) {
	s := etcdtest.Serve(t, etcdtest.BinDir(t), "3.7.3", filepath.Join(t.TempDir(), "data"))
	members := []v3backend.Member{{ID: types.ID(0x8e9e05c52164694d), Name: "a"}, {ID: types.ID(0xb2), Name: "b"}, {ID: types.ID(0xc3), Name: "c"}}
	cl := &Cluster{Members: members, Self: "a"}
	ctx := context.Background()
	p := Point{Rank: Up(302, PhaseHandOver).Rank, Soft: true, Prev: Up(302, PhaseMinor).Rank, Final: true}
	granted := []int64{
		leaseID(Up(302, PhaseMinor), uint64(members[0].ID)),             // a at p's previous point
		leaseID(p, uint64(members[1].ID)),                               // b at p
		leaseID(Up(303, PhaseMinor), uint64(members[2].ID)) | doneBit,   // c ahead, done
		leaseID(Up(301, PhaseMinor), uint64(members[1].ID)),             // b before the window
		leaseID(Point{Down: true, Rank: p.Rank}, uint64(members[2].ID)), // other direction
		leaseID(Up(302, PhaseMinor), 0xd4),                              // not a member
		0x1234,                                                          // not a barrier lease
	}
	for _, id := range granted {
		if err := grant(ctx, s.Client, id, 60); err != nil {
			t.Fatal(err)
		}
	}
	cands := cl.candidates(p)
	found, err := probe(ctx, s.Client, cands)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{}
	isCand := map[int64]bool{}
	for _, id := range cands {
		isCand[id] = true
	}
	resp, err := s.Client.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range resp.Leases {
		if isCand[int64(l.ID)] {
			want[int64(l.ID)] = true
		}
	}
	if len(want) != 3 || len(found) != len(want) {
		t.Fatalf("probe found %x, the list has %v among the candidates (want the 3 in the window)", found, want)
	}
	for _, id := range found {
		if !want[id] {
			t.Fatalf("probe found %x, which the list does not have among the candidates", id)
		}
	}
	if n := countLeases(t, s.Client, func(int64) bool { return true }); n != len(granted) {
		t.Fatalf("%d leases after the probe, %d granted: probing created some", n, len(granted))
	}
	// And missing, fed the probe's IDs, counts a (at the previous point) as
	// missing, b and c as arrived.
	ids, err := probe(ctx, s.Client, cands)
	if err != nil {
		t.Fatal(err)
	}
	best := map[uint32]int{}
	for _, id := range ids {
		lp, m, _, _ := decode(id)
		best[m] = max(best[m], lp.Rank)
	}
	if best[uint32(members[0].ID)] != p.Prev || best[uint32(members[1].ID)] != p.Rank || best[uint32(members[2].ID)] != Up(303, PhaseMinor).Rank {
		t.Fatalf("ranks seen by the probe: %v", best)
	}
}
