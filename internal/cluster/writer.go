package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Writer puts keys continuously through a client with every member's client URL
// and records each acknowledged put: Verify then checks none was lost.
type Writer struct {
	prefix string
	cl     *clientv3.Client
	stop   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	acked   map[string]string
	failed  int
	lastAck time.Time
	maxGap  time.Duration
}

// StartWriter starts a writer of keys under prefix (it must not hold other keys).
func (c *Cluster) StartWriter(t testing.TB, prefix string) *Writer {
	t.Helper()
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	w := &Writer{prefix: prefix, cl: cl, stop: make(chan struct{}), done: make(chan struct{}), acked: map[string]string{}, lastAck: time.Now()}
	go w.run()
	t.Cleanup(func() { w.Stop() })
	return w
}

func (w *Writer) run() {
	defer close(w.done)
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		default:
		}
		k, v := fmt.Sprintf("%s%08d", w.prefix, i), fmt.Sprintf(`{"seq":%d,"at":%q}`, i, time.Now().Format(time.RFC3339Nano))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := w.cl.Put(ctx, k, v)
		cancel()
		w.mu.Lock()
		if err != nil {
			// Unacknowledged: it may or may not have been applied.
			w.failed++
		} else {
			now := time.Now()
			if gap := now.Sub(w.lastAck); gap > w.maxGap {
				w.maxGap = gap
			}
			w.lastAck = now
			w.acked[k] = v
		}
		w.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops writing (idempotent) and returns the number of acknowledged and of
// failed puts, and the longest time between two acknowledged puts.
func (w *Writer) Stop() (acked, failed int, maxGap time.Duration) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), w.failed, w.maxGap
}

// Acked is the number of acknowledged puts so far.
func (w *Writer) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// Verify stops the writer and checks every acknowledged put through a
// linearizable read of c: present with its value. It returns the differences, at
// most max of them.
func (w *Writer) Verify(t testing.TB, c *Cluster, max int) []string {
	t.Helper()
	w.Stop()
	defer w.cl.Close()
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cl.Get(ctx, w.prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("writer verify: %v", err)
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	var diffs []string
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range w.acked {
		if g, ok := got[k]; !ok || g != v {
			if len(diffs) < max {
				diffs = append(diffs, fmt.Sprintf("acknowledged put %s lost (present %v)", k, ok))
			}
		}
	}
	return diffs
}
