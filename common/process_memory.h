// Process-wide memory policy of the serving processes: freed message buffers are kept
// for reuse.
#ifndef SWITCHYARD_COMMON_PROCESS_MEMORY_H_
#define SWITCHYARD_COMMON_PROCESS_MEMORY_H_

namespace yard {

// Keeps freed memory mapped for reuse. A worker receives and encodes a dispatch or a
// combine of up to tens of MiB per layer and step; mapped afresh, each 4 KiB page of
// it costs a first-touch fault (~17 µs on this VM), several times the copy itself.
// So: no block gets its own mmap (M_MMAP_MAX 0; glibc would map anything above 32 MiB
// afresh whatever the threshold), one arena (a thread's arena is capped at 64 MiB
// heaps, which are unmapped again as messages come and go), and the heap's top is
// trimmed only beyond 1 GiB free. Measured with bench/dataplane_bench: 512×7168 with
// 8 in flight 0.5 → 1.9 GB/s, a 4096×7168 round trip 590 → 56 ms.
// Call once, first thing in main. Costs: freed memory stays with the process (up to
// the high-water mark of its buffers), and every thread shares one malloc lock.
void RetainFreedHeap();

}  // namespace yard

#endif  // SWITCHYARD_COMMON_PROCESS_MEMORY_H_
