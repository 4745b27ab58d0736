module slam.dev/loadgen

go 1.25

require golang.org/x/sys v0.35.0
