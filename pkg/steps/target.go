package steps

import (
	"fmt"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// BundledTarget returns the bundled release that runs a TARGET_VERSION of v: v
// itself when it is bundled, else the newest bundled patch of v's minor. Patch
// releases of one minor share their data format ("within patch releases it is
// possible to upgrade and downgrade between arbitrary versions", the Kubernetes
// upgrade document), and etcd's own upgrade rule is to run a minor's newest patch,
// so a requested 3.4.18 runs 3.4.25 rather than the older 3.4.13. A minor with no
// bundled release is an error naming what is bundled.
func BundledTarget(v *version.Version, bundled []*version.Version) (*version.Version, error) {
	if containsVersion(bundled, v) {
		return v, nil
	}
	if b := newestOfMinor(bundled, versionfile.Major(v), versionfile.Minor(v)); b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("target version %s is not bundled, nor any etcd %s.x (bundled: %s): set TARGET_VERSION to one of them", v, versionfile.MinorString(v), joinVersions(bundled))
}
