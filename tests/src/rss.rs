//! The resident memory a piece of work adds to this process at its peak (Linux `/proc`):
//! [`mark`] resets the process's high-water mark and notes its size; [`Mark::peak_added_mb`]
//! is the high-water mark since, less that size. The Python peers measure DuckDB the same way
//! (`peers/peers.py`), so the two figures compare.

/// Where a piece of work started.
pub struct Mark {
    before_kb: u64,
}

/// Resets the high-water mark (`clear_refs` 5) and notes the resident size; `None` where
/// `/proc` does not allow it.
pub fn mark() -> Option<Mark> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    Some(Mark {
        before_kb: status_kb("VmRSS:")?,
    })
}

impl Mark {
    /// MB added at the peak since [`mark`].
    pub fn peak_added_mb(&self) -> Option<f64> {
        let peak = status_kb("VmHWM:")?;
        Some(peak.saturating_sub(self.before_kb) as f64 / 1024.0)
    }
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    /// A 64 MiB buffer touched between the mark and the reading shows as at least that.
    #[test]
    fn a_touched_buffer_shows_in_the_peak() {
        let Some(mark) = super::mark() else {
            return; // no /proc here
        };
        let buffer = vec![1u8; 64 << 20];
        std::hint::black_box(&buffer);
        let added = mark.peak_added_mb().unwrap();
        drop(buffer);
        assert!(added >= 60.0, "{added} MB");
    }
}
