package migrate

import (
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

func TestClusterEntries(t *testing.T) {
	ms := []v3backend.Member{
		{ID: 2, Name: "b", PeerURLs: []string{"https://10.0.0.2:2380"}},
		{ID: 1, Name: "a", PeerURLs: []string{"https://10.0.0.1:2380", "https://a:2380"}},
		{ID: 3, PeerURLs: []string{"https://10.0.0.3:2380"}}, // added, never started
	}
	got := strings.Join(recordedEntries(ms), ",")
	want := "=https://10.0.0.3:2380,a=https://10.0.0.1:2380,a=https://a:2380,b=https://10.0.0.2:2380"
	if got != want {
		t.Errorf("recordedEntries = %s, want %s", got, want)
	}
	if got := strings.Join(initialClusterEntries(" b=https://10.0.0.2:2380,a=https://10.0.0.1:2380 ,"), ","); got != "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380" {
		t.Errorf("initialClusterEntries = %s", got)
	}
	for _, tc := range []struct{ name, advertised, want string }{
		{"a", "https://x:2380", "a"},                           // by name
		{"etcd-host", "https://10.0.0.2:2380", "b"},            // by advertised peer URL
		{"etcd-host", "https://9.9.9.9:2380", "etcd-host"},     // neither: as given
		{"etcd-host", "https://9.9.9.9:1,https://a:2380", "a"}, // one of several URLs
	} {
		if got := selfName(ms, tc.name, tc.advertised); got != tc.want {
			t.Errorf("selfName(%s, %s) = %s, want %s", tc.name, tc.advertised, got, tc.want)
		}
	}
}
