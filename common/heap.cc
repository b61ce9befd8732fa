#include "common/heap.h"

#include <malloc.h>

namespace yard {

void RetainFreedHeap() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace yard
