# etcd 3.3.27: github.com/coreos/etcd@v3.3.27+incompatible from the Go module proxy.
# Pins: the commits in glide.lock mapped to the nearest tag or pseudo-version the proxy serves.
# Format: hack/old-etcd/README.md.
github.com/coreos/etcd v3.3.27+incompatible
github.com/beorn7/perks v1.0.1
github.com/bgentry/speakeasy v0.1.0
github.com/coreos/go-semver v0.2.0
github.com/coreos/go-systemd v0.0.0-20190620071333-e64a0ec8b42a
github.com/coreos/pkg v0.0.0-20180928190104-399ea9e2e55f
github.com/dgrijalva/jwt-go v3.2.0+incompatible
github.com/dustin/go-humanize v1.0.0
github.com/ghodss/yaml v1.0.0
github.com/gogo/protobuf v1.2.1
github.com/golang/groupcache v0.0.0-20190702054246-869f871628b6
github.com/golang/protobuf v1.3.2
github.com/google/btree v0.0.0-20180813153112-4030bb1f1f0c
github.com/google/uuid v1.1.1
github.com/gorilla/websocket v0.0.0-20170926233335-4201258b820c
github.com/grpc-ecosystem/go-grpc-middleware v1.0.0
github.com/grpc-ecosystem/go-grpc-prometheus v1.2.0
github.com/grpc-ecosystem/grpc-gateway v1.3.1
github.com/inconshreveable/mousetrap v1.0.0
github.com/jonboulle/clockwork v0.1.0
github.com/json-iterator/go v1.1.12
github.com/mattn/go-runewidth v0.0.2
github.com/matttproud/golang_protobuf_extensions v1.0.2-0.20181231171920-c182affec369
github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd
github.com/modern-go/reflect2 v1.0.2
github.com/olekukonko/tablewriter v0.0.0-20170122224234-a0225b3f23b5
github.com/prometheus/client_golang v0.9.0-pre1.0.20180209125602-c332b6f63c06
github.com/prometheus/client_model v0.0.0-20170216185247-6f3806018612
github.com/prometheus/common v0.0.0-20180110214958-89604d197083
github.com/prometheus/procfs v0.0.0-20180125133057-cb4147076ac7
github.com/sirupsen/logrus v1.4.2
github.com/soheilhy/cmux v0.1.4
github.com/spf13/cobra v0.0.3
github.com/spf13/pflag v1.0.1
github.com/tmc/grpc-websocket-proxy v0.0.0-20170815181823-89b8d40f7ca8
github.com/urfave/cli v1.20.0
github.com/xiang90/probing v0.0.0-20160813154853-07dd2e8dfe18
go.uber.org/atomic v1.3.2
go.uber.org/multierr v1.1.0
go.uber.org/zap v1.10.0
golang.org/x/crypto v0.0.0-20190308221718-c2843e01d9a2
golang.org/x/net v0.0.0-20190813141303-74dc4d7220e7
golang.org/x/sys v0.0.0-20190813064441-fde4db37ae7a
golang.org/x/text v0.3.2
golang.org/x/time v0.0.0-20190308202827-9d24e82272b4
google.golang.org/genproto v0.0.0-20190819201941-24fa4b261c55
google.golang.org/grpc v1.23.1
gopkg.in/cheggaaa/pb.v1 v1.0.25
gopkg.in/yaml.v2 v2.2.2
sigs.k8s.io/yaml v1.1.0

# bbolt's module path is go.etcd.io/bbolt from v1.3.1 on; etcd 3.3 imports it as github.com/coreos/bbolt.
github.com/coreos/bbolt => go.etcd.io/bbolt v1.3.3
