//! The request bodies `quiver load` encodes while it validates a file, kept until the whole
//! file has proved good (a bad row loads nothing) and then sent: in memory up to a limit, the
//! rest in an unnamed temporary file, so that a file of any size loads in bounded memory (a
//! binary rows body takes ~71 bytes a row of the demo's `user_profile`: 1M rows ~71 MB).

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// Bodies in the order they were kept, each read back by its index.
pub struct KeptBodies {
    /// The bytes the bodies held in memory may take; the first body past it, and every later
    /// one, goes to the file.
    memory_limit: usize,
    in_memory: Vec<Vec<u8>>,
    in_memory_bytes: usize,
    spilled: Option<Spilled>,
}

/// The bodies written to the temporary file, back to back.
struct Spilled {
    file: File,
    /// Each body's bytes in the file.
    bodies: Vec<Range<u64>>,
}

impl KeptBodies {
    pub fn new(memory_limit: usize) -> KeptBodies {
        KeptBodies {
            memory_limit,
            in_memory: Vec::new(),
            in_memory_bytes: 0,
            spilled: None,
        }
    }

    /// Keeps `body` after the ones kept before it.
    pub fn keep(&mut self, body: Vec<u8>) -> io::Result<()> {
        if self.spilled.is_none() && self.in_memory_bytes + body.len() <= self.memory_limit {
            self.in_memory_bytes += body.len();
            self.in_memory.push(body);
            return Ok(());
        }
        let spilled = match &mut self.spilled {
            Some(spilled) => spilled,
            // Unlinked at once: nothing is left behind, however the load ends.
            None => self.spilled.insert(Spilled {
                file: tempfile::tempfile()?,
                bodies: Vec::new(),
            }),
        };
        let start = spilled.bodies.last().map_or(0, |last| last.end);
        spilled.file.write_all(&body)?;
        spilled.bodies.push(start..start + body.len() as u64);
        Ok(())
    }

    /// The body kept `index`th (from 0), `None` past the last; read from any thread.
    pub fn get(&self, index: usize) -> Option<io::Result<Cow<'_, [u8]>>> {
        if let Some(body) = self.in_memory.get(index) {
            return Some(Ok(Cow::Borrowed(body)));
        }
        let spilled = self.spilled.as_ref()?;
        let place = spilled.bodies.get(index - self.in_memory.len())?;
        let mut body = vec![0; (place.end - place.start) as usize];
        // A positional read: the senders share the file without sharing an offset.
        Some(
            spilled
                .file
                .read_exact_at(&mut body, place.start)
                .map(|()| Cow::Owned(body)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(kept: &KeptBodies) -> Vec<Vec<u8>> {
        (0..)
            .map_while(|index| kept.get(index))
            .map(|body| body.unwrap().into_owned())
            .collect()
    }

    #[test]
    fn bodies_past_the_memory_limit_read_back_from_the_file_in_order() {
        let wanted: Vec<Vec<u8>> = (0..10u8).map(|n| vec![n; 3 + usize::from(n)]).collect();
        for limit in [0, 7, 20, 1 << 20] {
            let mut kept = KeptBodies::new(limit);
            for body in &wanted {
                kept.keep(body.clone()).unwrap();
            }
            assert_eq!(bodies(&kept), wanted, "memory limit {limit}");
            assert!(kept.in_memory_bytes <= limit);
        }
    }

    #[test]
    fn once_a_body_spilled_the_later_ones_follow_it_even_if_they_would_fit() {
        let mut kept = KeptBodies::new(4);
        for body in [vec![1; 3], vec![2; 5], vec![3; 1]] {
            kept.keep(body).unwrap();
        }
        assert_eq!(kept.in_memory.len(), 1);
        assert_eq!(bodies(&kept), [vec![1; 3], vec![2; 5], vec![3; 1]]);
    }
}
