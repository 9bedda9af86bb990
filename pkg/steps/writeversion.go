package steps

import (
	"context"
	"fmt"

	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// WriteVersion only records the target in version.txt: the data needs no change
// (empty data dir, or a patch-only difference within one minor).
type WriteVersion struct{ steprun.Move }

func (WriteVersion) Kind() steprun.Kind { return steprun.KindWriteVersion }

func (s WriteVersion) String() string {
	if s.From.Version == nil {
		return fmt.Sprintf("%s (empty data dir) -> %s", s.Kind(), s.To)
	}
	return fmt.Sprintf("%s %s -> %s", s.Kind(), s.From, s.To)
}

func (WriteVersion) Binaries(string) []string                         { return nil }
func (WriteVersion) Space(int64) int64                                { return 0 }
func (WriteVersion) Run(context.Context, *steprun.Env) ([]any, error) { return nil, nil }
