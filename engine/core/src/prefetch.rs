//! Cache-line prefetch hints for walks over scattered state (the ADL rankings' holders).
//!
//! A hint changes nothing a program can observe but timing: it reads no value, cannot fault on
//! any address, and the results of the code around it are the same with or without it.

/// Asks the CPU to bring the cache line holding `p` closer (a no-op off x86_64).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint: it dereferences nothing and cannot fault, whatever the
    // address; SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
