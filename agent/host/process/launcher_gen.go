package process

// The launcher binaries embedded by launcher_embed_*.go, built from
// internal/launcher with the flags that make the build reproducible
// (TestEmbeddedLauncherIsItsSource rebuilds and compares them), and the
// hash of the sources they were built from.
//go:generate sh -c "CGO_ENABLED=0 GOFLAGS= GOEXPERIMENT= GOOS=linux GOARCH=amd64 GOAMD64=v1 go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o internal/launcher/bin/linux-amd64 ./internal/launcher"
//go:generate sh -c "CGO_ENABLED=0 GOFLAGS= GOEXPERIMENT= GOOS=linux GOARCH=arm64 GOARM64=v8.0 go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o internal/launcher/bin/linux-arm64 ./internal/launcher"
//go:generate sh -c "ls internal/launch/*.go internal/launcher/*.go | grep -v _test.go | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1 > internal/launcher/bin/sources.sha256"
