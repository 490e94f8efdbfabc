//! The on-disk formats (and the cluster's records on NATS: stream rows, heartbeats, forwarded
//! reads): the only serialisable types in Quiver. Every type here is versioned
//! (`V1`, `V2`: a changed layout gets a new type) and encoded with bincode; in-memory types are
//! converted to and from them explicitly, so changing an in-memory type never silently changes
//! what is on disk.
//!
//! Framing (all integers little-endian):
//! - journal record: `len: u32, xxh3(payload): u64, payload`
//! - snapshot file: header `magic[8], version: u32, created_micros: i64, n_shards: u32,
//!   n_sections: u32, xxh3(header so far): u64`, then per section
//!   `kind: u32, journal_seq: u64, items: u64, len: u64, xxh3(those fields + payload): u64, payload`.
//! - feature-rows section `RowsV2`: `head_len: u64, head (bincode RowsV2Head), records`, each
//!   record `view: u32, key_len: u32, payload_len: u32, flags: u32, event_time: i64, payload,
//!   key` (a shard's arena holds the same records, so a section is its live records' bytes).

use serde::{Deserialize, Serialize};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"QVSNAP\0\x01";
/// 2: aggregation tiles are typed (`TilesV2`); the vault section is `VaultV2` (read as, and now
/// written as, `VaultV3`, whose layout extends it; the directory's likewise `DirectoryV2`).
/// 3: feature rows are written as `RowsV2` (section kind 4, `FeatureRecords`), and a section
/// holds the applied repository (`AppliedRepositoryV1`, kind 5). A version 2 snapshot has
/// neither and reads unchanged (rows from `RowsV1`; the files on disk are served).
/// 4: a cluster node's snapshot holds the stream sequences its rows cover
/// (`StreamSequencesV1`, kind 6); a version 3 file has none and reads unchanged.
/// 5: the feature-rows head says which stored form (`ViewLayoutV1`) each view's rows were
/// written in (`RowsV3Head`), so that a restart under changed files reshapes or refuses them
/// instead of misreading them; a version 3 or 4 head has none and reads unchanged (its rows
/// taken as in the form the restoring repository gives them, as those builds did).
pub const FORMAT_VERSION: u32 = 5;
/// The oldest snapshot format this build reads.
pub const OLDEST_READ_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4 + 4 + 8;
pub const SECTION_HEADER_LEN: usize = 4 + 8 + 8 + 8 + 8;
pub const RECORD_HEADER_LEN: usize = 4 + 8;

/// What a snapshot section holds; each actor owns one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Feature rows of every shard (`RowsV1`), written by format version 2.
    FeatureRows,
    /// Feature rows of every shard as arena records (`RowsV2`).
    FeatureRecords,
    /// Users, groups and service accounts (`DirectoryV2`, or `DirectoryV1` from older builds).
    Directory,
    /// Secret scopes, secret groups and Tinybird secrets, values sealed (`VaultV3`).
    Vault,
    /// The repository `quiver apply` last applied, if any (`AppliedRepositoryV1`).
    Repository,
    /// A cluster node's: the stream sequence the rows cover, per partition
    /// (`StreamSequencesV1`).
    StreamSequences,
}

impl SectionKind {
    pub fn code(self) -> u32 {
        match self {
            SectionKind::FeatureRows => 1,
            SectionKind::Directory => 2,
            SectionKind::Vault => 3,
            SectionKind::FeatureRecords => 4,
            SectionKind::Repository => 5,
            SectionKind::StreamSequences => 6,
        }
    }

    pub fn from_code(code: u32) -> Option<SectionKind> {
        match code {
            1 => Some(SectionKind::FeatureRows),
            2 => Some(SectionKind::Directory),
            3 => Some(SectionKind::Vault),
            4 => Some(SectionKind::FeatureRecords),
            5 => Some(SectionKind::Repository),
            6 => Some(SectionKind::StreamSequences),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::FeatureRows | SectionKind::FeatureRecords => "feature rows",
            SectionKind::Directory => "directory objects",
            SectionKind::Vault => "vault records",
            SectionKind::Repository => "applied repository",
            SectionKind::StreamSequences => "stream sequences",
        }
    }
}

/// The repository section: what `quiver apply` last applied (`None`: nothing was, the files on
/// disk are served).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedRepositoryV1 {
    pub applied: Option<RepositoryV1>,
}

/// An applied repository: every workspace's files as they were sent, and its content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryV1 {
    pub hash: String,
    pub workspaces: Vec<WorkspaceFilesV1>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceFilesV1 {
    pub name: String,
    pub live: bool,
    /// `(path, content)` in the order the files are read.
    pub files: Vec<(String, String)>,
}

/// A feature view named by workspace and name, so stored rows survive repository changes that
/// renumber views.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewRefV1 {
    pub workspace: String,
    pub view: String,
}

/// A view's stored form, as its rows and tiles were written in: the join keys, the columns a
/// row holds (a row view's features, an aggregating view's inputs) and, for an aggregating
/// view, its tiles' form. Types and aggregations are written as the repository files write
/// them, so the description does not change with an in-memory type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewLayoutV1 {
    pub join_keys: Vec<FieldV1>,
    pub columns: Vec<FieldV1>,
    /// `None` for a row view.
    pub aggregation: Option<AggregationLayoutV1>,
}

/// An aggregating view's tiles' form: their width, their compaction, and per aggregate (in the
/// view's order) its partial as text (`mean(amt)`: the state a tile keeps) and its window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationLayoutV1 {
    pub interval_micros: i64,
    pub compaction_micros: Option<i64>,
    pub aggregates: Vec<AggregateLayoutV1>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateLayoutV1 {
    pub partial: String,
    pub window: String,
}

/// A named, typed column (type as the repository files write it: `int64`, `array<string>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldV1 {
    pub name: String,
    pub data_type: String,
}

/// A feature-rows journal record that is not rows: from here on, the rows of each view named
/// are in the stored form given (index = `views`' index; `None`: a view that stores nothing, or
/// whose form the writer did not know). The writer journals one before the first rows it
/// journals under a views table (after a start or an apply), so that a replay knows what each
/// later record's rows were written in. Written after [`LAYOUTS_RECORD_MARKER`], which no
/// `RowsV1` record starts with (it would claim 2^64 - 1 views).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewLayoutsV1 {
    pub views: Vec<ViewRefV1>,
    pub layouts: Vec<Option<ViewLayoutV1>>,
}

/// The first bytes of a [`ViewLayoutsV1`] journal record.
pub const LAYOUTS_RECORD_MARKER: [u8; 8] = [0xff; 8];

/// A feature-rows journal record of `quiver apply`, so that an apply survives a start that
/// falls back past the snapshot keeping it (snapshots alone hold the applied repository). The
/// writer journals `Applied` where the store reshapes for an apply: the rows before it were
/// reshaped for that repository, the rows after it are written under it. An apply whose
/// snapshot failed is taken back: `Undone`, where the store went back. Written after
/// [`APPLY_RECORD_MARKER`], which is not the layouts marker and which no `RowsV1` record
/// starts with (it would claim 2^64 - 2 views): an older build refuses the record rather than
/// misread it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApplyRecordV1 {
    Applied(RepositoryV1),
    /// The last `Applied` before it was taken back: the store is as it was before that one.
    Undone,
}

/// The first bytes of an [`ApplyRecordV1`] journal record.
pub const APPLY_RECORD_MARKER: [u8; 8] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// A feature-rows journal record, any kind.
#[derive(Debug)]
pub enum RowsRecord {
    Rows(RowsV1),
    Layouts(ViewLayoutsV1),
    Apply(ApplyRecordV1),
}

/// Encodes a [`ViewLayoutsV1`] as a journal record.
pub fn encode_layouts_record(layouts: &ViewLayoutsV1) -> Vec<u8> {
    let mut record = LAYOUTS_RECORD_MARKER.to_vec();
    record.extend_from_slice(&encode(layouts));
    record
}

/// Encodes an [`ApplyRecordV1`] as a journal record.
pub fn encode_apply_record(apply: &ApplyRecordV1) -> Vec<u8> {
    let mut record = APPLY_RECORD_MARKER.to_vec();
    record.extend_from_slice(&encode(apply));
    record
}

/// Decodes a feature-rows journal record (a journal of an older build holds `RowsV1` only, or
/// no apply records).
pub fn decode_rows_record(record: &[u8]) -> Result<RowsRecord, String> {
    if let Some(layouts) = record.strip_prefix(&LAYOUTS_RECORD_MARKER) {
        return decode(layouts).map(RowsRecord::Layouts);
    }
    match record.strip_prefix(&APPLY_RECORD_MARKER) {
        Some(apply) => decode(apply).map(RowsRecord::Apply),
        None => decode(record).map(RowsRecord::Rows),
    }
}

/// A cluster node's stream sequences section: of the stream `stream`, the last sequence whose
/// rows the snapshot holds, per partition (index = partition; `None`: none applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSequencesV1 {
    pub stream: String,
    pub applied: Vec<Option<u64>>,
}

/// A cluster node's heartbeat, its value in the cluster's key-value bucket (partitioned
/// mode): where it serves HTTP, when it last beat, the partition count and owners per
/// partition of its configuration, and the partitions it holds caught up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecordV1 {
    pub url: String,
    pub beat_micros: i64,
    pub partitions: u32,
    pub owners: u32,
    pub ready: Vec<u32>,
}

/// Lookups a cluster node forwards to a node holding their partitions. `view` indexes
/// `views` (named, not numbered, as in a journal record); `aggregates` is the mask's bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedReadV1 {
    pub views: Vec<ViewRefV1>,
    pub lookups: Vec<ForwardedLookupV1>,
    pub now: i64,
    /// 0: each view's own leading edge; 1: wall-clock time; 2: latest event time.
    pub leading_edge: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedLookupV1 {
    pub view: u32,
    pub key: Vec<u8>,
    pub aggregates: u64,
}

/// The answer to a [`ForwardedReadV1`]: the rows in lookup order, or `None` when the node no
/// longer holds every partition asked (the asker tries another holder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedRowsV1 {
    pub rows: Option<Vec<Option<ForwardedRowV1>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedRowV1 {
    pub event_time: i64,
    pub payload: Vec<u8>,
}

/// One stored row. `view` indexes the enclosing `views` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowV1 {
    pub view: u32,
    pub key: Vec<u8>,
    pub event_time: i64,
    pub payload: Vec<u8>,
}

/// Borrowed twin of [`RowV1`] for writing without copying: it decodes as `RowV1`. Its bytes
/// are written whole (`as_bytes`), not as a sequence of `u8`s one call a byte (~600
/// instructions a journaled row): bincode writes both as a `u64` length and the bytes.
#[derive(Debug, Serialize)]
pub struct RowRefV1<'a> {
    pub view: u32,
    #[serde(serialize_with = "as_bytes")]
    pub key: &'a [u8],
    pub event_time: i64,
    #[serde(serialize_with = "as_bytes")]
    pub payload: &'a [u8],
}

/// Serialises bytes as bytes (a length and the bytes, in bincode), not as a sequence.
fn as_bytes<S: serde::Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// A set of rows: a journal record of the feature-rows journal (rows only; an aggregating
/// view's row is one event), or the feature-rows snapshot section (rows and tiles).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RowsV1 {
    pub views: Vec<ViewRefV1>,
    pub rows: Vec<RowV1>,
    pub tiles: Vec<TilesV2>,
}

/// The feature-rows section of format version 3, before its records: the views the records'
/// `view` fields index, the aggregation tiles, and the byte length of each exporting shard's
/// records (in shard order, routed by `shard_of` over the snapshot's shard count) and how many
/// rows they hold (so a restore sizes each index once).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RowsV2Head {
    pub views: Vec<ViewRefV1>,
    pub tiles: Vec<TilesV2>,
    pub shard_bytes: Vec<u64>,
    pub shard_rows: Vec<u64>,
}

/// The feature-rows section's head of format version 5: version 3's, then each view's stored
/// form (index = the records' `view`; `None` for a view that stores nothing or whose form the
/// writer did not know). A version 3 head ends where `layouts` begins, so it never decodes as
/// this one (and is then read as `RowsV2Head`, its layouts unknown).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RowsV3Head {
    pub views: Vec<ViewRefV1>,
    pub tiles: Vec<TilesV2>,
    pub shard_bytes: Vec<u64>,
    pub shard_rows: Vec<u64>,
    pub layouts: Vec<Option<ViewLayoutV1>>,
}

impl From<RowsV2Head> for RowsV3Head {
    fn from(head: RowsV2Head) -> RowsV3Head {
        RowsV3Head {
            views: head.views,
            tiles: head.tiles,
            shard_bytes: head.shard_bytes,
            shard_rows: head.shard_rows,
            layouts: Vec::new(),
        }
    }
}

/// A row record's fixed part: `view, key_len, payload_len, flags: u32, event_time: i64`.
pub const ROW_RECORD_HEADER_LEN: usize = 24;
/// A record flag, only ever set in a shard's arena: a newer row of the key replaced this one.
pub const ROW_RECORD_SUPERSEDED: u32 = 1;

/// One row record of a `RowsV2` section (or of a shard's arena), borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowRecordV2<'a> {
    pub view: u32,
    pub flags: u32,
    pub event_time: i64,
    pub payload: &'a [u8],
    pub key: &'a [u8],
}

impl RowRecordV2<'_> {
    /// Bytes the record takes, header included.
    pub fn len(&self) -> usize {
        ROW_RECORD_HEADER_LEN + self.payload.len() + self.key.len()
    }

    /// Never true: a record always has its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The record's header, for writing it.
    pub fn header(&self) -> [u8; ROW_RECORD_HEADER_LEN] {
        let mut header = [0u8; ROW_RECORD_HEADER_LEN];
        header[0..4].copy_from_slice(&self.view.to_le_bytes());
        header[4..8].copy_from_slice(&(self.key.len() as u32).to_le_bytes());
        header[8..12].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&self.flags.to_le_bytes());
        header[16..24].copy_from_slice(&self.event_time.to_le_bytes());
        header
    }

    /// Appends the record to `out`, flags cleared (as a snapshot holds it).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&RowRecordV2 { flags: 0, ..*self }.header());
        out.extend_from_slice(self.payload);
        out.extend_from_slice(self.key);
    }

    /// The record starting at `at` in `bytes`; an error if it runs past their end. The header
    /// is read as one 24-byte array and the rest split once: a shard's write reads a key's
    /// record a row (the index's compare) and a served read one a key, and field by field,
    /// each sliced and checked, a read cost ~56 instructions.
    #[inline]
    pub fn read(bytes: &[u8], at: usize) -> Result<RowRecordV2<'_>, String> {
        let Some((header, rest)) = bytes
            .get(at..)
            .and_then(|bytes| bytes.split_first_chunk::<ROW_RECORD_HEADER_LEN>())
        else {
            return Err(truncated_header(at));
        };
        let field =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (key_len, payload_len) = (field(4) as usize, field(8) as usize);
        let Some(body) = rest.get(..payload_len + key_len) else {
            return Err(runs_past_the_end(at));
        };
        let (payload, key) = body.split_at(payload_len);
        let mut event_time = [0; 8];
        event_time.copy_from_slice(&header[16..24]);
        Ok(RowRecordV2 {
            view: field(0),
            flags: field(12),
            event_time: i64::from_le_bytes(event_time),
            payload,
            key,
        })
    }
}

#[cold]
fn truncated_header(at: usize) -> String {
    format!("row record at byte {at}: truncated header")
}

#[cold]
fn runs_past_the_end(at: usize) -> String {
    format!("row record at byte {at}: runs past the end")
}

/// Every record of `bytes` (one shard's records, back to back), stopping at the first that does
/// not fit.
pub fn row_records(bytes: &[u8]) -> impl Iterator<Item = Result<RowRecordV2<'_>, String>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let record = RowRecordV2::read(bytes, at);
        at = match &record {
            Ok(record) => at + record.len(),
            Err(_) => bytes.len(),
        };
        Some(record)
    })
}

/// The start of a `RowsV2` section's payload: its head's length and its head. The shards'
/// records follow, in the order of `head.shard_bytes`.
pub fn encode_rows_v2_head(head: &RowsV3Head) -> Vec<u8> {
    let head = encode(head);
    let mut payload = Vec::with_capacity(8 + head.len());
    payload.extend_from_slice(&(head.len() as u64).to_le_bytes());
    payload.extend_from_slice(&head);
    payload
}

/// A `RowsV2` section's payload in one buffer: its head, then each shard's records as given.
pub fn encode_rows_v2(head: &RowsV3Head, shard_records: &[&[u8]]) -> Vec<u8> {
    let mut payload = encode_rows_v2_head(head);
    payload.reserve(shard_records.iter().map(|r| r.len()).sum());
    for records in shard_records {
        payload.extend_from_slice(records);
    }
    payload
}

/// Splits a `RowsV2` section's payload into its head (a version 3 or 4 head read as version
/// 5's, its layouts unknown) and each shard's records.
pub fn decode_rows_v2(payload: &[u8]) -> Result<(RowsV3Head, Vec<&[u8]>), String> {
    let head_len = payload
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or("feature rows: truncated head length")?;
    let head_end = usize::try_from(head_len)
        .ok()
        .and_then(|len| len.checked_add(8))
        .filter(|&end| end <= payload.len())
        .ok_or("feature rows: head runs past the end")?;
    let head_bytes = &payload[8..head_end];
    let head: RowsV3Head = match decode(head_bytes) {
        Ok(head) => head,
        Err(_) => decode::<RowsV2Head>(head_bytes)?.into(),
    };
    let mut rest = &payload[head_end..];
    let mut shards = Vec::with_capacity(head.shard_bytes.len());
    for &len in &head.shard_bytes {
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= rest.len())
            .ok_or("feature rows: a shard's records run past the end")?;
        let (records, tail) = rest.split_at(len);
        shards.push(records);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err("feature rows: bytes after the last shard's records".into());
    }
    Ok((head, shards))
}

/// One key's aggregation tiles. Format version 2 made them typed (version 1 held the store's
/// own byte encoding); journal records never carry tiles, so version 1 journals read unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TilesV2 {
    pub view: u32,
    pub key: Vec<u8>,
    pub latest_event: i64,
    /// With compaction: tiles starting before this are coarse (one per compaction width).
    pub coarse_until: i64,
    /// Tiles merged once past the horizon (views with lifetime windows only).
    pub compacted: Option<Vec<PartialV1>>,
    pub tiles: Vec<TileV1>,
}

/// One tile: its start and one partial aggregate per aggregate of the view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileV1 {
    pub start: i64,
    pub partials: Vec<PartialV1>,
}

/// A partial aggregate (the store's `Partial`). Values are in the row encoding, as stored
/// rows are: one encoded value each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartialV1 {
    Count(i64),
    Sum {
        int: i64,
        float: f64,
        any: bool,
        floats: bool,
    },
    Moments {
        count: i64,
        mean: f64,
        m2: f64,
    },
    Extreme(Option<Vec<u8>>),
    Last(Option<StampedV1>),
    Ordered(Vec<StampedV1>),
    Hll(Vec<u8>),
    Quantiles {
        zeros: u64,
        positive: Vec<(i32, u64)>,
        negative: Vec<(i32, u64)>,
    },
}

/// An event a partial keeps: its time, arrival order and encoded value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StampedV1 {
    pub time: i64,
    pub arrival: u64,
    pub value: Vec<u8>,
}

/// Borrowed twin of [`RowsV1`].
#[derive(Debug, Serialize)]
pub struct RowsRefV1<'a> {
    pub views: &'a [ViewRefV1],
    pub rows: Vec<RowRefV1<'a>>,
    pub tiles: &'a [TilesV2],
}

/// A user (kind 0), group (1) or service account (2) of the directory. `attributes` is the
/// resource's canonical SCIM attributes as JSON text; `key_digest` is a service account's keyed
/// API-key digest (never the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryEntryV1 {
    pub kind: u8,
    pub id: String,
    pub attributes: String,
    pub created_micros: i64,
    pub modified_micros: i64,
    pub version: u64,
    pub key_digest: Option<Vec<u8>>,
}

/// What kind of principal a `PrincipalRefV1` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalKindV1 {
    BootstrapAdmin,
    User,
    ServiceAccount,
}

/// Who did something: the creator of a service account or of a TrueFoundry group. `name` is
/// the principal's name when it acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRefV1 {
    pub kind: PrincipalKindV1,
    pub id: String,
    pub name: Option<String>,
}

/// A directory entry with the principal that created it (`None` when not recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryEntryV2 {
    pub entry: DirectoryEntryV1,
    pub creator: Option<PrincipalRefV1>,
}

/// One change of the directory; a journal record (or a cluster's directory stream message)
/// holds the changes of one request. Version 2 appended `PutV2` (an entry with its creator),
/// version 3 `DeleteV3` (a delete with the version it deletes, so that a cluster's nodes refuse
/// a delete raced by an update); each writes only its own. The earlier variants keep their
/// order, so version 1 and 2 records decode as version 3 unchanged (an entry they put has no
/// recorded creator, a delete no version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DirectoryChangeV3 {
    /// Version 1's put, read from old journals only.
    Put(DirectoryEntryV1),
    /// Versions 1 and 2's delete, read from old journals only.
    Delete {
        kind: u8,
        id: String,
    },
    PutV2(DirectoryEntryV2),
    DeleteV3 {
        kind: u8,
        id: String,
        version: u64,
    },
}

/// The directory snapshot section of version 1 (no creators), still read.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DirectoryV1 {
    pub entries: Vec<DirectoryEntryV1>,
}

/// The directory snapshot section: version 1's entries, then the creators recorded for them.
/// A version 1 section ends where `creators` would begin, so it never decodes as this one
/// (and is then read as `DirectoryV1`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DirectoryV2 {
    pub entries: Vec<DirectoryEntryV1>,
    pub creators: Vec<EntryCreatorV2>,
}

/// The creator of the entry `id` of a `DirectoryV2` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryCreatorV2 {
    pub id: String,
    pub creator: PrincipalRefV1,
}

/// A sealed secret value: ciphertext only (XChaCha20-Poly1305 under the master key, the
/// secret's identity and `version` as associated data), never plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedV2 {
    pub ciphertext: Vec<u8>,
    pub version: u64,
    pub created_micros: i64,
    pub updated_micros: i64,
}

/// Who a Tecton scope role is given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalTypeV2 {
    User,
    ServiceAccount,
    Group,
    Workspace,
}

/// A role on a Tecton secret scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeRoleV2 {
    Reader,
    Writer,
    Manager,
}

/// A role on a Tecton scope given to one principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeAssignmentV2 {
    pub principal_type: PrincipalTypeV2,
    pub principal_id: String,
    pub role: ScopeRoleV2,
}

/// A TrueFoundry secret group's own fields, without its secrets. `manifest` is JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretGroupV2 {
    pub id: String,
    pub name: String,
    pub integration_id: Option<String>,
    pub manifest: Option<String>,
    pub created_by_id: String,
    pub created_by_type: String,
    pub created_micros: i64,
    pub updated_micros: i64,
}

/// A TrueFoundry secret group's own fields (version 3: the creator as a `PrincipalRefV1`,
/// with its name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretGroupV3 {
    pub id: String,
    pub name: String,
    pub integration_id: Option<String>,
    pub manifest: Option<String>,
    pub created_by: PrincipalRefV1,
    pub created_micros: i64,
    pub updated_micros: i64,
}

/// One version of a TrueFoundry secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSecretVersionV2 {
    pub id: String,
    pub sealed: SealedV2,
}

/// A TrueFoundry secret (one key of a group) with the versions it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSecretV2 {
    pub id: String,
    pub key: String,
    pub created_micros: i64,
    pub updated_micros: i64,
    pub versions: Vec<GroupSecretVersionV2>,
}

/// A Tinybird secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TinybirdSecretV2 {
    pub name: String,
    pub sealed: SealedV2,
    pub edited_by: String,
}

/// One change of the vault. A journal record holds the changes of one request (applied
/// together or not at all); each names the one thing it changes, so a record's size does not
/// grow with the scope or group it touches. Version 2: version 1 journaled whole scopes and
/// groups as JSON documents, which made the journal grow quadratically. Version 3 appended
/// `PutGroupV3` (the creator's name kept) and writes it instead of `PutGroup`; every earlier
/// variant keeps its place, so a version 2 record or section decodes as version 3 unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VaultChangeV3 {
    /// A new Tecton scope, with its first assignments (its creator as manager).
    CreateScope {
        name: String,
        created_micros: i64,
        assignments: Vec<ScopeAssignmentV2>,
    },
    DeleteScope {
        name: String,
    },
    /// A Tecton secret's new value (a new version), or the secret as a snapshot holds it.
    PutScopeSecret {
        scope: String,
        key: String,
        sealed: SealedV2,
    },
    DeleteScopeSecret {
        scope: String,
        key: String,
    },
    AssignScopeRole {
        scope: String,
        assignment: ScopeAssignmentV2,
    },
    UnassignScopeRole {
        scope: String,
        assignment: ScopeAssignmentV2,
    },
    /// Version 2's group put, read from old journals and snapshots only.
    PutGroup(SecretGroupV2),
    DeleteGroup {
        id: String,
    },
    /// A TrueFoundry secret created (one version), or as a snapshot holds it (every version).
    PutGroupSecret {
        group_id: String,
        secret: GroupSecretV2,
    },
    /// A new version of an existing TrueFoundry secret.
    AddGroupSecretVersion {
        group_id: String,
        key: String,
        version: GroupSecretVersionV2,
    },
    DeleteGroupSecret {
        group_id: String,
        key: String,
    },
    /// A Tinybird secret created or given a new value.
    PutTinybirdSecret(TinybirdSecretV2),
    DeleteTinybirdSecret {
        name: String,
    },
    /// A TrueFoundry group created, or its own fields changed; its secrets stay as they are.
    PutGroupV3(SecretGroupV3),
}

/// The vault snapshot section: the changes that recreate the whole vault from nothing
/// (version 2's sections read unchanged, see `VaultChangeV3`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VaultV3 {
    pub changes: Vec<VaultChangeV3>,
}

/// The xxh3 checksum used everywhere on disk.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Decoding limits: a corrupt length can never make the reader allocate more than the input.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| e.to_string())
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialize(value)
        .expect("in-memory encoding cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_rows_decode_as_owned_rows() {
        let views = vec![ViewRefV1 {
            workspace: "prod".into(),
            view: "v".into(),
        }];
        let borrowed = RowsRefV1 {
            views: &views,
            rows: vec![RowRefV1 {
                view: 0,
                key: b"k",
                event_time: 7,
                payload: b"p",
            }],
            tiles: &[],
        };
        let owned: RowsV1 = decode(&encode(&borrowed)).unwrap();
        // Byte for byte: a journal written before rows' bytes were written whole reads alike.
        assert_eq!(encode(&borrowed), encode(&owned));
        assert_eq!(owned.views, views);
        assert_eq!(
            owned.rows,
            vec![RowV1 {
                view: 0,
                key: b"k".to_vec(),
                event_time: 7,
                payload: b"p".to_vec()
            }]
        );
    }

    fn sample_rows_v2() -> Vec<u8> {
        let mut shards = [Vec::new(), Vec::new()];
        for i in 0..20u8 {
            RowRecordV2 {
                view: 0,
                flags: 0,
                event_time: i64::from(i),
                payload: &vec![i; usize::from(i)],
                key: &[i, i],
            }
            .write_to(&mut shards[usize::from(i % 2)]);
        }
        let head = RowsV3Head {
            views: vec![ViewRefV1 {
                workspace: "prod".into(),
                view: "v".into(),
            }],
            tiles: Vec::new(),
            shard_bytes: shards.iter().map(|s| s.len() as u64).collect(),
            shard_rows: vec![10, 10],
            layouts: vec![Some(sample_layout())],
        };
        encode_rows_v2(&head, &[&shards[0], &shards[1]])
    }

    fn sample_layout() -> ViewLayoutV1 {
        let field = |name: &str, data_type: &str| FieldV1 {
            name: name.into(),
            data_type: data_type.into(),
        };
        ViewLayoutV1 {
            join_keys: vec![field("user_id", "string")],
            columns: vec![field("age", "int64"), field("tags", "array<string>")],
            aggregation: None,
        }
    }

    /// A version 3 or 4 head (no layouts) still reads, its layouts unknown; a version 5 head
    /// keeps them.
    #[test]
    fn an_older_rows_head_reads_with_its_layouts_unknown() {
        let (head, _) = decode_rows_v2(&sample_rows_v2()).unwrap();
        assert_eq!(head.layouts, vec![Some(sample_layout())]);
        let old_head = encode(&RowsV2Head {
            views: head.views.clone(),
            tiles: Vec::new(),
            shard_bytes: vec![0],
            shard_rows: vec![0],
        });
        let mut payload = (old_head.len() as u64).to_le_bytes().to_vec();
        payload.extend_from_slice(&old_head);
        let (old, shards) = decode_rows_v2(&payload).unwrap();
        assert_eq!(
            (old.views, old.layouts, shards.len()),
            (head.views, vec![], 1)
        );
    }

    /// A journal holds rows records (as older builds wrote them) and layouts records; each
    /// decodes as what it is.
    #[test]
    fn rows_and_layouts_journal_records_decode_as_what_they_are() {
        let views = vec![ViewRefV1 {
            workspace: "prod".into(),
            view: "v".into(),
        }];
        let rows = encode(&RowsV1 {
            views: views.clone(),
            rows: Vec::new(),
            tiles: Vec::new(),
        });
        assert!(matches!(decode_rows_record(&rows), Ok(RowsRecord::Rows(r)) if r.views == views));
        let layouts = ViewLayoutsV1 {
            views,
            layouts: vec![Some(sample_layout()), None],
        };
        match decode_rows_record(&encode_layouts_record(&layouts)) {
            Ok(RowsRecord::Layouts(read)) => assert_eq!(read, layouts),
            other => panic!("expected layouts, got {other:?}"),
        }
        // An older build refuses such a record rather than misreading it.
        assert!(decode::<RowsV1>(&encode_layouts_record(&layouts)).is_err());
    }

    /// An apply record decodes as what it is; a build before it (reading `RowsV1`, or layouts
    /// after their marker) refuses it rather than misreading it.
    #[test]
    fn apply_journal_records_decode_and_older_builds_refuse_them() {
        let applied = ApplyRecordV1::Applied(RepositoryV1 {
            hash: "0123456789abcdef".into(),
            workspaces: vec![WorkspaceFilesV1 {
                name: "prod".into(),
                live: true,
                files: vec![("views.toml".into(), "[[entity]]".into())],
            }],
        });
        for apply in [applied, ApplyRecordV1::Undone] {
            let record = encode_apply_record(&apply);
            match decode_rows_record(&record) {
                Ok(RowsRecord::Apply(read)) => assert_eq!(read, apply),
                other => panic!("expected an apply, got {other:?}"),
            }
            assert!(!record.starts_with(&LAYOUTS_RECORD_MARKER));
            assert!(decode::<RowsV1>(&record).is_err());
        }
    }

    #[test]
    fn rows_v2_round_trips() {
        let payload = sample_rows_v2();
        let (head, shards) = decode_rows_v2(&payload).unwrap();
        assert_eq!(head.views[0].view, "v");
        let records: Vec<RowRecordV2> = shards
            .iter()
            .flat_map(|s| row_records(s))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 20);
        assert_eq!(
            (records[1].event_time, records[1].payload, records[1].key),
            (2, &[2u8, 2][..], &[2u8, 2][..])
        );
    }

    /// A record reads back as written, with any bytes after it; cut anywhere short of its end,
    /// it is refused, as truncated while its header is.
    #[test]
    fn a_row_record_reads_as_written_and_refuses_being_cut() {
        let record = RowRecordV2 {
            view: 7,
            flags: 3,
            event_time: -5,
            payload: b"payload",
            key: b"key",
        };
        let mut bytes = b"xx".to_vec();
        record.write_to(&mut bytes);
        let written = RowRecordV2 { flags: 0, ..record };
        let end = bytes.len();
        bytes.push(9);
        assert_eq!(RowRecordV2::read(&bytes, 2), Ok(written));
        for cut in 2..end {
            let error = RowRecordV2::read(&bytes[..cut], 2).unwrap_err();
            let why = match cut - 2 < ROW_RECORD_HEADER_LEN {
                true => "truncated header",
                false => "runs past the end",
            };
            assert_eq!(error, format!("row record at byte 2: {why}"));
        }
        assert_eq!(
            RowRecordV2::read(&bytes, end + 5).unwrap_err(),
            format!("row record at byte {}: truncated header", end + 5)
        );
    }

    proptest::proptest! {
        #[test]
        fn truncated_or_damaged_rows_v2_are_refused_or_read_without_panicking(
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            flip in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let payload = sample_rows_v2();
            let cut_at = cut.index(payload.len());
            proptest::prop_assert!(decode_rows_v2(&payload[..cut_at]).is_err());
            let mut flipped = payload.clone();
            flipped[flip.index(payload.len())] ^= 1 << bit;
            // A flip in a record may still read (the section checksum catches it); it must not
            // panic or read past its shard's bytes.
            if let Ok((_, shards)) = decode_rows_v2(&flipped) {
                for shard in shards {
                    for record in row_records(shard).flatten() {
                        proptest::prop_assert!(record.len() <= shard.len());
                    }
                }
            }
        }
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        let mut bytes = vec![0xff; 8];
        bytes.extend_from_slice(&[0u8; 8]);
        assert!(decode::<RowsV1>(&bytes).is_err());
    }
}
