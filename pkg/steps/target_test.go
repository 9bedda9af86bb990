package steps

import (
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

func TestBundledTarget(t *testing.T) {
	bundled, err := ParseBundled("2.2.5,2.3.8,3.0.17,3.1.20,3.4.13,3.4.25,3.5.35,3.6.16,3.7.3")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want, err string }{
		{in: "3.5.35", want: "3.5.35"},
		{in: "3.4.13", want: "3.4.13"}, // bundled: runs as asked, not the newer 3.4.25
		{in: "3.5.17", want: "3.5.35"},
		{in: "3.4.18", want: "3.4.25"},
		{in: "3.4.0", want: "3.4.25"},
		{in: "2.2.1", want: "2.2.5"},
		{in: "3.0.17", want: "3.0.17"},
		{in: "3.1.12", want: "3.1.20"},
		{in: "3.7.99", want: "3.7.3"},
		{in: "3.8.0", err: "target version 3.8.0 is not bundled, nor any etcd 3.8.x (bundled: 2.2.5, 2.3.8, 3.0.17, 3.1.20, 3.4.13, 3.4.25, 3.5.35, 3.6.16, 3.7.3): set TARGET_VERSION to one of them"},
		{in: "3.3.27", err: "target version 3.3.27 is not bundled, nor any etcd 3.3.x"},
	} {
		got, err := BundledTarget(versionfile.MustVersion(tc.in), bundled)
		if tc.err != "" {
			if err == nil || len(err.Error()) < len(tc.err) || err.Error()[:len(tc.err)] != tc.err {
				t.Errorf("%s: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%s: = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
