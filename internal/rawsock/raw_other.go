//go:build !linux

package rawsock

import "syscall"

// Elsewhere Conn is its net.Conn: raw is false, so these are never called.
const raw = false

func rawRead(uintptr, []byte) (int, syscall.Errno)  { return 0, syscall.EINVAL }
func rawWrite(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.EINVAL }
