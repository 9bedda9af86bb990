package etcdproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// PollInterval is how often readiness is checked: a step should cost little more
// than etcd's own start.
const PollInterval = 15 * time.Millisecond

// ServerVersions is etcd's GET /version answer. Only it reports the cluster version
// (and on 3.6+ the storage version); endpoint status does not.
type ServerVersions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	Storage string `json:"storage"`
}

// GetVersions asks the server at clientURL for its versions.
func GetVersions(ctx context.Context, clientURL string) (ServerVersions, error) {
	return getVersions(ctx, http.DefaultClient, clientURL)
}

// Versions asks the step's etcd for its versions.
func (p *Process) Versions(ctx context.Context) (ServerVersions, error) {
	return getVersions(ctx, p.http, p.URL())
}

func getVersions(ctx context.Context, hc *http.Client, clientURL string) (ServerVersions, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(clientURL, "/")+"/version", nil)
	if err != nil {
		return ServerVersions{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ServerVersions{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return ServerVersions{}, err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return ServerVersions{}, fmt.Errorf("GET /version: %s: %w", resp.Status, errRefused)
	}
	if resp.StatusCode != http.StatusOK {
		return ServerVersions{}, fmt.Errorf("GET /version: %s", resp.Status)
	}
	var v ServerVersions
	if err := json.Unmarshal(body, &v); err != nil {
		return ServerVersions{}, fmt.Errorf("GET /version: %w", err)
	}
	return v, nil
}

// AtMinor reports whether the semver string s has the given major.minor ("3.6").
func AtMinor(s, minor string) bool {
	v, err := versionfile.ParseVersion(s)
	return err == nil && versionfile.MinorString(v) == minor
}

// needsStorageVersion: etcd 3.6+ records a storage version in the backend that must
// have moved too before the data is at that minor.
func (p *Process) needsStorageVersion() bool {
	return etcdversion.For(p.cfg.Version).StorageVersion
}

// WaitVersions polls GET /version until the cluster version (and from 3.6 the
// storage version) is the binary's major.minor.
func (p *Process) WaitVersions(ctx context.Context) (ServerVersions, error) {
	return p.WaitMinor(ctx, versionfile.MinorString(p.cfg.Version))
}

// WaitMinor polls GET /version until the cluster version (and, on a 3.6+ server,
// the storage version) is one of wants ("3.6"): after an upgrade, or a downgrade.
// With no wants it waits until etcd answers at all.
func (p *Process) WaitMinor(ctx context.Context, wants ...string) (ServerVersions, error) {
	want := strings.Join(wants, " or ")
	if want == "" {
		want = "it to answer"
	}
	var last ServerVersions
	var lastErr error
	for {
		v, err := p.Versions(ctx)
		if err == nil {
			last = v
			if len(wants) == 0 {
				return v, nil
			}
			for _, w := range wants {
				if AtMinor(v.Cluster, w) && (!p.needsStorageVersion() || AtMinor(v.Storage, w)) {
					return v, nil
				}
			}
		} else {
			lastErr = err
			if Permanent(err) {
				return last, fmt.Errorf("etcd %s on %s: GET /version: %w", p.cfg.Version, p.URL(), err)
			}
		}
		if err := p.sleepOrDone(ctx, PollInterval); err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("etcd %s on %s: cluster version %q storage version %q after waiting for %s (last error: %v): %w", p.cfg.Version, p.URL(), last.Cluster, last.Storage, want, lastErr, err)
			}
			return last, err
		}
	}
}

// Client connects a v3 client to the private server.
func (p *Process) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{p.URL()},
		DialTimeout: 2 * time.Second,
		TLS:         p.cfg.tls.clientConfig(),
		Logger:      zap.NewNop(),
	})
}

// readinessLease is the ID of the lease Write grants and revokes ("migr-rdy"):
// a fixed ID lets the next step find and revoke one that a step cut short between
// the two left behind, so no stray lease outlives the migration. Each member of a
// cluster of several has its own (memberLease), so their steps do not revoke each
// other's.
const readinessLease = int64(0x6d6967722d726479)

// memberLease is the ID of a member's readiness lease: "migr" and the low 32 bits
// of its member ID.
func memberLease(memberID uint64) int64 {
	return 0x6d696772<<32 | int64(memberID&0xffffffff)
}

// readinessLease is the lease this etcd's readiness writes use.
func (p *Process) readinessLease(ctx context.Context, c *clientv3.Client) (int64, error) {
	if !p.cfg.MultiMember {
		return readinessLease, nil
	}
	id, err := p.MemberID(ctx, c)
	return memberLease(id), err
}

// MemberID is this etcd's member ID, from its status.
func (p *Process) MemberID(ctx context.Context, c *clientv3.Client) (uint64, error) {
	if p.memberID == 0 {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Status(sctx, p.URL())
		cancel()
		if err != nil {
			return 0, fmt.Errorf("etcd %s status: %w", p.cfg.Version, err)
		}
		p.memberID = st.Header.MemberId
	}
	return p.memberID, nil
}

// Write commits a write that leaves the keyspace untouched: a lease grant and its
// revoke. Both go through consensus and the backend, so success proves writes
// work, yet no key and no revision changes (a revoke of a lease without keys does
// not bump the revision).
func Write(ctx context.Context, c *clientv3.Client, lease int64) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	grant := func() error {
		_, err := pb.NewLeaseClient(c.ActiveConnection()).LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: lease, TTL: 5})
		return rpctypes.Error(err)
	}
	err := grant()
	if errors.Is(err, rpctypes.ErrLeaseExist) {
		// Left by a step cut short: revoke it and grant again.
		if _, err := c.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
			return fmt.Errorf("revoke the readiness lease a cut-short step left: %w", err)
		}
		err = grant()
	}
	if err != nil {
		return fmt.Errorf("lease grant: %w", err)
	}
	if _, err := c.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
		return fmt.Errorf("lease revoke: %w", err)
	}
	return nil
}

// WaitWrite retries Write until it succeeds.
func (p *Process) WaitWrite(ctx context.Context, c *clientv3.Client) error {
	for {
		lease, err := p.readinessLease(ctx, c)
		if err == nil {
			err = Write(ctx, c, lease)
		}
		if err == nil {
			return nil
		}
		if Permanent(err) {
			return fmt.Errorf("etcd %s refused the readiness write: %w", p.cfg.Version, err)
		}
		if serr := p.sleepOrDone(ctx, PollInterval); serr != nil {
			return fmt.Errorf("etcd %s: no write succeeded (last: %v): %w", p.cfg.Version, err, serr)
		}
	}
}

// SaveSnapshot makes etcd save a raft snapshot at or after the currently applied
// index and waits until its file is on disk. With a small --snapshot-count a few
// writes trigger it. After it the next etcd version replays no WAL entry written
// before this step reached its cluster version: etcd 3.7 cannot decode the v2-format
// requests that 3.4/3.5 used to set the cluster version, and panics on them.
//
// On a cluster of several a write can time out while another member restarts (a
// leader election): the writes go through WaitWrite, which retries such errors.
func (p *Process) SaveSnapshot(ctx context.Context, c *clientv3.Client) (uint64, error) {
	var st *clientv3.StatusResponse
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		st, err = c.Status(sctx, p.URL())
		cancel()
		if err == nil {
			break
		}
		if serr := p.sleepOrDone(ctx, PollInterval); serr != nil {
			return 0, fmt.Errorf("etcd %s status (last: %v): %w", p.cfg.Version, err, serr)
		}
	}
	want := st.RaftAppliedIndex
	if want == 0 { // servers older than 3.4 do not report it
		want = st.RaftIndex
	}
	for {
		idx, err := datadir.NewestSnapshotIndex(p.cfg.DataDir)
		if err != nil {
			return 0, err
		}
		if idx >= want {
			return idx, nil
		}
		if err := p.WaitWrite(ctx, c); err != nil {
			return 0, fmt.Errorf("etcd %s: write to trigger a snapshot: %w", p.cfg.Version, err)
		}
		if err := p.sleepOrDone(ctx, PollInterval); err != nil {
			return 0, fmt.Errorf("etcd %s: waiting for a snapshot at index %d (newest %d): %w", p.cfg.Version, want, idx, err)
		}
	}
}
