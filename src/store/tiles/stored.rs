//! Tiles to and from their on-disk form (`persist::format::TilesV2`). Values inside partials
//! are written in the row encoding, as stored rows are; decoding checks every one of them.

use super::partial::{Partial, Stamped};
use super::TileSet;
use crate::persist::format::{PartialV1, StampedV1, TileV1, TilesV2};
use crate::registry::value::Value;
use crate::store::row::{decode_row, encode_row, CorruptRow};

/// The on-disk form of one key's tiles.
pub fn to_stored(view: u32, key: &[u8], tiles: &TileSet) -> TilesV2 {
    TilesV2 {
        view,
        key: key.to_vec(),
        latest_event: tiles.latest_event,
        coarse_until: tiles.coarse_until,
        compacted: tiles.compacted.as_deref().map(partials_to_stored),
        tiles: tiles
            .tiles
            .iter()
            .map(|(start, partials)| TileV1 {
                start: *start,
                partials: partials_to_stored(partials),
            })
            .collect(),
    }
}

/// One key's tiles back from disk: its view, key and tiles; a value that does not decode is
/// an error. The tiles come back without roll-ups: `TileSet::rebuild_rollups` makes them.
pub fn from_stored(stored: TilesV2) -> Result<(u32, Vec<u8>, TileSet), CorruptRow> {
    let tiles = TileSet {
        tiles: stored
            .tiles
            .into_iter()
            .map(|tile| Ok((tile.start, partials_from_stored(tile.partials)?)))
            .collect::<Result<_, CorruptRow>>()?,
        compacted: stored.compacted.map(partials_from_stored).transpose()?,
        latest_event: stored.latest_event,
        coarse_until: stored.coarse_until,
        ..TileSet::default()
    };
    Ok((stored.view, stored.key, tiles))
}

fn partials_to_stored(partials: &[Partial]) -> Vec<PartialV1> {
    partials.iter().map(partial_to_stored).collect()
}

fn partials_from_stored(partials: Vec<PartialV1>) -> Result<Vec<Partial>, CorruptRow> {
    partials.into_iter().map(partial_from_stored).collect()
}

fn value_to_stored(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_row(std::slice::from_ref(value), &mut bytes);
    bytes
}

fn value_from_stored(bytes: &[u8]) -> Result<Value, CorruptRow> {
    let mut values = decode_row(bytes)?;
    match values.pop() {
        Some(value) if values.is_empty() => Ok(value),
        _ => Err(CorruptRow(0)),
    }
}

fn stamped_to_stored(event: &Stamped) -> StampedV1 {
    StampedV1 {
        time: event.0,
        arrival: event.1,
        value: value_to_stored(&event.2),
    }
}

fn stamped_from_stored(event: StampedV1) -> Result<Stamped, CorruptRow> {
    Ok((event.time, event.arrival, value_from_stored(&event.value)?))
}

fn partial_to_stored(partial: &Partial) -> PartialV1 {
    match partial {
        Partial::Count(n) => PartialV1::Count(*n),
        Partial::Sum {
            int,
            float,
            any,
            floats,
        } => PartialV1::Sum {
            int: *int,
            float: *float,
            any: *any,
            floats: *floats,
        },
        Partial::Moments { count, mean, m2 } => PartialV1::Moments {
            count: *count,
            mean: *mean,
            m2: *m2,
        },
        Partial::Extreme(value) => PartialV1::Extreme(value.as_ref().map(value_to_stored)),
        Partial::Last(event) => PartialV1::Last(event.as_ref().map(stamped_to_stored)),
        Partial::Ordered(events) => {
            PartialV1::Ordered(events.iter().map(stamped_to_stored).collect())
        }
        Partial::Hll(registers) => PartialV1::Hll(registers.clone()),
        Partial::Quantiles {
            zeros,
            positive,
            negative,
        } => PartialV1::Quantiles {
            zeros: *zeros,
            positive: positive.iter().map(|(i, n)| (*i, *n)).collect(),
            negative: negative.iter().map(|(i, n)| (*i, *n)).collect(),
        },
    }
}

fn partial_from_stored(partial: PartialV1) -> Result<Partial, CorruptRow> {
    Ok(match partial {
        PartialV1::Count(n) => Partial::Count(n),
        PartialV1::Sum {
            int,
            float,
            any,
            floats,
        } => Partial::Sum {
            int,
            float,
            any,
            floats,
        },
        PartialV1::Moments { count, mean, m2 } => Partial::Moments { count, mean, m2 },
        PartialV1::Extreme(value) => {
            Partial::Extreme(value.as_deref().map(value_from_stored).transpose()?)
        }
        PartialV1::Last(event) => Partial::Last(event.map(stamped_from_stored).transpose()?),
        PartialV1::Ordered(events) => Partial::Ordered(
            events
                .into_iter()
                .map(stamped_from_stored)
                .collect::<Result<_, _>>()?,
        ),
        PartialV1::Hll(registers) => Partial::Hll(registers),
        PartialV1::Quantiles {
            zeros,
            positive,
            negative,
        } => Partial::Quantiles {
            zeros,
            positive: positive.into_iter().collect(),
            negative: negative.into_iter().collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::persist::format::{decode, encode};
    use crate::time::Micros;

    fn partials(n: i64, x: f64) -> Vec<Partial> {
        vec![
            Partial::Count(n),
            Partial::Sum {
                int: n,
                float: x,
                any: true,
                floats: true,
            },
            Partial::Extreme(Some(Value::Int64(n))),
        ]
    }

    /// `to_stored` as it was when the tiles were a `BTreeMap`.
    fn btreemap_to_stored(tiles: &BTreeMap<Micros, Vec<Partial>>) -> TilesV2 {
        TilesV2 {
            view: 3,
            key: b"key".to_vec(),
            latest_event: 77,
            coarse_until: Micros::MIN,
            compacted: None,
            tiles: tiles
                .iter()
                .map(|(start, partials)| TileV1 {
                    start: *start,
                    partials: partials_to_stored(partials),
                })
                .collect(),
        }
    }

    proptest! {
        /// A snapshot's tiles encode to the bytes the `BTreeMap` did, and bytes in any tile
        /// order (which no build writes) read back as the `BTreeMap` read them: sorted, the
        /// last of equal starts kept.
        #[test]
        fn stored_bytes_are_the_btreemaps(entries in prop::collection::vec((-50i64..50, 0i64..9, -1e3f64..1e3), 0..30)) {
            let tiles: Vec<(Micros, Vec<Partial>)> = entries.iter().map(|(start, n, x)| (*start, partials(*n, *x))).collect();
            let model: BTreeMap<Micros, Vec<Partial>> = tiles.iter().cloned().collect();
            let set = TileSet {
                tiles: tiles.iter().cloned().collect(),
                latest_event: 77,
                ..TileSet::default()
            };
            let bytes = encode(&to_stored(3, b"key", &set));
            prop_assert_eq!(&bytes, &encode(&btreemap_to_stored(&model)));
            let (_, _, read) = from_stored(decode(&bytes).expect("just encoded")).expect("valid tiles");
            prop_assert_eq!(&read, &set);

            let mut unsorted = btreemap_to_stored(&model);
            unsorted.tiles = tiles.iter().map(|(start, partials)| TileV1 { start: *start, partials: partials_to_stored(partials) }).collect();
            let (_, _, read) = from_stored(decode(&encode(&unsorted)).expect("just encoded")).expect("valid tiles");
            prop_assert_eq!(read, set);
        }
    }
}
