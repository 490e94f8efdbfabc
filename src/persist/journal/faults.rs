//! A segment file that fails on demand (a full disk, a failed cut, a failed fsync), for the
//! journal's own tests and for its owners' (the rows writer's undo of an apply), which put it
//! under a live journal with [`Journal::inject_faults`]. Test builds only.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use super::{open_segment, segment_path, Journal, SegmentFile};

/// What fails, changed by the test as it goes: a full disk accepts half of each write;
/// truncation can fail too; an fsync that fails loses what it could not write, as Linux may
/// (the file is cut back to the last fsynced length).
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub disk_full: bool,
    pub truncate_fails: bool,
    /// How many of the next fsyncs fail.
    pub sync_failures: u32,
    /// How many fsyncs succeed before those fail (one record taken, the next refused).
    pub syncs_before_failures: u32,
}

#[derive(Debug)]
struct FaultyFile {
    inner: File,
    faults: Arc<Mutex<Faults>>,
    synced_len: u64,
}

impl SegmentFile for FaultyFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.faults.lock().unwrap().disk_full {
            Write::write_all(&mut self.inner, &bytes[..bytes.len() / 2])?;
            return Err(io::Error::from_raw_os_error(28));
        }
        Write::write_all(&mut self.inner, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut faults = self.faults.lock().unwrap();
        if faults.syncs_before_failures > 0 {
            faults.syncs_before_failures -= 1;
        } else if faults.sync_failures > 0 {
            faults.sync_failures -= 1;
            self.inner.set_len(self.synced_len)?;
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.sync_data()?;
        self.synced_len = self.inner.metadata()?.len();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        if self.faults.lock().unwrap().truncate_fails {
            return Err(io::Error::from_raw_os_error(5));
        }
        SegmentFile::truncate(&mut self.inner, len)?;
        self.synced_len = len;
        Ok(())
    }
}

impl Journal {
    /// From now on the current segment fails as `faults` says; a rotation's next segment is a
    /// plain file again.
    pub(crate) fn inject_faults(&mut self, faults: Arc<Mutex<Faults>>) {
        let inner = open_segment(&segment_path(&self.dir, self.seq)).unwrap();
        self.file = Box::new(FaultyFile {
            synced_len: inner.metadata().unwrap().len(),
            inner,
            faults,
        });
    }
}
