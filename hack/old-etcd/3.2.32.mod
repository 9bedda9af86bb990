# etcd 3.2.32: github.com/coreos/etcd@v3.2.32+incompatible from the Go module proxy.
# Pins: the commits in glide.lock mapped to the nearest tag or pseudo-version the proxy serves.
# Format: hack/old-etcd/README.md.
github.com/coreos/etcd v3.2.32+incompatible
github.com/beorn7/perks v0.0.0-20160804104726-4c0e84591b9a
github.com/bgentry/speakeasy v0.1.0
github.com/coreos/bbolt v1.3.1-coreos.5
github.com/coreos/go-semver v0.2.0
github.com/coreos/go-systemd v0.0.0-20161114122254-48702e0da86b
github.com/coreos/pkg v0.0.0-20160727233714-3ac0863d7acf
github.com/dgrijalva/jwt-go v3.0.0+incompatible
github.com/dustin/go-humanize v0.0.0-20171111073723-bb3d318650d4
github.com/ghodss/yaml v1.0.0
github.com/gogo/protobuf v0.0.0-20170307180453-100ba4e88506
github.com/golang/groupcache v0.0.0-20160516000752-02826c3e7903
github.com/golang/protobuf v1.0.0
github.com/google/btree v0.0.0-20180124185431-e89373fe6b4a
github.com/grpc-ecosystem/go-grpc-prometheus v0.0.0-20160910222444-6b7015e65d36
github.com/grpc-ecosystem/grpc-gateway v1.3.0
github.com/inconshreveable/mousetrap v1.0.0
github.com/jonboulle/clockwork v0.1.0
github.com/mattn/go-runewidth v0.0.2
github.com/matttproud/golang_protobuf_extensions v1.0.1
github.com/olekukonko/tablewriter v0.0.0-20170122224234-a0225b3f23b5
github.com/prometheus/client_golang v0.8.0
github.com/prometheus/client_model v0.0.0-20170216185247-6f3806018612
github.com/prometheus/common v0.0.0-20180110214958-89604d197083
github.com/prometheus/procfs v0.0.0-20180125133057-cb4147076ac7
github.com/spf13/cobra v0.0.1
github.com/spf13/pflag v1.0.0
github.com/ugorji/go v0.0.0-20170107133203-ded73eae5db7
github.com/urfave/cli v1.18.0
github.com/xiang90/probing v0.0.0-20160813154853-07dd2e8dfe18
go.uber.org/atomic v1.3.2
go.uber.org/multierr v1.1.0
go.uber.org/zap v1.7.1
golang.org/x/crypto v0.0.0-20170930174604-9419663f5a44
golang.org/x/net v0.0.0-20180218175443-cbe0f9307d01
golang.org/x/sys v0.0.0-20180202135801-37707fdb30a5
golang.org/x/text v0.3.0
golang.org/x/time v0.0.0-20180412165947-fbb02b2291d2
google.golang.org/genproto v0.0.0-20171002232614-f676e0f3ac63
google.golang.org/grpc v1.7.5
gopkg.in/cheggaaa/pb.v1 v1.0.2
gopkg.in/yaml.v2 v2.0.0-20170407172122-cd8b52f8269e

# etcd imports cmux by its old path; the project moved to github.com/soheilhy/cmux
# (same package, same API).
github.com/cockroachdb/cmux => github.com/soheilhy/cmux v0.1.4

# The ugorji codec of this era builds a base64 alphabet with "_" twice (gen.go);
# encoding/base64.NewEncoding panics on duplicate symbols ("encoding alphabet includes
# duplicate symbols" in current Go) at package init, so every etcd binary would die at
# start. Only the code generator (codecgen) uses that encoding, to name generated
# functions, and etcd never runs the generator; any second, distinct symbol will do.
edit github.com/ugorji/go codec/gen.go | 0123456789__") | 0123456789_.")
