package e2e

import (
	"os"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

func clientFromKey() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithCountOnly()}
}
