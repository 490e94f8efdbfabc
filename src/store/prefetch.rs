//! A hint to the CPU to start loading a cache line that a read will need soon. A batch's
//! lookups each follow a chain of dependent loads (index slot, record or memo); over a data set
//! larger than the caches each link is a trip to memory, one after another. Touching every
//! lookup's chain first, in a short loop whose iterations do not depend on each other, lets
//! those trips overlap; the reads proper then find the lines in the cache.

/// Starts loading the cache line holding `at` (a no-op where there is no prefetch
/// instruction). Never faults, whatever the address: a hint, not a load.
#[inline(always)]
pub fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, which the instruction needs, is part of every x86-64; a prefetch reads
    // nothing the program sees and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
