#!/bin/sh
# /usr/local/bin/migrate-if-needed.sh, for the Kubernetes GCE static pod manifest
# (cluster/gce/manifests/etcd.manifest), whose command runs it before
# `exec /usr/local/bin/etcd ...`: migrate the data dir to TARGET_VERSION/TARGET_STORAGE
# and exit with migrate's exit code instead of exec'ing etcd. migrate reads every
# setting the manifest gives (DATA_DIRECTORY, TARGET_*, ETCD_HOSTNAME, INITIAL_CLUSTER,
# LISTEN_PEER_URLS, INITIAL_ADVERTISE_PEER_URLS, ETCD_CREDS) from the environment itself.
exec /usr/local/bin/migrate --exec=false "$@"
