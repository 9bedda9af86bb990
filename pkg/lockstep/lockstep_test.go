package lockstep

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

func TestLeaseID(t *testing.T) {
	for _, p := range []Point{Up(304, PhaseMinor), Up(307, PhaseHandOver), Down(305, 1), Down(306, 0)} {
		for _, m := range []uint64{0x8e9e05c52164694d, 1, 0xffffffffffffffff} {
			id := leaseID(p, m)
			if id <= 0 {
				t.Fatalf("leaseID(%+v, %x) = %x: not a positive lease ID", p, m, id)
			}
			got, gm, done, ok := decode(id)
			if !ok || done || got != p || gm != uint32(m) {
				t.Errorf("decode(leaseID(%+v, %x)) = %+v, %x, %v", p, m, got, gm, ok)
			}
		}
	}
	if IsBarrierLease(0x6d6967722d726479) {
		t.Error("the readiness lease decodes as a barrier lease")
	}
	// Ranks grow along a walk: up 3.4 reached (a patch step) < 3.5 reached < 3.5
	// v2 drop < 3.5 hand-over < 3.6 reached; down: leave 3.7 < reach 3.6 < leave
	// 3.6 < reach 3.5.
	up := []Point{Up(304, PhaseMinor), Up(305, PhaseMinor), Up(305, PhaseV2Drop), Up(305, PhaseHandOver), Up(306, PhaseMinor)}
	down := []Point{Down(306, 0), Down(306, 1), Down(305, 0), Down(305, 1)}
	for _, walk := range [][]Point{up, down} {
		for i := 1; i < len(walk); i++ {
			if walk[i].Rank <= walk[i-1].Rank {
				t.Errorf("rank of %+v is not after %+v", walk[i], walk[i-1])
			}
		}
	}
}

// A "walk done" lease decodes as its point with the done mark, is a barrier
// lease, and is told apart from the point's own lease.
func TestDoneLease(t *testing.T) {
	p := Down(305, 1)
	own := leaseID(p, 0x8e9e05c52164694d)
	done := own | doneBit
	got, m, isDone, ok := decode(done)
	if !ok || !isDone || got != p || m != 0x2164694d {
		t.Fatalf("decode(done lease %x) = %+v, %x, done %v, ok %v", done, got, m, isDone, ok)
	}
	if !IsBarrierLease(done) || !IsDoneLease(done) || IsDoneLease(own) || done == own {
		t.Fatalf("done lease %x / point lease %x not told apart", done, own)
	}
	if IsDoneLease(0x6d6967722d726479) {
		t.Fatal("the readiness lease reads as a done lease")
	}
}

// A soft point with no previous point (the hand-over of a member restarted alone
// in a rolling restart) waits for nobody without listing the leases: etcd 3.0-3.2
// has no LeaseLeases, and a barrier that needed it waited for every member,
// itself included, until --members-timeout. The client here reaches no etcd at
// all, so any lease call fails.
func TestSoftPointWithoutPreviousNeedsNoLeaseList(t *testing.T) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://127.0.0.1:1"}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	members := []v3backend.Member{{ID: 0xa1, Name: "a"}, {ID: 0xb2, Name: "b"}, {ID: 0xc3, Name: "c"}}
	cl := &Cluster{Members: members, Self: "a"}
	p := Point{Rank: Up(301, PhaseHandOver).Rank, Soft: true, Prev: -1, Final: true}
	missing, _, err := cl.missing(context.Background(), c, p, leaseID(p, 0xa1))
	if err != nil || len(missing) != 0 {
		t.Fatalf("soft point without a previous one: missing %v, err %v; want nobody and no error", names(missing), err)
	}
	// With a previous point it must list the leases: here that fails, and every
	// member counts as missing.
	p.Prev = Up(301, PhaseMinor).Rank
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if missing, _, err := cl.missing(ctx, c, p, leaseID(p, 0xa1)); err == nil || len(missing) != len(members) {
		t.Fatalf("soft point with a previous one, no etcd: missing %v, err %v; want every member and an error", names(missing), err)
	}
}
