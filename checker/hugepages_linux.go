package checker

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel to back a large slice's memory with huge
// pages where it allows them (transparent huge pages in "madvise" mode):
// the ops of a million-operation history are 200 MB that are otherwise
// faulted in 4 KB at a time, which made filling them most of the loader's
// own time. The advice is only advice: when the kernel declines, nothing
// changes but the speed.
func adviseHuge[T any](s []T) {
	size := uintptr(cap(s)) * unsafe.Sizeof(*new(T))
	if size < 4<<20 {
		return
	}
	const page = 4096
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s[:cap(s)]))), size)
	b = b[(page-uintptr(unsafe.Pointer(&b[0]))%page)%page:]
	b = b[:len(b)&^(page-1)]
	_ = syscall.Madvise(b, madvHugepage)
}

// madvHugepage is MADV_HUGEPAGE (not in package syscall).
const madvHugepage = 14
