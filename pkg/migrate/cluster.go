package migrate

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// readCluster reads the members the data records and decides whether this member is
// one of several: the data records several, or INITIAL_CLUSTER names several. An
// INITIAL_CLUSTER that was given must then name the members the data records.
func (c *Config) readCluster(st Status) error {
	named := initialClusterEntries(c.InitialCluster)
	c.MultiMember = len(named) > 1
	if st.Detected.Empty {
		return nil
	}
	if c.WALDir != "" && filepath.Clean(c.WALDir) != datadir.WALDir(c.DataDir) {
		if wals, _ := filepath.Glob(filepath.Join(c.WALDir, "*.wal")); len(wals) == 0 {
			return nil // not this member's WAL: checkWALDir refuses the run
		}
	}
	members, err := Members(c.DataDir, c.WALDir, st.Detected)
	if err != nil {
		return err
	}
	c.members = members
	c.MultiMember = c.MultiMember || len(members) > 1
	c.self = selfName(members, c.Name, c.InitialAdvertisePeerURLs)
	if !c.MultiMember || !c.InitialClusterGiven || len(members) == 0 {
		return nil
	}
	recorded := recordedEntries(members)
	if !slices.Equal(named, recorded) {
		return fmt.Errorf("INITIAL_CLUSTER (or --initial-cluster) names %s but the data dir %s records the members %s: list the cluster's members as the data records them (etcdctl member list), or leave INITIAL_CLUSTER unset",
			strings.Join(named, ","), c.DataDir, strings.Join(recorded, ","))
	}
	return nil
}

// Members are the cluster members the data in dataDir (WAL in walDir, "" for the
// data dir's own) records, as the etcd that wrote it goes by them: the backend's
// members bucket from 3.6 on, the v2 store's before (and for etcd2 data).
func Members(dataDir, walDir string, st datadir.State) ([]v3backend.Member, error) {
	if st.Storage == versionfile.StorageEtcd3 {
		if minor, ok := st.MinorFromData(); ok && etcdversion.Of(minor+".0").MembershipInBackend {
			o, err := datadir.ReadOffline(dataDir)
			return o.Members, err
		}
	}
	content, err := v2tov3.ReadV2Content(zap.NewNop(), dataDir, walDir, "/")
	return content.Members, err
}

// selfName is this member's name as the data records it: the one named like the
// member's --name, else the one with its advertised peer URL.
func selfName(ms []v3backend.Member, name, advertised string) string {
	for _, m := range ms {
		if m.Name == name {
			return name
		}
	}
	for _, m := range ms {
		for _, u := range m.PeerURLs {
			if slices.Contains(strings.Split(advertised, ","), u) {
				return m.Name
			}
		}
	}
	return name
}

// initialClusterEntries are the sorted name=URL entries of an initial cluster.
func initialClusterEntries(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// recordedEntries are the members as name=URL entries, sorted; a member that never
// started has no name yet.
func recordedEntries(ms []v3backend.Member) []string {
	var out []string
	for _, m := range ms {
		for _, u := range m.PeerURLs {
			out = append(out, m.Name+"="+u)
		}
	}
	sort.Strings(out)
	return out
}

// peerTLS is the member's peer certificate for asking the other members' peer URLs
// what they run (nil when no peer TLS is set).
func (c *Config) peerTLS() (*tls.Config, error) {
	if c.Creds == nil || c.Creds.Peer.Empty() {
		return nil, nil
	}
	p := c.Creds.Peer
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	cert, key := p.CertFile, p.KeyFile
	if p.ClientCertFile != "" {
		cert, key = p.ClientCertFile, p.ClientKeyFile
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("peer certificate %s: %w", cert, err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	if p.TrustedCAFile != "" {
		b, err := os.ReadFile(p.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("peer trusted CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(b)
	} else {
		cfg.InsecureSkipVerify = true // only to read /version; no secret goes out
	}
	return cfg, nil
}
