// Package lockstep keeps the members of one cluster in step while each member's
// migrator walks its own data dir: a barrier that adds no key and no revision (one
// lease per member and point of the walk, with an ID that names both), and reports
// of which members are missing and what each one's peer URL says it runs.
package lockstep

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// Cluster is what a member's migrator knows of its cluster.
type Cluster struct {
	// Members as the data records them (name, ID, peer URLs).
	Members []v3backend.Member
	// Self is this member's name.
	Self string
	// PeerTLS reaches the peers' /version (the member's peer certificate); nil for
	// plain-http peers.
	PeerTLS *tls.Config
	// Timeout bounds each wait for the other members.
	Timeout time.Duration
	// ReportEvery is how often a wait logs who is missing.
	ReportEvery time.Duration
	// Linger is how long a member stays up once everybody arrived: long enough
	// for the leader's heartbeats to tell every member that the last lease is
	// committed, before members leave and take quorum with them.
	Linger time.Duration
	// DoneTTL is how long a member's "walk done" lease lives: long enough for a
	// killed member's migrator to be restarted (the kubelet's crash-loop back-off
	// is capped at 5 min) and rerun its step; 0 grants none.
	DoneTTL time.Duration
	Logger  *slog.Logger
}

// Point is a place in a walk where every member waits for the others: its
// direction and its rank, which grows along the walk.
type Point struct {
	Down bool
	Rank int
	// Soft: wait only for the members that were at the walk's previous point
	// (rank Prev, -1 for none: then for nobody); members that took no part are
	// taken to be serving (a rolling restart) and are not waited for.
	Soft bool
	Prev int
	// Final: the walk's last point. Once everybody passed it, nobody needs its
	// leases any more: they are revoked, so no barrier lease outlives the walk.
	Final bool
}

// Ranks within one minor m (major*100+minor): a walk up passes the run that
// reaches m, then the v2-drop and hand-over runs of m, in this order; a walk down
// passes the run of the minor being left and then of the minor reached.
//
// PhaseMinor is "this member's data is at m with a snapshot": the minor upgrade
// into m and a patch step at m both arrive there. A member killed in the minor
// step after its data reached m is rerun as a patch step at m, and the members
// still waiting at the minor step's barrier must count it as arrived.
const (
	PhaseMinor = iota + 1
	PhaseV2Drop
	PhaseHandOver
)

// Up is the point of a run at minor m in phase ph of a walk up.
func Up(m, ph int) Point { return Point{Rank: m*4 + ph} }

// Down is the point of a rollback's run: phase 0 the run of the minor being left,
// 1 of the minor reached (reached is major*100+minor).
func Down(reached, ph int) Point { return Point{Down: true, Rank: (1000-reached)*4 + ph} }

// leaseTTL: a barrier lease only has to outlive the wait of the members still at
// its point, and a waiting member keeps its own alive; then it expires by itself.
const leaseTTL = 60

// magic marks barrier leases ("mg") in the top 16 bits of the ID.
const magic = 0x6d67

// doneBit marks a member's "walk done" lease: granted once it passed the walk's
// last point, at that point's rank, and left to expire (DoneTTL). A member whose
// migrator was killed and is rerun after the others finished counts them as
// arrived at any point of the walk through it: their barrier leases are gone.
const doneBit = 1 << 46

// rankMask: ranks stay below 4096 (Down(300, 1) is 2801).
const rankMask = 0x3fff

// IsBarrierLease tells whether a lease ID is one of the barrier's, which hold no
// key: tools that compare leases before and after a walk leave them out.
func IsBarrierLease(id int64) bool {
	_, _, _, ok := decode(id)
	return ok
}

// IsDoneLease tells whether a lease ID is a member's "walk done" lease, the only
// barrier lease a finished walk leaves behind (until DoneTTL).
func IsDoneLease(id int64) bool {
	_, _, done, ok := decode(id)
	return ok && done
}

// leaseID encodes the point and the low 32 bits of the member ID:
// [16 magic][1 down][1 done][14 rank][32 member].
func leaseID(p Point, member uint64) int64 {
	id := int64(magic)<<48 | int64(p.Rank&rankMask)<<32 | int64(member&0xffffffff)
	if p.Down {
		id |= 1 << 47
	}
	return id
}

// decode returns the point and member bits of a barrier lease ID, and whether it
// is a "walk done" lease.
func decode(id int64) (p Point, member uint32, done, ok bool) {
	if id>>48 != magic {
		return Point{}, 0, false, false
	}
	return Point{Down: id&(1<<47) != 0, Rank: int(id>>32) & rankMask}, uint32(id), id&doneBit != 0, true
}

// Arrive records that this member (memberID) reached p, then waits until every
// member has reached p or a later point of the same direction, keeping its own
// lease alive meanwhile; then it revokes its leases of earlier points. A member that
// does not arrive within Timeout fails the wait, naming it.
func (cl *Cluster) Arrive(ctx context.Context, c *clientv3.Client, memberID uint64, p Point) error {
	id := leaseID(p, memberID)
	ctx, cancel := context.WithTimeout(ctx, cl.Timeout)
	defer cancel()
	if err := cl.grantRetrying(ctx, c, id); err != nil {
		return err
	}
	cl.revokeStaleDone(ctx, c, p)
	start := time.Now()
	revokedForUs, err := cl.await(ctx, c, p, id, start)
	if err != nil {
		return err
	}
	if revokedForUs {
		// Only a member that saw every member here revokes the last point's
		// leases (revokePoint): everybody arrived.
		cl.Logger.Info("the last barrier's leases were revoked by a member that saw every member arrive")
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err := cl.revokeEarlier(rctx, c, memberID, p)
		cl.grantDone(rctx, c, memberID, p)
		return err
	}
	if err := cl.revokeEarlier(ctx, c, memberID, p); err != nil {
		return err
	}
	if p.Final {
		// Now, while every member is still up to commit it.
		cl.grantDone(ctx, c, memberID, p)
	}
	cl.Logger.Info("every member reached this step", "waited_ms", time.Since(start).Milliseconds())
	select {
	case <-ctx.Done():
	case <-time.After(cl.Linger):
	}
	if p.Final {
		cl.revokePoint(ctx, c, p)
	}
	return nil
}

// grantRetrying grants this member's lease at a point: a grant can time out while
// another member restarts (a leader election), so it retries until ctx ends.
func (cl *Cluster) grantRetrying(ctx context.Context, c *clientv3.Client, id int64) error {
	for {
		err := grant(ctx, c, id, leaseTTL)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("barrier lease %x: %w", id, err)
		}
		cl.Logger.Debug("grant the barrier lease again", "lease", fmt.Sprintf("%x", id), "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// await waits until every member is at p or beyond, keeping this member's lease id
// alive and reporting who is missing; revokedForUs: at the walk's last point, this
// member's lease was revoked by a member that saw everybody arrive.
func (cl *Cluster) await(ctx context.Context, c *clientv3.Client, p Point, id int64, start time.Time) (revokedForUs bool, err error) {
	lastReport, known := start, cl.Members
	for {
		missing, own, err := cl.missing(ctx, c, p, id)
		if err != nil {
			missing = known // name the last ones seen missing, not everybody
		} else {
			known = missing
		}
		if err == nil && len(missing) == 0 {
			return false, nil
		}
		if err == nil && p.Final && !own {
			return true, nil
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("members %s did not reach this step within --members-timeout=%s (%s): start their migration, or rerun this member once they run", names(missing), cl.Timeout, cl.reports(missing))
		}
		if time.Since(lastReport) >= cl.ReportEvery {
			lastReport = time.Now()
			cl.Logger.Info("waiting for the other members at this step", "missing", names(missing), "reports", cl.reports(missing), "waited_ms", time.Since(start).Milliseconds())
		}
		kctx, kcancel := context.WithTimeout(ctx, time.Second)
		_, _ = c.KeepAliveOnce(kctx, clientv3.LeaseID(id))
		kcancel()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// grantDone grants this member's "walk done" lease at p, the walk's last point.
func (cl *Cluster) grantDone(ctx context.Context, c *clientv3.Client, memberID uint64, p Point) {
	if cl.DoneTTL <= 0 {
		return
	}
	id := leaseID(p, memberID) | doneBit
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := grant(gctx, c, id, int64(cl.DoneTTL/time.Second)); err != nil {
		// A rerun of a member killed before this point then waits for this one
		// until --members-timeout: that is all it costs.
		cl.Logger.Warn("grant the walk-done lease", "lease", fmt.Sprintf("%x", id), "err", err)
	}
}

// revokeStaleDone revokes the "walk done" leases of the other direction: a walk
// the other way started, so the walk they mark is over for every member, and a
// later walk back must not count them (an upgrade, a rollback, the upgrade again
// within DoneTTL would reach ranks the first upgrade's leases cover).
func (cl *Cluster) revokeStaleDone(ctx context.Context, c *clientv3.Client, p Point) {
	cl.revokeWhere(ctx, c, func(lp Point, _ uint32, done bool) bool { return done && lp.Down != p.Down })
}

// revokePoint revokes every member's lease at the walk's last point. Every member
// saw them during the linger, and the first to leave it still has the others' votes
// for the revokes; the last to leave may not, which is why each revokes them all.
func (cl *Cluster) revokePoint(ctx context.Context, c *clientv3.Client, p Point) {
	cl.revokeWhere(ctx, c, func(lp Point, _ uint32, done bool) bool { return !done && lp.Down == p.Down && lp.Rank == p.Rank })
}

// revokeWhere revokes the barrier leases that match; the ones it misses expire by
// themselves.
func (cl *Cluster) revokeWhere(ctx context.Context, c *clientv3.Client, match func(p Point, member uint32, done bool) bool) {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	resp, err := c.Leases(lctx)
	cancel()
	if err != nil {
		return
	}
	for _, l := range resp.Leases {
		lp, m, done, ok := decode(int64(l.ID))
		if !ok || !match(lp, m, done) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Revoke(rctx, l.ID)
		cancel()
		if err != nil && rpctypes.Error(err) != rpctypes.ErrLeaseNotFound {
			cl.Logger.Debug("revoke a barrier lease (it expires by itself)", "lease", fmt.Sprintf("%x", int64(l.ID)), "err", err)
		}
	}
}

// grant grants the barrier lease; one a cut-short run of this step left is as good.
func grant(ctx context.Context, c *clientv3.Client, id, ttl int64) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := pb.NewLeaseClient(c.ActiveConnection()).LeaseGrant(gctx, &pb.LeaseGrantRequest{ID: id, TTL: ttl})
	if err = rpctypes.Error(err); err != nil && err != rpctypes.ErrLeaseExist {
		return err
	}
	return nil
}

// missing lists the members without a lease at p or beyond (for a soft point:
// among those that were at its previous point).
func (cl *Cluster) missing(ctx context.Context, c *clientv3.Client, p Point, ownID int64) (missing []v3backend.Member, own bool, err error) {
	if p.Soft && p.Prev < 0 {
		// Nobody walked the previous point with this member (a one-minor hand-over
		// in a rolling restart): it waits for nobody, and needs no lease list,
		// which etcd before 3.3 does not have (LeaseLeases is Unimplemented).
		return nil, true, nil
	}
	ids, err := cl.leaseIDs(ctx, c, p)
	if err != nil {
		return cl.Members, true, err
	}
	best := map[uint32]int{} // member bits -> highest rank of p's direction
	for _, id := range ids {
		own = own || id == ownID
		lp, m, _, ok := decode(id) // a done lease counts as its point
		if !ok || lp.Down != p.Down {
			continue
		}
		if r, seen := best[m]; !seen || lp.Rank > r {
			best[m] = lp.Rank
		}
	}
	for _, m := range cl.Members {
		r, seen := best[uint32(m.ID)]
		if seen && r >= p.Rank {
			continue
		}
		if p.Soft && (p.Prev < 0 || !seen || r < p.Prev) {
			continue // not walking with us: serving, as in a rolling restart
		}
		missing = append(missing, m)
	}
	return missing, own, nil
}

// leaseIDs lists the cluster's leases (LeaseLeases, etcd 3.3+). etcd 3.0-3.2 has
// no such list: there it probes the barrier lease IDs p can depend on instead.
func (cl *Cluster) leaseIDs(ctx context.Context, c *clientv3.Client, p Point) ([]int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.Leases(lctx)
	if status.Code(err) == codes.Unimplemented {
		return probe(lctx, c, cl.candidates(p))
	}
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(resp.Leases))
	for i, l := range resp.Leases {
		ids[i] = int64(l.ID)
	}
	return ids, nil
}

// probeWindow is how many ranks past a point probing looks for members that are
// ahead. A member is at most one point ahead of a point others still wait at, or
// has finished its walk (its walk-done lease at the walk's last point); probing
// happens only while etcd 3.0-3.2 serves, whose walks' points lie within
// Up(300, PhaseMinor) ... Up(302, PhaseHandOver): 10 ranks.
const probeWindow = 16

// candidates are the IDs of every member's barrier leases (point and walk-done)
// that missing(p) looks at: of p's direction, from p's previous point (soft) or p
// itself up to probeWindow ranks past p.
func (cl *Cluster) candidates(p Point) []int64 {
	lo := p.Rank
	if p.Soft && p.Prev >= 0 && p.Prev < lo {
		lo = p.Prev
	}
	var ids []int64
	for _, m := range cl.Members {
		for r := lo; r <= p.Rank+probeWindow && r <= rankMask; r++ {
			id := leaseID(Point{Down: p.Down, Rank: r}, uint64(m.ID))
			ids = append(ids, id, id|doneBit)
		}
	}
	return ids
}

// probe returns those of ids that are leases of the cluster, asked through one
// LeaseKeepAlive stream: the one lease call of etcd 3.0 that tells whether a lease
// exists without changing it otherwise (TTL 0: none). It renews the leases it
// finds, which only keeps a barrier lease that much longer.
func probe(ctx context.Context, c *clientv3.Client, ids []int64) ([]int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pb.NewLeaseClient(c.ActiveConnection()).LeaseKeepAlive(ctx)
	if err != nil {
		return nil, err
	}
	sent := make(chan error, 1)
	go func() {
		for _, id := range ids {
			if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
				sent <- err
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	var found []int64
	for range ids {
		resp, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("probe barrier leases: %w", err)
		}
		if resp.TTL > 0 {
			found = append(found, resp.ID)
		}
	}
	if err := <-sent; err != nil {
		return nil, fmt.Errorf("probe barrier leases: %w", err)
	}
	return found, nil
}

// revokeEarlier revokes this member's barrier leases of earlier points, of either
// direction: the members that needed them have passed. A lease of a later point
// stays: a rerun after a kill may plan a step of a lower rank (a patch step at the
// minor its data reached) than a point it had passed, and the members waiting
// further on must still count it as walking with them.
func (cl *Cluster) revokeEarlier(ctx context.Context, c *clientv3.Client, memberID uint64, p Point) error {
	cl.revokeWhere(ctx, c, func(lp Point, m uint32, done bool) bool {
		return m == uint32(memberID) && (done || lp.Down != p.Down || lp.Rank < p.Rank)
	})
	return nil
}

func names(ms []v3backend.Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Name
		if s[i] == "" {
			s[i] = m.ID.String()
		}
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// Report says what every other member's peer URL reports.
func (cl *Cluster) Report() string {
	_, all := cl.Lagging("")
	return all
}

// Lagging names the other members whose peer URL does not report an etcd of minor
// ("3.6"; "" names none), and says what every other member reports.
func (cl *Cluster) Lagging(minor string) (lagging, report string) {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: cl.PeerTLS}}
	var lag, out []string
	for _, m := range cl.Members {
		if m.Name == cl.Self {
			continue
		}
		name := names([]v3backend.Member{m})
		server, what := peerVersion(hc, m.PeerURLs)
		if minor != "" && !strings.HasPrefix(server+".", minor+".") {
			lag = append(lag, name)
		}
		out = append(out, name+": "+what)
	}
	sort.Strings(lag)
	return strings.Join(lag, ", "), strings.Join(out, "; ")
}

// reports says what each of ms reports.
func (cl *Cluster) reports(ms []v3backend.Member) string {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: cl.PeerTLS}}
	var out []string
	for _, m := range ms {
		_, what := peerVersion(hc, m.PeerURLs)
		out = append(out, names([]v3backend.Member{m})+": "+what)
	}
	return strings.Join(out, "; ")
}

// peerVersion asks a member's peer URLs for /version: the server version it runs,
// and what to say about it.
func peerVersion(hc *http.Client, urls []string) (server, what string) {
	what = "no peer URL"
	for _, u := range urls {
		resp, err := hc.Get(strings.TrimSuffix(u, "/") + "/version")
		if err != nil {
			what = "unreachable (" + shortErr(err) + ")"
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		var v struct {
			Server  string `json:"etcdserver"`
			Cluster string `json:"etcdcluster"`
		}
		if json.Unmarshal(b, &v) != nil || v.Server == "" {
			return "", fmt.Sprintf("answers %s without a version", resp.Status)
		}
		return v.Server, "runs etcd " + v.Server + ", cluster version " + v.Cluster
	}
	return "", what
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}
