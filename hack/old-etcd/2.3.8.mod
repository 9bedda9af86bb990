# etcd 2.3.8: github.com/coreos/etcd@v2.3.8+incompatible from the Go module proxy.
# Pins: none needed. etcd 2.3.8 carries its dependencies in Godeps/_workspace with rewritten
# import paths, and that directory is inside the module zip.
# Format: hack/old-etcd/README.md.
github.com/coreos/etcd v2.3.8+incompatible

# The ugorji codec of this era builds a base64 alphabet with "_" twice (Godeps/_workspace/.../codec/gen.go);
# encoding/base64.NewEncoding panics on duplicate symbols ("encoding alphabet includes
# duplicate symbols" in current Go) at package init, so every etcd binary would die at
# start. Only the code generator (codecgen) uses that encoding, to name generated
# functions, and etcd never runs the generator; any second, distinct symbol will do.
edit github.com/coreos/etcd Godeps/_workspace/src/github.com/ugorji/go/codec/gen.go | 0123456789__") | 0123456789_.")
