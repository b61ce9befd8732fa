// Heap tuning for processes that allocate and free large message buffers every step.
#ifndef SWITCHYARD_COMMON_HEAP_H_
#define SWITCHYARD_COMMON_HEAP_H_

namespace yard {

// Keeps freed memory mapped for reuse: blocks up to 32 MiB (glibc's largest mmap
// threshold) come from the heap instead of a fresh mmap each, and the heap's top is
// trimmed only beyond 1 GiB free. A worker receives and encodes a dispatch or combine
// of up to a few MiB per layer and step; mapped afresh, each 4 KiB page of it costs a
// first-touch fault (~17 µs on a VM), several times the time of the copy itself.
// Call once, first thing in main. Costs up to ~1 GiB of retained, reusable memory.
void RetainFreedHeap();

}  // namespace yard

#endif  // SWITCHYARD_COMMON_HEAP_H_
