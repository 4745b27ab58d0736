// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 at the version that the
// pinned k8s.io/kubernetes requires (so the API server and its storage agree).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
