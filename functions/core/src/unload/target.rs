//! Where one `COPY INTO` writes, decided before any request: its directory or raw key, the
//! names of its files, its manifest, and the keys its credentials may create.

use super::format::OutputFormat;
use super::names;
use super::statement::CopyInto;
use crate::access::documents::WriteGrant;
use crate::error::Result;

/// The files of one statement (or, fanned out, of one task: `part`).
#[derive(Debug, Clone)]
pub struct Target {
    /// Stage-relative directory: empty or ending in `/`.
    pub dir: String,
    /// `USE_RAW_PATH = TRUE`: the one stage-relative key written.
    pub raw: Option<String>,
    pub query_id: String,
    /// Whether file names carry the query id (`INCLUDE_QUERY_ID`).
    pub include_query_id: bool,
    /// Databend's `<part>` in a name: the writer's number (0 in one invocation).
    pub part: u32,
    /// `None`: one file (`SINGLE = TRUE`, `USE_RAW_PATH = TRUE`).
    pub max_file_size: Option<u64>,
    /// `OVERWRITE = TRUE`: the raw key may be replaced.
    pub replace: bool,
    pub partitioned: bool,
    pub format: OutputFormat,
    pub extension: String,
}

impl Target {
    pub fn new(copy: &CopyInto, query_id: String, part: u32) -> Result<Self> {
        let o = &copy.options;
        let (dir, raw) = if o.use_raw_path {
            let key = names::relative(&copy.stage, &copy.path)?.to_string();
            let dir = key
                .rsplit_once('/')
                .map_or(String::new(), |(d, _)| format!("{d}/"));
            (dir, Some(key))
        } else {
            (names::target_dir(&copy.stage, &copy.path)?, None)
        };
        let single = o.single || raw.is_some();
        Ok(Self {
            dir,
            raw,
            query_id,
            include_query_id: o.include_query_id,
            part,
            max_file_size: (!single).then_some(o.max_file_size),
            replace: o.overwrite,
            partitioned: copy.partition_by.is_some(),
            extension: names::extension(&copy.format),
            format: copy.format.clone(),
        })
    }

    /// The stage-relative name of file `seq` of the partition directory `partition` (empty
    /// when not partitioned).
    pub fn file_name(&self, partition: &str, seq: u32) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let id = self.include_query_id.then_some(self.query_id.as_str());
        names::data_file(
            &format!("{}{partition}", self.dir),
            id,
            self.part,
            seq,
            &self.extension,
        )
    }

    /// The stage-relative name of the statement's manifest.
    pub fn manifest(&self) -> String {
        names::manifest(&self.dir, &self.query_id)
    }

    /// What the statement's credentials may create: its data files (any partition, any
    /// part, any sequence) and its manifest; with OVERWRITE, the raw key. Each pattern is
    /// literal parts with a wildcard between each two.
    pub fn grant(&self, require_if_none_match: bool) -> WriteGrant {
        let mut create: Vec<Vec<String>> = Vec::new();
        let dir = self.dir.clone();
        match (&self.raw, self.include_query_id, self.partitioned) {
            (Some(_), _, _) => {}
            (None, true, true) => create.push(vec![
                dir,
                format!("/data_{}_", self.query_id),
                String::new(),
            ]),
            (None, true, false) => {
                create.push(vec![format!("{dir}data_{}_", self.query_id), String::new()])
            }
            // Without the query id the names are shared by every statement writing there:
            // the conditional write keeps one from replacing another's.
            (None, false, _) => create.push(vec![format!("{dir}data_"), String::new()]),
        }
        let mut replace = None;
        if let Some(raw) = &self.raw {
            if self.replace {
                replace = Some(raw.clone());
            } else {
                create.push(vec![raw.clone()]);
            }
        }
        create.push(vec![self.manifest()]);
        WriteGrant {
            create,
            replace,
            require_if_none_match,
        }
    }
}
