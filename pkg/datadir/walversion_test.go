package datadir

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
)

// TestSetClusterVersion: the entries etcd marshals to set the cluster version (a
// v3 ClusterVersionSet, 3.5+; the v2 PUT /0/version, 2.x-3.5, bare or inside V2)
// pass the byte filter that spares decoding every put, and a put does not count.
func TestSetClusterVersion(t *testing.T) {
	entry := func(m interface{ Marshal() ([]byte, error) }) raftpb.Entry {
		d, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raftpb.Entry{Type: raftpb.EntryNormal, Index: 7, Data: d}
	}
	for _, tc := range []struct {
		name string
		e    raftpb.Entry
		want string
	}{
		{"v3 ClusterVersionSet", entry(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 9}, ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: "3.7.0"}}), "3.7.0"},
		{"v2 request inside v3", entry(&pb.InternalRaftRequest{V2: &pb.Request{ID: 3, Method: "PUT", Path: "/0/version", Val: "3.4.0"}}), "3.4.0"},
		{"bare v2 request", entry(&pb.Request{ID: 3, Method: "PUT", Path: "/0/version", Val: "2.3.0"}), "2.3.0"},
		{"v3 put", entry(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("/0/version"), Value: []byte("3.9.0")}}), ""},
		{"v2 put elsewhere", entry(&pb.Request{ID: 3, Method: "PUT", Path: "/1/version", Val: "3.9.0"}), ""},
	} {
		if got := setClusterVersion(tc.e); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
