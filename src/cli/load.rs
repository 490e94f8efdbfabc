//! `quiver load`: the bulk loader. Validates every row of a CSV, JSON Lines or Parquet file
//! against the view's schema first (reporting where the first bad one is, its line or its row
//! group and row, and sending nothing), then sends the rows to a running server in chunks, with
//! progress bars: binary rows bodies (`ingest::binary_rows`) unless `--body json-lines`. Each
//! row is encoded into its chunk's body as it is validated, so the file is parsed once; the
//! bodies wait for the end of validation in `load_bodies::KeptBodies` (memory, then a file).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use super::load_bodies::KeptBodies;
use super::{ConfigArg, ServerArg};
use crate::config::{Overrides, Settings};
use crate::ingest::binary_rows::{self, BinaryRowsWriter};
use crate::ingest::file::open_load_file;
use crate::ingest::row::RowJsonWriter;
use crate::registry::{load_registry, FeatureView};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Workspace of the feature view.
    #[arg(long)]
    workspace: String,
    /// Feature view whose rows the file holds.
    #[arg(long = "feature-view")]
    feature_view: String,
    #[command(flatten)]
    server: ServerArg,
    /// Rows per request.
    #[arg(long = "chunk-rows", default_value_t = 5000)]
    chunk_rows: usize,
    /// Requests in flight at once, each on its own connection (the server applies chunks
    /// concurrently); 1 sends the chunks one after another, in the file's order.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// What the requests carry: `binary`, the rows already in the store's value encoding (the
    /// server checks every value), or `json-lines`, for servers that take only JSON Lines.
    #[arg(long, value_enum, default_value_t = BodyFormat::Binary)]
    body: BodyFormat,
    /// MiB of memory the encoded bodies may take while the file is validated; the rest wait in
    /// a temporary file (binary bodies take ~70 bytes a row of a small view).
    #[arg(long = "body-memory-mib", default_value_t = 512)]
    body_memory_mib: usize,
    /// A .csv (with a header line), .jsonl or .parquet file.
    file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BodyFormat {
    Binary,
    JsonLines,
}

/// Encodes validated rows into request bodies of one format.
enum BodyWriter {
    Binary(BinaryRowsWriter),
    JsonLines(RowJsonWriter),
}

impl BodyWriter {
    fn new(format: BodyFormat, view: &FeatureView) -> BodyWriter {
        match format {
            BodyFormat::Binary => BodyWriter::Binary(BinaryRowsWriter::new(view)),
            BodyFormat::JsonLines => BodyWriter::JsonLines(RowJsonWriter::new(view)),
        }
    }

    fn content_type(&self) -> &'static str {
        match self {
            BodyWriter::Binary(_) => binary_rows::CONTENT_TYPE,
            BodyWriter::JsonLines(_) => "application/x-ndjson",
        }
    }

    /// Opens an empty body.
    fn start(&self, body: &mut Vec<u8>) {
        match self {
            BodyWriter::Binary(writer) => writer.start(body),
            BodyWriter::JsonLines(_) => {}
        }
    }

    /// Ends a body once its rows are in.
    fn finish(&self, body: &mut Vec<u8>) {
        match self {
            BodyWriter::Binary(writer) => writer.finish(body),
            BodyWriter::JsonLines(_) => {}
        }
    }
}

/// The load's rows as they are encoded, cut into chunk bodies of `chunk_rows` rows, each kept
/// once full.
struct Chunker<'a> {
    writer: &'a BodyWriter,
    chunk_rows: usize,
    kept: KeptBodies,
    /// The body being filled.
    body: Vec<u8>,
    /// Where keeping a full body failed (the temporary file), if it did.
    unkept: Option<std::io::Error>,
    rows: usize,
    reading: &'a ProgressBar,
    /// Bytes read since the bar last moved: it moves once a chunk, not once a row (~160
    /// instructions a row).
    unshown: u64,
}

impl Chunker<'_> {
    /// The body the next row, `bytes` of the file, is to be appended to.
    fn next_row(&mut self, bytes: usize) -> &mut Vec<u8> {
        if self.rows.is_multiple_of(self.chunk_rows) {
            self.reading.inc(std::mem::take(&mut self.unshown));
            if self.rows > 0 {
                self.keep();
            }
            self.writer.start(&mut self.body);
        }
        self.rows += 1;
        self.unshown += bytes as u64;
        &mut self.body
    }

    /// Ends the body being filled and keeps it.
    fn keep(&mut self) {
        self.writer.finish(&mut self.body);
        // The next body is sized as this one: the room a full chunk takes, mostly.
        let room = self.body.len();
        let full = std::mem::replace(&mut self.body, Vec::with_capacity(room));
        if let Err(e) = self.kept.keep(full) {
            self.unkept.get_or_insert(e);
        }
    }
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config.path, &Overrides::default())?;
    let registry = load_registry(&settings.workspaces)?;
    let view = registry
        .view_by_name(&args.workspace, &args.feature_view)
        .with_context(|| {
            format!(
                "no feature view `{}` in workspace `{}`",
                args.feature_view, args.workspace
            )
        })?;
    let load_file = open_load_file(&args.file)?;
    let chunk_rows = args.chunk_rows.max(1);

    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({eta})")
        .expect("valid template");
    let reading = ProgressBar::new(load_file.size)
        .with_style(style.clone())
        .with_message("validating");
    // Each row is encoded into its chunk's request body as it is validated, so the rows are not
    // kept; nothing is sent until the whole file has been read.
    let writer = BodyWriter::new(args.body, view);
    let mut chunker = Chunker {
        writer: &writer,
        chunk_rows,
        kept: KeptBodies::new(args.body_memory_mib.saturating_mul(1 << 20)),
        body: Vec::new(),
        unkept: None,
        rows: 0,
        reading: &reading,
        unshown: 0,
    };
    let read = match &writer {
        BodyWriter::Binary(binary) => {
            load_file.for_each_binary_row(view, binary, |record, bytes| {
                chunker.next_row(bytes).extend_from_slice(record)
            })
        }
        BodyWriter::JsonLines(json) => load_file.for_each_row(view, |row, bytes| {
            let body = chunker.next_row(bytes);
            json.write(&row, body);
            body.push(b'\n');
        }),
    };
    if let Err(bad) = read {
        reading.abandon();
        bail!("{}: {bad}; nothing was loaded", args.file.display());
    }
    if chunker.rows > 0 {
        chunker.keep();
    }
    if let Some(e) = chunker.unkept {
        reading.abandon();
        bail!("cannot keep the encoded rows in a temporary file: {e}; nothing was loaded");
    }
    reading.inc(chunker.unshown);
    reading.finish();
    let (rows, chunks) = (chunker.rows, chunker.kept);

    let path = format!(
        "/admin/workspaces/{}/feature-views/{}/rows",
        args.workspace, args.feature_view
    );
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} rows ({per_sec})")
        .expect("valid template");
    let sending = ProgressBar::new(rows as u64)
        .with_style(style)
        .with_message("loading");
    let chunks = Chunks {
        content_type: writer.content_type(),
        bodies: &chunks,
        chunk_rows,
        rows,
    };
    let loaded = send(&args.server, &path, &chunks, args.connections, &sending)?;
    sending.finish();
    println!(
        "loaded {rows} rows into {}.{}: {} stored, {} older than the stored row, {} too far in the future (not stored)",
        args.workspace, args.feature_view, loaded.stored, loaded.older, loaded.too_far_in_future
    );
    Ok(())
}

/// The request bodies of a load, `chunk_rows` rows each (the last one the rest).
struct Chunks<'a> {
    content_type: &'static str,
    bodies: &'a KeptBodies,
    chunk_rows: usize,
    rows: usize,
}

/// What the server did with the rows sent, summed over the chunks' answers.
#[derive(Debug, Default, Clone, Copy)]
struct Loaded {
    stored: u64,
    /// Not newer than the stored row of their key.
    older: u64,
    /// Past the server's `max_future_event_skew`.
    too_far_in_future: u64,
}

impl Loaded {
    fn add(self, other: Loaded) -> Loaded {
        Loaded {
            stored: self.stored + other.stored,
            older: self.older + other.older,
            too_far_in_future: self.too_far_in_future + other.too_far_in_future,
        }
    }
}

/// Sends every chunk over `connections` connections at once, each taking the next chunk not yet
/// sent; the first refusal stops the others taking more.
fn send(
    server: &ServerArg,
    path: &str,
    chunks: &Chunks,
    connections: usize,
    sending: &ProgressBar,
) -> anyhow::Result<Loaded> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let sender = || -> anyhow::Result<Loaded> {
        let mut loaded = Loaded::default();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(body) = chunks.bodies.get(index) else {
                break;
            };
            let first = index * chunks.chunk_rows;
            let count = chunks.chunk_rows.min(chunks.rows - first);
            let answer = body
                .context("reading the encoded rows back from their temporary file")
                .and_then(|body| server.post(path, Some((chunks.content_type, &body))))
                .with_context(|| format!("loading rows {}..{}", first, first + count))
                .inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
            let count_of = |field: &str| answer[field].as_u64().unwrap_or(0);
            loaded = loaded.add(Loaded {
                stored: count_of("rowsStored"),
                older: count_of("rowsOlderThanStored"),
                too_far_in_future: count_of("rowsTooFarInFuture"),
            });
            sending.inc(count as u64);
        }
        Ok(loaded)
    };
    std::thread::scope(|scope| {
        let senders: Vec<_> = (0..connections.max(1))
            .map(|_| scope.spawn(sender))
            .collect();
        senders
            .into_iter()
            .try_fold(Loaded::default(), |loaded, sender| {
                Ok(loaded.add(sender.join().expect("a sender thread panicked")?))
            })
    })
}
