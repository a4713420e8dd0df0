//! The workers' shares of a scan: its files cut at row-group boundaries into byte ranges
//! (DataFusion's `PartitionedFile` ranges: a range reads the row groups whose first page lies
//! in it), balanced by the bytes of the columns the query reads.

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::prelude::SessionContext;

use crate::engine::prune;
use crate::engine::scans::Scan;

/// One worker's share.
#[derive(Debug, Clone)]
pub struct Task {
    pub files: Vec<PartitionedFile>,
    /// The planned bytes: the column chunks of its row groups that the query reads.
    pub bytes: u64,
}

impl Task {
    pub fn group(&self) -> FileGroup {
        FileGroup::new(self.files.clone())
    }

    /// The ETag of each of its files, by key, as the coordinator listed them.
    pub fn versions(&self) -> std::collections::BTreeMap<String, String> {
        self.files
            .iter()
            .filter_map(|f| {
                let key = crate::s3::key_of(&f.object_meta.location).ok()?;
                Some((key, f.object_meta.e_tag.clone()?))
            })
            .collect()
    }

    /// Halves the task, if it covers more than one unit of work.
    pub fn split(&self, units: &[Unit]) -> Option<(Task, Task)> {
        let mine: Vec<&Unit> = units.iter().filter(|u| self.covers(u)).collect();
        if mine.len() < 2 {
            return None;
        }
        let half = mine.len() / 2;
        let (a, b) = mine.split_at(half);
        Some((task_of(a, units), task_of(b, units)))
    }

    fn covers(&self, unit: &Unit) -> bool {
        self.files.iter().any(|f| {
            f.object_meta.location == unit.file.object_meta.location
                && f.range
                    .as_ref()
                    .is_none_or(|r| r.start <= unit.start && unit.start < r.end)
        })
    }
}

/// The smallest share: one row group of one file (or a whole file whose metadata is not at
/// hand).
#[derive(Debug, Clone)]
pub struct Unit {
    /// The file, without a range.
    file: PartitionedFile,
    /// Where its row group starts (0 for a file's first), and where the next starts (the
    /// file's size for its last).
    start: i64,
    end: i64,
    /// The bytes of the columns read.
    bytes: u64,
    /// Whether it is the file's only unit.
    whole: bool,
}

/// The units of `files`, in scan order, each counting the bytes `scan` reads of it: the
/// columns it reads, in the row groups its filter's statistics and its limit leave
/// ([`prune`]); a row group it leaves out counts nothing. `scan: None`: every column of
/// every row group.
pub fn units(ctx: &SessionContext, files: &[PartitionedFile], scan: Option<&Scan>) -> Vec<Unit> {
    let columns = scan.and_then(Scan::read_columns);
    let mut rows_before = 0i64;
    let mut out = Vec::new();
    for file in files {
        let plain = PartitionedFile {
            range: None,
            ..file.clone()
        };
        let size = file.object_meta.size as i64;
        let location = &file.object_meta.location;
        let Some(metadata) = prune::metadata(ctx, location) else {
            out.push(Unit {
                file: plain,
                start: 0,
                end: size,
                bytes: file.object_meta.size,
                whole: true,
            });
            continue;
        };
        let groups = metadata.row_groups();
        let reads = prune::reads(
            &metadata,
            scan,
            columns.as_ref(),
            location,
            &mut rows_before,
        );
        let starts: Vec<i64> = groups
            .iter()
            .map(|rg| {
                rg.columns().first().map_or(0, |c| {
                    c.dictionary_page_offset()
                        .unwrap_or_else(|| c.data_page_offset())
                })
            })
            .collect();
        for (i, bytes) in reads.into_iter().enumerate() {
            out.push(Unit {
                file: plain.clone(),
                start: if i == 0 { 0 } else { starts[i] },
                end: starts.get(i + 1).copied().unwrap_or(size),
                bytes: bytes.unwrap_or(0),
                whole: groups.len() == 1,
            });
        }
        if groups.is_empty() {
            out.push(Unit {
                file: plain,
                start: 0,
                end: size,
                bytes: 0,
                whole: true,
            });
        }
    }
    out
}

/// The planned bytes of `units`.
pub fn total(units: &[Unit]) -> u64 {
    units.iter().map(|u| u.bytes).sum()
}

/// `units` cut into at most `max_tasks` contiguous shares of about `bytes_per_task` each
/// (more each when that would take more than `max_tasks`), and no more shares than units
/// the scan reads.
pub fn plan(units: &[Unit], bytes_per_task: u64, max_tasks: u64) -> Vec<Task> {
    let total = total(units);
    let wanted = total
        .div_ceil(bytes_per_task.max(1))
        .clamp(1, max_tasks.max(1));
    // A unit the scan does not read (pruned, or past its limit) is no worker's reason to run.
    let reading = units.iter().filter(|u| u.bytes > 0).count() as u64;
    let count = wanted.min(reading).max(1);
    let mut tasks = Vec::with_capacity(count as usize);
    let mut current: Vec<&Unit> = Vec::new();
    let mut done = 0u64;
    for unit in units {
        current.push(unit);
        done += unit.bytes;
        let k = tasks.len() as u64 + 1;
        // Cut where the running total passes the k-th share.
        if k < count && done as u128 * count as u128 >= total as u128 * k as u128 {
            tasks.push(task_of(&current, units));
            current.clear();
        }
    }
    if !current.is_empty() || tasks.is_empty() {
        tasks.push(task_of(&current, units));
    }
    tasks
}

/// A task of consecutive units: one range per file (none for a whole file).
fn task_of(mine: &[&Unit], all: &[Unit]) -> Task {
    let mut files: Vec<PartitionedFile> = Vec::new();
    for unit in mine {
        let location = &unit.file.object_meta.location;
        match files.last_mut() {
            Some(last) if &last.object_meta.location == location => {
                if let Some(range) = last.range.as_mut() {
                    range.end = unit.end;
                }
            }
            _ => files.push(unit.file.clone().with_range(unit.start, unit.end)),
        }
    }
    // A range over all of a file's units is the whole file.
    for file in &mut files {
        let location = file.object_meta.location.clone();
        let count = all
            .iter()
            .filter(|u| u.file.object_meta.location == location)
            .count();
        let mine = mine
            .iter()
            .filter(|u| u.file.object_meta.location == location)
            .count();
        if count == mine
            || all
                .iter()
                .any(|u| u.whole && u.file.object_meta.location == location)
        {
            file.range = None;
        }
    }
    Task {
        files,
        bytes: mine.iter().map(|u| u.bytes).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(file: &str, start: i64, end: i64, bytes: u64, whole: bool) -> Unit {
        Unit {
            file: PartitionedFile::new(file.to_string(), 1000),
            start,
            end,
            bytes,
            whole,
        }
    }

    fn file_units(file: &str, groups: i64) -> Vec<Unit> {
        (0..groups)
            .map(|i| {
                unit(
                    file,
                    if i == 0 { 0 } else { i * 100 },
                    (i + 1) * 100,
                    10,
                    false,
                )
            })
            .map(|mut u| {
                if u.end == groups * 100 {
                    u.end = 1000;
                }
                u
            })
            .collect()
    }

    #[test]
    fn small_scans_are_one_task() {
        let units = file_units("a", 4);
        let tasks = plan(&units, 1000, 64);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].files.len(), 1);
        assert!(tasks[0].files[0].range.is_none(), "the whole file");
        assert_eq!(tasks[0].bytes, 40);
    }

    #[test]
    fn shares_are_contiguous_balanced_and_cover_every_unit_once() {
        let mut units = file_units("a", 5);
        units.extend(file_units("b", 3));
        let tasks = plan(&units, 20, 64);
        assert_eq!(tasks.len(), 4);
        assert!(tasks.iter().all(|t| t.bytes == 20), "{tasks:?}");
        for u in &units {
            assert_eq!(tasks.iter().filter(|t| t.covers(u)).count(), 1, "{u:?}");
        }
        // A file cut between tasks: the ranges meet, and the first starts at 0.
        let a: Vec<_> = tasks
            .iter()
            .flat_map(|t| t.files.iter())
            .filter(|f| f.object_meta.location.as_ref() == "a")
            .map(|f| f.range.clone().unwrap())
            .collect();
        assert_eq!(a.first().unwrap().start, 0);
        assert_eq!(a.last().unwrap().end, 1000);
        for w in a.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
    }

    #[test]
    fn max_tasks_caps_the_count_and_units_bound_it() {
        let units = file_units("a", 10);
        assert_eq!(plan(&units, 10, 3).len(), 3);
        assert_eq!(plan(&units, 1, 64).len(), 10);
    }

    #[test]
    fn units_the_scan_does_not_read_make_no_task() {
        let mut units = file_units("a", 10);
        for u in &mut units[1..] {
            u.bytes = 0;
        }
        units[0].bytes = 500;
        // Above the share, but one unit read: one task.
        assert_eq!(plan(&units, 100, 64).len(), 1);
        units[7].bytes = 500;
        let tasks = plan(&units, 100, 64);
        assert_eq!(tasks.len(), 2);
        assert!(tasks.iter().all(|t| t.bytes == 500), "{tasks:?}");
    }

    #[test]
    fn a_task_splits_until_one_unit_is_left() {
        let units = file_units("a", 3);
        let task = plan(&units, 1000, 1).remove(0);
        let (x, y) = task.split(&units).unwrap();
        assert_eq!(x.bytes + y.bytes, task.bytes);
        let (p, q) = y.split(&units).unwrap();
        assert!(p.split(&units).is_none() && q.split(&units).is_none());
        let whole = vec![unit("w", 0, 1000, 10, true)];
        assert!(plan(&whole, 1, 1)[0].split(&whole).is_none());
    }
}
