package memory_test

import "golang.org/x/sys/unix"

// mountTmpfs mounts a tmpfs of the given options at dir (root only).
func mountTmpfs(dir, opts string) error {
	return unix.Mount("tmpfs", dir, "tmpfs", 0, opts)
}

func remountReadOnly(dir string) error {
	return unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
}

func unmount(dir string) { _ = unix.Unmount(dir, unix.MNT_DETACH) }
