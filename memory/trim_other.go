//go:build !linux

package memory

// pageOut is a no-op where the kernel offers no MADV_PAGEOUT.
func pageOut(dir string) (int, error) { return 0, nil }
