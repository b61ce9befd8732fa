#include "common/process_memory.h"

#include <malloc.h>

namespace yard {

void RetainFreedHeap() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_ARENA_MAX, 1);
}

}  // namespace yard
