//go:build tools

// Package tools pins the kube-score command that build.sh compiles.
package tools

import _ "github.com/zegl/kube-score/cmd/kube-score"
