package etcdtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// V2Node is one node of a v2 keyspace as DumpV2 records it.
type V2Node struct {
	Value                       string
	Dir                         bool
	CreatedIndex, ModifiedIndex uint64
	// TTL is the seconds left as the server rounds them up (0: no TTL); it can be
	// 0 or negative for a key that expired but that the leader has not yet swept.
	TTL int64
	// Expiration is the absolute expiry time (zero: no TTL). v2 TTLs are absolute
	// times, so a data dir's TTL keys expire on the wall clock even while no etcd
	// serves it.
	Expiration time.Time
}

// v2JSONNode is a node of the v2 keys API's JSON.
type v2JSONNode struct {
	Key           string        `json:"key"`
	Value         string        `json:"value"`
	Dir           bool          `json:"dir"`
	Nodes         []*v2JSONNode `json:"nodes"`
	CreatedIndex  uint64        `json:"createdIndex"`
	ModifiedIndex uint64        `json:"modifiedIndex"`
	TTL           int64         `json:"ttl"`
	Expiration    *time.Time    `json:"expiration"`
}

// DumpV2 reads the whole v2 keyspace (GET /v2/keys/?recursive=true&sorted=true)
// and flattens it: every key and every directory (Dir set) by its full path. The
// root itself and hidden nodes (names starting with "_", which the v2 API never
// lists) are not in it.
func DumpV2(t testing.TB, clientURL string) map[string]V2Node {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Minute}
	resp, err := hc.Get(clientURL + "/v2/keys/?recursive=true&sorted=true")
	if err != nil {
		t.Fatalf("v2 dump: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		t.Fatalf("v2 dump: %s: %s", resp.Status, b)
	}
	var body struct {
		Node v2JSONNode `json:"node"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("v2 dump: decode: %v", err)
	}
	out := map[string]V2Node{}
	var walk func(n *v2JSONNode)
	walk = func(n *v2JSONNode) {
		if n.Key != "" {
			if _, dup := out[n.Key]; dup {
				t.Fatalf("v2 dump: key %q twice", n.Key)
			}
			v := V2Node{Value: n.Value, Dir: n.Dir, CreatedIndex: n.CreatedIndex, ModifiedIndex: n.ModifiedIndex, TTL: n.TTL}
			if n.Expiration != nil {
				v.Expiration = *n.Expiration
			}
			out[n.Key] = v
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	walk(&body.Node)
	return out
}

// ServeV2 is Serve with the v2 API enabled (--enable-v2=true), for etcd2 data on
// etcd 3.4/3.5: ready once GET /v2/keys/ answers 200 too. Client is a v3 client as
// in Serve; the server is stopped at test cleanup.
func ServeV2(t testing.TB, binDir, version, dataDir string) *Server {
	t.Helper()
	s := serve(t, binDir, version, dataDir, clientv3.Config{}, true)
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(s.ClientURL + "/v2/keys/")
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /v2/keys/: %s", resp.Status)
		}
	}
	if err != nil {
		t.Fatalf("etcd %s on %s not ready for v2: %v\n%s", version, dataDir, err, s.Log)
	}
	return s
}

// DiffV3V2 compares the v2 keyspace a rollback to etcd2 left with the v3 one it
// came from: every v3 key is a v2 key with the same value, createdIndex =
// create_revision and modifiedIndex = mod_revision; a leased key expires its lease's
// TTL after the conversion, which ran between from and to (less early, as a lease
// checkpoint may have recorded less; plus late), and no other key has a TTL; no
// other key exists. It returns the sorted differences, the v3 keys missing from
// v2, the keys compared and the TTLs that matched.
func DiffV3V2(v3 Dump, v2 map[string]V2Node, from, to time.Time, early, late time.Duration) (diffs []string, lost, keys, ttls int) {
	for k, kv := range v3.Keys {
		n, ok := v2[k]
		switch {
		case !ok || n.Dir:
			lost++
			diffs = append(diffs, fmt.Sprintf("key %q lost (dir %v)", k, n.Dir))
			continue
		case n.Value != kv.Value || n.CreatedIndex != uint64(kv.CreateRevision) || n.ModifiedIndex != uint64(kv.ModRevision):
			diffs = append(diffs, fmt.Sprintf("key %q: v3 create=%d mod=%d, v2 created=%d modified=%d, values equal %v",
				k, kv.CreateRevision, kv.ModRevision, n.CreatedIndex, n.ModifiedIndex, n.Value == kv.Value))
		case kv.Lease == 0 && !n.Expiration.IsZero():
			diffs = append(diffs, fmt.Sprintf("key %q has no lease but a TTL of %ds", k, n.TTL))
		case kv.Lease != 0:
			ttl, known := v3.LeaseTTL[kv.Lease]
			granted := time.Duration(ttl) * time.Second
			lo, hi := from.Add(granted-early), to.Add(granted+late)
			if !known || n.Expiration.IsZero() || n.Expiration.Before(lo) || n.Expiration.After(hi) {
				diffs = append(diffs, fmt.Sprintf("key %q: lease %x of %v (known %v), v2 expiration %v, want between %v and %v", k, kv.Lease, granted, known, n.Expiration, lo, hi))
			} else {
				ttls++
			}
		}
		keys++
	}
	for k, n := range v2 {
		if _, ok := v3.Keys[k]; !ok && !n.Dir {
			diffs = append(diffs, fmt.Sprintf("key %q appeared", k))
		}
	}
	sort.Strings(diffs)
	return diffs, lost, keys, ttls
}

// LogTime is the time of the first line of a migrate log (slog text) holding msg.
func LogTime(t testing.TB, log, msg string) time.Time {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		if f := strings.Fields(l); strings.Contains(l, msg) && len(f) > 0 {
			if ts, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time=")); err == nil {
				return ts
			}
		}
	}
	t.Fatalf("no log line %s:\n%s", msg, log)
	return time.Time{}
}
