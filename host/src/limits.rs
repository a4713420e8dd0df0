//! Per-function limits on a guest: its memory (`MemorySize`) and its tables. Growth past a
//! limit is refused (the guest sees `memory.grow` fail and its allocator reports out of
//! memory), and remembered, so the invocation is reported as `OutOfMemory` rather than as a
//! crash.

use wasmtime::ResourceLimiter;

/// Four times the ~30k elements of DataFusion's function table; each pooled table slot
/// reserves this many entries of address space.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 17;

/// A store's limiter: the memory cap, the peak reached and whether growth was refused.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    limit: usize,
    peak: usize,
    refused: Option<usize>,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            limit: limit_bytes,
            peak: 0,
            refused: None,
        }
    }

    /// The largest linear memory size reached, in bytes.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The size a refused growth asked for, if any since the last [`Self::reset_refused`].
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }

    pub fn reset_refused(&mut self) {
        self.refused = None;
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        self.peak = self.peak.max(desired).max(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_and_remembers_growth_past_the_limit() {
        let mut limiter = MemoryLimiter::new(100 << 20);
        assert!(limiter.memory_growing(0, 64 << 20, None).unwrap());
        assert!(!limiter.memory_growing(64 << 20, 128 << 20, None).unwrap());
        assert_eq!(limiter.refused(), Some(128 << 20));
        assert_eq!(limiter.peak(), 64 << 20);
        limiter.reset_refused();
        assert_eq!(limiter.refused(), None);
        assert!(
            !limiter
                .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
                .unwrap()
        );
    }
}
