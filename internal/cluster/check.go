package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
)

// Client is a client of m alone (its own client URL): serializable reads through
// it show m's own copy of the data.
func (m *Member) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// Client is a client with every member's client URL: it goes to whichever answers.
func (c *Cluster) Client() (*clientv3.Client, error) {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func (m *Member) status(ctx context.Context) (*clientv3.StatusResponse, error) {
	cl, err := m.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Status(ctx, m.ClientURL)
}

// memberID is m's own member ID as its status reports it.
func (m *Member) memberID(ctx context.Context) (uint64, error) {
	st, err := m.status(ctx)
	if err != nil {
		return 0, err
	}
	return st.Header.MemberId, nil
}

// Dump reads m's own copy of the keyspace and leases: a SERIALIZABLE range read
// answered by m from its local store (etcdtest's oracle, not pkg/keyspace). The
// lease TTLs come from TimeToLive, which etcd answers through the leader. The
// lockstep barrier's "walk done" leases hold no key and expire by themselves: they
// are counted in DoneLeases, any other barrier lease in BarrierLeases; neither is
// listed.
func (c *Cluster) Dump(t testing.TB, m *Member) etcdtest.Dump {
	t.Helper()
	cl, err := m.Client()
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	defer cl.Close()
	d := etcdtest.DumpClient(t, cl, clientv3.WithSerializable())
	for id, keys := range d.Leases {
		if lockstep.IsBarrierLease(id) && len(keys) == 0 {
			if lockstep.IsDoneLease(id) {
				d.DoneLeases++
			} else {
				d.BarrierLeases++
			}
			delete(d.Leases, id)
			delete(d.LeaseTTL, id)
		}
	}
	return d
}

// WaitSettled waits until every member's local store is at the same revision
// (serializable reads): a member that applied less would dump less.
func (c *Cluster) WaitSettled(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		revs := map[string]int64{}
		var err error
		for _, m := range c.Members {
			var rev int64
			if rev, err = m.localRevision(ctx); err != nil {
				err = fmt.Errorf("%s: %w", m.Name, err)
				break
			}
			revs[m.Name] = rev
		}
		if err == nil {
			same := true
			for _, r := range revs {
				same = same && r == revs[c.Members[0].Name]
			}
			if same {
				return nil
			}
			err = fmt.Errorf("members at different revisions: %v", revs)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not settled within %v: %w", timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (m *Member) localRevision(ctx context.Context) (int64, error) {
	cl, err := m.Client()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := cl.Get(ctx, "\x00", clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Identity is what a member says about the cluster: the cluster ID, its own member
// ID and every member's ID by name.
type Identity struct {
	ClusterID uint64
	MemberID  uint64
	Members   map[string]uint64
	// PeerURLs by member name.
	PeerURLs map[string][]string
}

// Identity asks m for the member list and its own status.
func (c *Cluster) Identity(t testing.TB, m *Member) Identity {
	t.Helper()
	cl, err := m.Client()
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ml, err := cl.MemberList(ctx)
	if err != nil {
		t.Fatalf("%s: member list: %v", m.Name, err)
	}
	st, err := cl.Status(ctx, m.ClientURL)
	if err != nil {
		t.Fatalf("%s: status: %v", m.Name, err)
	}
	id := Identity{ClusterID: ml.Header.ClusterId, MemberID: st.Header.MemberId, Members: map[string]uint64{}, PeerURLs: map[string][]string{}}
	for _, mm := range ml.Members {
		id.Members[mm.Name] = mm.ID
		urls := append([]string(nil), mm.PeerURLs...)
		sort.Strings(urls)
		id.PeerURLs[mm.Name] = urls
	}
	return id
}

// Versions is a member's GET /version answer.
type Versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	Storage string `json:"storage"`
}

// Versions asks m's client URL for /version.
func (m *Member) Versions(ctx context.Context) (Versions, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/version", nil)
	if err != nil {
		return Versions{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Versions{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return Versions{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Versions{}, fmt.Errorf("GET %s/version: %s", m.ClientURL, resp.Status)
	}
	var v Versions
	if err := json.Unmarshal(body, &v); err != nil {
		return Versions{}, fmt.Errorf("GET %s/version: %w", m.ClientURL, err)
	}
	return v, nil
}

// WaitServer waits until m's /version names server version, at most timeout.
func (m *Member) WaitServer(version string, timeout time.Duration) (Versions, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, err := m.Versions(context.Background())
		if err == nil && v.Server == version {
			return v, nil
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("%s: not serving etcd %s within %v (last %+v, %v)", m.Name, version, timeout, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitClusterVersion waits until every member reports cluster version want.
func (c *Cluster) WaitClusterVersion(want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var bad error
		for _, m := range c.Members {
			v, err := m.Versions(context.Background())
			if err == nil && v.Cluster != want {
				err = fmt.Errorf("cluster version %q", v.Cluster)
			}
			if err != nil {
				bad = fmt.Errorf("%s: %w", m.Name, err)
				break
			}
		}
		if bad == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster version not %s within %v: %w", want, timeout, bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
