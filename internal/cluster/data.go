package cluster

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Populate writes keys keys under /registry/ through the cluster: Kubernetes-like
// JSON values, every 20th key an event attached to one of 10 leases (TTL 3600 s),
// then about 10% overwritten (some twice), about 8% deleted, one compaction at the
// revision the puts reached (so history remains after it).
func (c *Cluster) Populate(keys int) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var leases []clientv3.LeaseID
	for i := 0; i < 10; i++ {
		l, err := cl.Grant(ctx, 3600)
		if err != nil {
			return fmt.Errorf("grant lease: %w", err)
		}
		leases = append(leases, l.ID)
	}
	names := make([]string, keys)
	for i := range names {
		if i%20 == 7 {
			names[i] = fmt.Sprintf("/registry/events/ns-%d/event-%d", i%13, i)
		} else {
			names[i] = fmt.Sprintf("/registry/pods/ns-%d/pod-%d", i%17, i)
		}
	}
	// Puts from a few writers at once: a 3-member cluster fsyncs every entry on
	// every member, one writer alone would take most of the test.
	put := func(idx []int, phase int) error {
		const workers = 8
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			go func() {
				errs <- func() error {
					rng := rand.New(rand.NewSource(int64(w*1000 + phase)))
					for j := w; j < len(idx); j += workers {
						i := idx[j]
						var opts []clientv3.OpOption
						if strings.Contains(names[i], "/events/") {
							opts = append(opts, clientv3.WithLease(leases[(i/20)%len(leases)]))
						}
						if _, err := cl.Put(ctx, names[i], value(rng, names[i]), opts...); err != nil {
							return fmt.Errorf("put %s: %w", names[i], err)
						}
					}
					return nil
				}()
			}()
		}
		var first error
		for w := 0; w < workers; w++ {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	var all, over, del []int
	for i := range names {
		all = append(all, i)
		if strings.Contains(names[i], "/events/") {
			continue
		}
		switch {
		case i%10 == 3:
			over = append(over, i)
		case i%12 == 5:
			del = append(del, i)
		}
	}
	if err := put(all, 0); err != nil {
		return err
	}
	resp, err := cl.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if err := put(over, 1); err != nil {
		return err
	}
	var twice []int
	for _, i := range over {
		if i%2 == 1 {
			twice = append(twice, i)
		}
	}
	if err := put(twice, 2); err != nil {
		return err
	}
	for _, i := range del {
		if _, err := cl.Delete(ctx, names[i]); err != nil {
			return fmt.Errorf("delete %s: %w", names[i], err)
		}
	}
	if _, err := cl.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact at %d: %w", resp.Header.Revision, err)
	}
	return nil
}

// value is a Kubernetes-like JSON object of 300 to 900 bytes.
func value(rng *rand.Rand, k string) string {
	const filler = "spec: containers image registry.k8s.io/pause:3.9 resources requests cpu 100m memory 64Mi; "
	n := 300 + rng.Intn(600)
	pad := strings.Repeat(filler, n/len(filler)+1)[:n]
	return fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"uid":"%016x"},"spec":%q}`, k, rng.Uint64(), pad)
}
