package memory

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pageOut asks the kernel to reclaim the resident pages of the store's
// memory-mapped files — tables, value log and write-ahead log (madvise
// MADV_PAGEOUT). badger maps them all; pages it touched while writing and
// compacting stay in the process's resident set until memory pressure,
// which on a small robot crowds out everything else. The advice never loses
// data: the mappings are shared file mappings, so a page is written back
// before it is dropped, and a later access faults it in again.
func pageOut(dir string) (pages int, err error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	prefix := dir + "/"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := fields[5]
		if !strings.HasPrefix(path, prefix) || !strings.HasSuffix(path, ".sst") && !strings.HasSuffix(path, ".vlog") && !strings.HasSuffix(path, ".mem") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// An unmapped range (a table deleted since we read the maps) fails
		// with ENOMEM; MADV_PAGEOUT is harmless on any other mapping.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno == 0 {
			pages += int((end - start) / uint64(os.Getpagesize()))
		}
	}
	return pages, sc.Err()
}
