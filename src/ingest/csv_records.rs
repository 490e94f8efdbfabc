//! Splitting a CSV load file into records, as the `csv` crate would, but faster for the usual
//! shape. A record of plain and quoted cells on one line (`""` escapes, `\n` or `\r\n` ends) is
//! split by scanning for its few special bytes; any other record (a line break or a stray quote
//! in a cell, an unterminated quote at the end) is split by `csv_core`, the `csv` crate's own
//! parser, from the same place. Lines are counted as the `csv` crate counts them (a record's
//! line is where the reading of it began, before any blank lines it skipped). A record with
//! another number of cells than the header, or not UTF-8, is `Unreadable`: the caller reads the
//! file again with the `csv` crate (`csv_refusal`), which words the refusal as it always has.

use std::io::{Read, Seek, SeekFrom};

/// Bytes read from the file at a time; a longer record grows the buffer.
const READ_SIZE: usize = 256 * 1024;

/// Why splitting stopped before the end of the file.
#[derive(Debug)]
pub enum Unreadable {
    /// The file could not be read.
    Io(std::io::Error),
    /// The record at this point is refused by the `csv` crate (`csv_refusal` says why).
    Record,
}

/// Records of a CSV file: what `CsvSplitter::read_batch` fills and a converting thread reads
/// (`records`), checking their UTF-8 there, off the splitting thread.
#[derive(Default)]
pub struct RecordBatch {
    /// The records' lines as read, each cell unquoted in place (a quoted cell's escaped quotes
    /// moved up over the doubles), or a record `csv_core` split, its cells back to back.
    text: Vec<u8>,
    /// Where each cell starts and ends in `text`.
    cells: Vec<(usize, usize)>,
    /// Per record: where its cells end in `cells`, and its line.
    records: Vec<(usize, usize)>,
}

impl RecordBatch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.cells.clear();
        self.records.clear();
    }

    /// The batch's records in order, up to the first that is not UTF-8 cell by cell (the
    /// `csv` crate's `StringRecord` check), which is `Err` and the last.
    pub fn records(&self) -> Records<'_> {
        // Checked once for the whole batch; a record whose cells lie below the first bad byte
        // and start and end on character boundaries has every cell valid.
        let valid = match std::str::from_utf8(&self.text) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&self.text[..e.valid_up_to()])
                .expect("UTF-8 up to where it stops being"),
        };
        Records {
            batch: self,
            text: valid,
            next: 0,
            done: false,
        }
    }
}

/// The records of a `RecordBatch` (`RecordBatch::records`).
pub struct Records<'a> {
    batch: &'a RecordBatch,
    /// The batch's text up to its first byte that is not UTF-8.
    text: &'a str,
    next: usize,
    done: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Unreadable>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next == self.batch.records.len() {
            return None;
        }
        let (cells_end, line) = self.batch.records[self.next];
        let cells_start = match self.next {
            0 => 0,
            n => self.batch.records[n - 1].0,
        };
        self.next += 1;
        let cells = &self.batch.cells[cells_start..cells_end];
        let readable = cells.iter().all(|&(start, end)| {
            end <= self.text.len()
                && self.text.is_char_boundary(start)
                && self.text.is_char_boundary(end)
        });
        if !readable {
            self.done = true;
            return Some(Err(Unreadable::Record));
        }
        Some(Ok(Record {
            text: self.text,
            cells,
            line,
        }))
    }
}

/// One record of a `RecordBatch`, its cells UTF-8.
pub struct Record<'a> {
    text: &'a str,
    /// Where each of its cells starts and ends in `text`.
    cells: &'a [(usize, usize)],
    /// Its line, as the `csv` crate numbers it.
    pub line: usize,
}

impl<'a> Record<'a> {
    /// Cell `index` (below the header's cell count, which every record has).
    #[inline]
    pub fn cell(&self, index: usize) -> &'a str {
        let (start, end) = self.cells[index];
        &self.text[start..end]
    }

    /// Its share of the file as the `csv` crate counted it: its cells' bytes and a byte a cell.
    pub fn bytes(&self) -> usize {
        self.cells.iter().map(|(start, end)| end - start + 1).sum()
    }
}

/// What the scan of one record came to (`CsvSplitter::split_plain`).
enum Split {
    Record,
    /// The file ended before any record.
    End,
    /// The record may go on past the bytes read so far.
    NeedInput,
    /// Not the usual shape: left to `csv_core`.
    Declined,
}

/// Reads a CSV file's records, a batch at a time.
pub struct CsvSplitter<R> {
    input: R,
    buffer: Vec<u8>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The file has no more bytes than those read.
    at_eof: bool,
    /// The line the next record's reading begins on, as `csv_core` counts: 1 + the `\n`s read.
    line: usize,
    /// The header's cell count, which every record must have.
    columns: usize,
    /// The `csv` crate's parser, configured as its `ReaderBuilder::new()` does, for the records
    /// the scan declines; at a record's start its state is always a record's start.
    core: csv_core::Reader,
    /// Where `core` says a declined record's cells end.
    core_ends: Vec<usize>,
}

impl<R: Read + Seek> CsvSplitter<R> {
    pub fn new(input: R) -> CsvSplitter<R> {
        Self::with_read_size(input, READ_SIZE)
    }

    fn with_read_size(input: R, read_size: usize) -> CsvSplitter<R> {
        CsvSplitter {
            input,
            buffer: vec![0; read_size],
            start: 0,
            end: 0,
            at_eof: false,
            line: 1,
            columns: 0,
            core: csv_core::Reader::new(),
            core_ends: Vec::new(),
        }
    }

    /// Reads the header line, first: its cells (none in an empty file).
    pub fn read_header(&mut self) -> Result<Vec<String>, Unreadable> {
        // Through `csv_core`, which strips a UTF-8 byte order mark at the file's start if it
        // has it whole, and takes an input left empty as the file's end: so it is given a
        // byte past the mark, as the `csv` crate's first read gives it, unless there is none.
        while self.end <= 3 && !self.at_eof {
            self.fill().map_err(Unreadable::Io)?;
        }
        let mut header = RecordBatch::default();
        self.split_with_core(&mut header)?;
        let header: Vec<String> = match header.records().next() {
            None => Vec::new(),
            Some(record) => {
                let record = record?;
                (0..record.cells.len())
                    .map(|i| record.cell(i).to_string())
                    .collect()
            }
        };
        self.columns = header.len();
        Ok(header)
    }

    /// Reads up to `records` records into `batch` (emptied first); fewer only at the end of the
    /// file. On an error `batch` holds the records before it.
    pub fn read_batch(
        &mut self,
        batch: &mut RecordBatch,
        records: usize,
    ) -> Result<(), Unreadable> {
        batch.clear();
        while batch.len() < records {
            let split = match self.split_plain(batch) {
                Split::NeedInput => {
                    self.fill().map_err(Unreadable::Io)?;
                    continue;
                }
                Split::Declined => self.split_with_core(batch)?,
                split => split,
            };
            if let Split::End = split {
                return Ok(());
            }
            let n = batch.records.len();
            let cells_start = if n >= 2 { batch.records[n - 2].0 } else { 0 };
            if batch.records[n - 1].0 - cells_start != self.columns {
                batch.records.pop();
                return Err(Unreadable::Record);
            }
        }
        Ok(())
    }

    /// The file read again from its start by the `csv` crate, which finds what it refuses.
    pub fn into_input(self) -> R {
        self.input
    }

    /// Splits the next record if it has the usual shape and is wholly read, appending it to
    /// `batch`; on anything but `Record`, `batch` and the splitter are as they were.
    fn split_plain(&mut self, batch: &mut RecordBatch) -> Split {
        let bytes = &self.buffer[self.start..self.end];
        // `csv_core` skips line breaks at a record's start: blank lines, a `\r\n`'s `\n`.
        let mut at = 0;
        let mut line = self.line;
        while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
            line += usize::from(bytes[at] == b'\n');
            at += 1;
        }
        if at == bytes.len() {
            if !self.at_eof {
                return Split::NeedInput;
            }
            self.start = self.end;
            self.line = line;
            return Split::End;
        }
        // The record ends at the line's break, or with the file; a break inside a quoted cell
        // leaves that cell unclosed on the line, which declines it.
        let line_end = match memchr::memchr2(b'\n', b'\r', &bytes[at..]) {
            Some(length) => at + length,
            None if self.at_eof => bytes.len(),
            None => return Split::NeedInput,
        };
        let (text_len, cells_len) = (batch.text.len(), batch.cells.len());
        batch.text.extend_from_slice(&bytes[at..line_end]);
        if !split_line(&mut batch.text, text_len, &mut batch.cells) {
            batch.text.truncate(text_len);
            batch.cells.truncate(cells_len);
            return Split::Declined;
        }
        if let Some(&terminator) = bytes.get(line_end) {
            // A `\r`'s `\n`, if any, is skipped at the next record's start, as `csv_core` does.
            line += usize::from(terminator == b'\n');
            self.start += line_end + 1;
        } else {
            self.start = self.end;
        }
        batch.records.push((batch.cells.len(), self.line));
        self.line = line;
        Split::Record
    }

    /// Splits the next record with `csv_core`, appending it to `batch`: `Record`, or `End` at
    /// the end of the file.
    fn split_with_core(&mut self, batch: &mut RecordBatch) -> Result<Split, Unreadable> {
        let record_line = self.line;
        let text_start = batch.text.len();
        let mut written = text_start;
        let mut cells = 0;
        self.core.set_line(self.line as u64);
        loop {
            // An empty input is the end of the file to `csv_core`.
            if self.start == self.end && !self.at_eof {
                self.fill().map_err(Unreadable::Io)?;
            }
            if written == batch.text.len() {
                batch
                    .text
                    .resize(written + 256.max(written - text_start), 0);
            }
            if cells == self.core_ends.len() {
                self.core_ends.resize(cells + 16.max(cells), 0);
            }
            let (result, read, wrote, ended) = self.core.read_record(
                &self.buffer[self.start..self.end],
                &mut batch.text[written..],
                &mut self.core_ends[cells..],
            );
            self.start += read;
            written += wrote;
            cells += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty
                | csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {}
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => {
                    batch.text.truncate(text_start);
                    self.line = self.core.line() as usize;
                    return Ok(Split::End);
                }
            }
        }
        batch.text.truncate(written);
        let mut cell_start = text_start;
        batch
            .cells
            .extend(self.core_ends[..cells].iter().map(|end| {
                let cell = (cell_start, text_start + end);
                cell_start = cell.1;
                cell
            }));
        batch.records.push((batch.cells.len(), record_line));
        self.line = self.core.line() as usize;
        Ok(Split::Record)
    }

    /// Reads more of the file after the unread bytes, moved to the buffer's start (the buffer
    /// doubled if they fill it); at the end of the file, notes it.
    fn fill(&mut self) -> std::io::Result<()> {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buffer.len() {
            self.buffer.resize(2 * self.buffer.len(), 0);
        }
        loop {
            match self.input.read(&mut self.buffer[self.end..]) {
                Ok(0) => {
                    self.at_eof = true;
                    return Ok(());
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Splits `text[start..]`, one line of a record without its break, into its cells, unquoting
/// each in place, and adds their places to `cells`; `false` (`text` then garbled past `start`)
/// unless every cell is plain (no quote) or wholly quoted (`""` for a quote) and followed by a
/// comma or the line's end, the shapes whose cells `csv_core` reads the same.
fn split_line(text: &mut [u8], start: usize, cells: &mut Vec<(usize, usize)>) -> bool {
    let end = text.len();
    let mut at = start;
    loop {
        if text.get(at) == Some(&b'"') {
            // Its content moves up by a byte for each escaped quote, over the doubles.
            let content = at + 1;
            let mut written = content;
            let mut read = content;
            loop {
                let quote = next_quote_or_comma(text, read, false);
                if quote == end {
                    return false;
                }
                // Before its first escaped quote a cell is in place already.
                if written != read {
                    text.copy_within(read..quote, written);
                }
                written += quote - read;
                read = quote + 1;
                if text.get(read) != Some(&b'"') {
                    break;
                }
                text[written] = b'"';
                written += 1;
                read += 1;
            }
            // The bytes moved over, left behind before the closing quote, are made ASCII, so
            // that the batch's text is UTF-8 wherever its cells are.
            if written + 1 < read {
                text[written..read - 1].fill(b'"');
            }
            cells.push((content, written));
            at = read;
        } else {
            let cell_end = next_quote_or_comma(text, at, true);
            if text.get(cell_end) == Some(&b'"') {
                return false;
            }
            cells.push((at, cell_end));
            at = cell_end;
        }
        match text.get(at) {
            None => return true,
            Some(b',') => at += 1,
            Some(_) => return false,
        }
    }
}

/// Where the first `"` (and, when `commas`, `,`) in `text` from `from` is, else `text.len()`.
/// Eight bytes at a time: those below `-` (0x2D), as `"` and `,` are and few others in CSV
/// data, are then looked at one by one.
#[inline]
fn next_quote_or_comma(text: &[u8], from: usize, commas: bool) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    const DASH: u8 = b'-';
    let wanted = |byte: u8| byte == b'"' || (commas && byte == b',');
    let mut at = from;
    while let Some(word) = text.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A byte's high bit is set if it is below `-` (exact for the lowest such byte, and
        // maybe for some above it: each is checked).
        let mut below = word.wrapping_sub(ONES * u64::from(DASH)) & !word & HIGH_BITS;
        while below != 0 {
            let index = at + (below.trailing_zeros() / 8) as usize;
            if wanted(text[index]) {
                return index;
            }
            below &= below - 1;
        }
        at += 8;
    }
    text[at..]
        .iter()
        .position(|&byte| wanted(byte))
        .map_or(text.len(), |index| at + index)
}

/// What the `csv` crate refuses in `input` read from its start, as the loader has always
/// worded it: the header's refusal at line 1, or a record's at its line. `None` if it refuses
/// nothing (then `CsvSplitter` refused a record the `csv` crate reads: a bug).
pub fn csv_refusal(mut input: impl Read + Seek) -> Option<(usize, String)> {
    if let Err(e) = input.seek(SeekFrom::Start(0)) {
        return Some((0, e.to_string()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    if let Err(e) = reader.headers() {
        return Some((1, format!("cannot read the header: {e}")));
    }
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some((e.position().map_or(0, |p| p.line() as usize), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;

    /// What a reader of CSV made of a file: the header (or that it refused it), then each
    /// record's line, cells and share of the file, up to the first it refused (`true`).
    type CsvRead = (Option<Vec<String>>, Vec<(usize, Vec<String>, usize)>, bool);

    /// `text` as the `csv` crate reads it, as the loader read CSV before `CsvSplitter`.
    fn csv_crate_read(text: &[u8]) -> CsvRead {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text);
        let Ok(header) = reader.headers() else {
            return (None, Vec::new(), true);
        };
        let header = header.iter().map(str::to_string).collect();
        let mut records = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => records.push((
                    record.position().unwrap().line() as usize,
                    record.iter().map(str::to_string).collect(),
                    record.as_byte_record().as_slice().len() + record.len(),
                )),
                Ok(false) => return (Some(header), records, false),
                Err(_) => return (Some(header), records, true),
            }
        }
    }

    /// `text` as `CsvSplitter` splits it, reading `read_size` bytes at a time, in batches of
    /// `batch` records.
    fn split(text: &[u8], read_size: usize, batch: usize) -> CsvRead {
        let mut splitter = CsvSplitter::with_read_size(Cursor::new(text), read_size);
        let Ok(header) = splitter.read_header() else {
            return (None, Vec::new(), true);
        };
        let mut records = Vec::new();
        let mut records_batch = RecordBatch::default();
        loop {
            let read = splitter.read_batch(&mut records_batch, batch);
            for record in records_batch.records() {
                let Ok(record) = record else {
                    return (Some(header), records, true);
                };
                let cells = (0..record.cells.len()).map(|i| record.cell(i).to_string());
                records.push((record.line, cells.collect(), record.bytes()));
            }
            match read {
                Err(_) => return (Some(header), records, true),
                Ok(()) if records_batch.len() < batch => return (Some(header), records, false),
                Ok(()) => {}
            }
        }
    }

    /// A cell as a CSV writer might write it: quoted (quotes doubled) when it must be, and
    /// sometimes when it need not.
    fn written_cell(cell: &str, quote: bool) -> String {
        if quote || cell.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.to_string()
        }
    }

    /// Well-formed CSV files, mostly: three columns, cells of letters, non-ASCII text, commas,
    /// quotes and line breaks, empty ones; `\n` or `\r\n` line ends, blank lines, a record of
    /// another cell count now and then, and the last line's end sometimes missing.
    fn written_files() -> impl Strategy<Value = Vec<u8>> {
        let cell = ("[ab,\"\n\ré ]{0,6}", any::<bool>())
            .prop_map(|(cell, quote)| written_cell(&cell, quote));
        let line = (
            prop::collection::vec(cell, 1..5),
            prop::sample::select(vec!["\n", "\r\n", "\n\n", "\r"]),
        );
        (prop::collection::vec(line, 1..12), any::<bool>()).prop_map(|(lines, last_end)| {
            let mut text = String::new();
            let count = lines.len();
            for (i, (cells, end)) in lines.into_iter().enumerate() {
                // Most records have the header's three cells.
                let cells = if cells.len() == 4 {
                    &cells[..3]
                } else {
                    &cells[..]
                };
                text.push_str(&cells.join(","));
                if i + 1 < count || last_end {
                    text.push_str(end);
                }
            }
            text.into_bytes()
        })
    }

    /// Any bytes of the kinds CSV treats apart, invalid UTF-8 among them.
    fn any_files() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            &b"a"[..],
            b",",
            b"\"",
            b"\n",
            b"\r",
            "é".as_bytes(),
            b"\xc3",
            b"\xff",
            b"\xef\xbb\xbf",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        /// Split in any reads and batches, a file's records are the `csv` crate's: the same
        /// cells, lines and shares of the file, refused at the same record; for well-formed
        /// files and for any bytes, down to stray quotes, lone `\r`s, a byte order mark and
        /// bytes that are not UTF-8.
        #[test]
        fn files_split_as_the_csv_crate_reads_them(
            text in prop_oneof![written_files(), any_files()],
            read_size in 1usize..40,
            batch in 1usize..5,
        ) {
            prop_assert_eq!(split(&text, read_size, batch), csv_crate_read(&text));
        }
    }

    /// A record the `csv` crate refuses is worded by it, read again from the file's start.
    #[test]
    fn a_refused_record_is_worded_by_the_csv_crate() {
        let text = "a,b\n1,2\n3\n";
        let error = csv::ReaderBuilder::new()
            .from_reader(text.as_bytes())
            .records()
            .find_map(Result::err)
            .unwrap();
        let mut input = Cursor::new(text);
        input.set_position(7);
        assert_eq!(csv_refusal(input), Some((3, error.to_string())));
        assert_eq!(csv_refusal(Cursor::new("a,b\n1,2\n")), None);
    }
}
