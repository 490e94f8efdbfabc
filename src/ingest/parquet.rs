//! Reading a Parquet load file (what offline stores and pyarrow write) into validated rows of one
//! view, through the `parquet` crate's record API (no Arrow).
//!
//! The schema is checked first: a column the view does not have, or of a Parquet type with no
//! feature type to map to, is refused by name before any row is read (the record reader would
//! panic on some of those), and so is a column chunk compressed with a codec not built in. Values are then checked against the view's types row by row, so a
//! mismatch names the column, the row group and the row, both counted from 0 as pyarrow does.

use std::fs::File;

use parquet::basic::{Compression, ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

use super::file::{BadRow, Place};
use super::row::{column_places, is_view_column, parse_row, ParsedRow};
use crate::registry::types::DataType;
use crate::registry::value::Value;
use crate::registry::FeatureView;

/// What a Parquet leaf column holds, as far as a feature type cares.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    Bool,
    /// Any signed or unsigned integer of 8 to 64 bits.
    Integer,
    Float,
    Double,
    Utf8,
    /// An int64 timestamp; the record API hands nanoseconds (and some unannotated units) over
    /// as a plain integer, so the unit comes from the schema.
    Timestamp(TimeUnit),
}

/// One top-level column: its name and its leaf's kind (a list's element for a list column).
struct ParquetColumn {
    name: String,
    leaf: Leaf,
}

/// Hands every row to `on_row(row, bytes)`, `bytes` being the row's share of its row group's
/// compressed size, so a progress bar over the file's size moves steadily.
pub fn for_each_row(
    view: &FeatureView,
    file: File,
    mut on_row: impl FnMut(ParsedRow, usize),
) -> Result<(), BadRow> {
    let in_footer = |message: String| BadRow {
        place: Place::Footer,
        message,
    };
    let reader = SerializedFileReader::new(file)
        .map_err(|e| in_footer(format!("not a readable Parquet file: {e}")))?;
    let columns = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|field| {
            if !is_view_column(view, field.name()) {
                return Err(format!(
                    "`{}` is not a column of feature view `{}`",
                    field.name(),
                    view.name
                ));
            }
            let leaf = leaf_of(field).ok_or_else(|| {
                format!(
                    "column `{}`: its Parquet type has no feature type (expected a boolean, an \
                     integer, a float or double, a UTF-8 string, an int64 timestamp, or a list \
                     of those)",
                    field.name()
                )
            })?;
            Ok(ParquetColumn {
                name: field.name().to_string(),
                leaf,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(in_footer)?;
    check_codecs(&reader).map_err(in_footer)?;
    let places = column_places(view, columns.iter().map(|column| column.name.as_str()));

    for group in 0..reader.num_row_groups() {
        let at = |row: usize, message: String| BadRow {
            place: Place::RowGroup { group, row },
            message,
        };
        let group_reader = reader
            .get_row_group(group)
            .map_err(|e| at(0, format!("cannot read: {e}")))?;
        let group_rows = group_reader.metadata().num_rows().max(1) as usize;
        let group_bytes = group_reader.metadata().compressed_size().max(0) as usize;
        let records = group_reader
            .get_row_iter(None)
            .map_err(|e| at(0, format!("cannot read: {e}")))?;
        for (row, record) in records.enumerate() {
            let cells: Vec<Field> = record
                .map_err(|e| at(row, format!("cannot read: {e}")))?
                .into_columns()
                .into_iter()
                .map(|(_, field)| field)
                .collect();
            let parsed = parse_row(view, |place, _, data_type| {
                places[place]
                    .map(|i| value_of(&cells[i], columns[i].leaf, data_type))
                    .transpose()
            })
            .map_err(|message| at(row, message))?;
            on_row(
                parsed,
                group_bytes * (row + 1) / group_rows - group_bytes * row / group_rows,
            );
        }
    }
    Ok(())
}

/// Refuses a column chunk compressed with a codec this build cannot read (only Snappy, the
/// default of pyarrow, pandas, Spark and DuckDB, is built in), naming it, before any row is read.
fn check_codecs(reader: &SerializedFileReader<File>) -> Result<(), String> {
    for (group, row_group) in reader.metadata().row_groups().iter().enumerate() {
        for chunk in row_group.columns() {
            match chunk.compression() {
                Compression::UNCOMPRESSED | Compression::SNAPPY => {}
                other => {
                    let codec = format!("{other:?}");
                    let codec = codec.split('(').next().unwrap_or_default();
                    return Err(format!(
                        "column `{}` in row group {group} is compressed with {codec}; Quiver \
                         reads uncompressed or Snappy Parquet (pyarrow: compression=\"snappy\")",
                        chunk.column_path().string()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The kind of a column's values: a supported primitive, or a list (LIST-annotated group,
/// pyarrow's three levels or the legacy two) of them. `None` for anything else.
fn leaf_of(field: &Type) -> Option<Leaf> {
    if !field.is_primitive() {
        let info = field.get_basic_info();
        let is_list = matches!(info.logical_type_ref(), Some(LogicalType::List))
            || info.converted_type() == ConvertedType::LIST;
        return match field.get_fields() {
            [child] if is_list => element_leaf(child),
            _ => None,
        };
    }
    let info = field.get_basic_info();
    match (field.get_physical_type(), info.logical_type_ref()) {
        (PhysicalType::BOOLEAN, None) => Some(Leaf::Bool),
        (PhysicalType::INT64, Some(LogicalType::Timestamp(timestamp))) => {
            Some(Leaf::Timestamp(timestamp.unit))
        }
        (PhysicalType::INT32 | PhysicalType::INT64, None | Some(LogicalType::Integer { .. }))
            if matches!(
                info.converted_type(),
                ConvertedType::NONE
                    | ConvertedType::INT_8
                    | ConvertedType::INT_16
                    | ConvertedType::INT_32
                    | ConvertedType::INT_64
                    | ConvertedType::UINT_8
                    | ConvertedType::UINT_16
                    | ConvertedType::UINT_32
                    | ConvertedType::UINT_64
            ) =>
        {
            Some(Leaf::Integer)
        }
        (PhysicalType::FLOAT, None) => Some(Leaf::Float),
        (PhysicalType::DOUBLE, None) => Some(Leaf::Double),
        (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)) => Some(Leaf::Utf8),
        (PhysicalType::BYTE_ARRAY, None) if info.converted_type() == ConvertedType::UTF8 => {
            Some(Leaf::Utf8)
        }
        _ => None,
    }
}

/// A list's repeated child: the element itself (legacy two levels), or a group whose only
/// field is the element (three levels).
fn element_leaf(repeated: &Type) -> Option<Leaf> {
    match repeated {
        Type::GroupType { fields, .. } if fields.len() == 1 => leaf_of(&fields[0]),
        _ => leaf_of(repeated),
    }
}

/// Reads one cell as `data_type`; nulls are nulls. The error says what was expected and what
/// the column holds, for `parse_row` to prefix with the column's name.
fn value_of(field: &Field, leaf: Leaf, data_type: &DataType) -> Result<Value, String> {
    let value = match (field, data_type) {
        (Field::Null, _) => Some(Value::Null),
        (Field::Bool(b), DataType::Bool) => Some(Value::Bool(*b)),
        (Field::Str(s), DataType::String) => Some(Value::String(s.clone())),
        (Field::Float(f), DataType::Float32) => Some(Value::Float32(*f)),
        (Field::Float(f), DataType::Float64) => Some(Value::Float64(f64::from(*f))),
        // A double into a float32 feature is narrowed, as a CSV cell's text would be.
        (Field::Double(f), DataType::Float32) => Some(Value::Float32(*f as f32)),
        (Field::Double(f), DataType::Float64) => Some(Value::Float64(*f)),
        (_, DataType::Int64) => integer(field, leaf).map(Value::Int64),
        // Integers are exact in a float feature up to 2^53; JSON and CSV accept them too.
        (_, DataType::Float32) => integer(field, leaf).map(|i| Value::Float32(i as f32)),
        (_, DataType::Float64) => integer(field, leaf).map(|i| Value::Float64(i as f64)),
        (_, DataType::Timestamp) => return timestamp(field, leaf),
        (Field::ListInternal(list), DataType::Array(element)) => {
            let values = list
                .elements()
                .iter()
                .enumerate()
                .map(|(i, item)| value_of(item, leaf, element).map_err(|e| format!("[{i}]: {e}")))
                .collect::<Result<_, _>>()?;
            Some(Value::Array(values))
        }
        _ => None,
    };
    value.ok_or_else(|| format!("expected {data_type}, got {}", kind_of(field, leaf)))
}

/// An integer cell (not a timestamp) as i64; `None` for anything else or a u64 beyond i64.
fn integer(field: &Field, leaf: Leaf) -> Option<i64> {
    match field {
        Field::Byte(i) => Some(i64::from(*i)),
        Field::Short(i) => Some(i64::from(*i)),
        Field::Int(i) => Some(i64::from(*i)),
        Field::Long(i) if matches!(leaf, Leaf::Integer) => Some(*i),
        Field::UByte(i) => Some(i64::from(*i)),
        Field::UShort(i) => Some(i64::from(*i)),
        Field::UInt(i) => Some(i64::from(*i)),
        Field::ULong(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

/// A timestamp cell, in microseconds since the epoch (nanoseconds truncated towards the past).
fn timestamp(field: &Field, leaf: Leaf) -> Result<Value, String> {
    let out_of_range = || "the timestamp is out of range".to_string();
    let micros = match (field, leaf) {
        (Field::Null, _) => return Ok(Value::Null),
        (Field::TimestampMicros(us), _) => *us,
        (Field::TimestampMillis(ms), _) => ms.checked_mul(1000).ok_or_else(out_of_range)?,
        (Field::Long(v), Leaf::Timestamp(TimeUnit::MILLIS)) => {
            v.checked_mul(1000).ok_or_else(out_of_range)?
        }
        (Field::Long(v), Leaf::Timestamp(TimeUnit::MICROS)) => *v,
        (Field::Long(v), Leaf::Timestamp(TimeUnit::NANOS)) => v.div_euclid(1000),
        _ => {
            return Err(format!(
                "expected {}, got {}",
                DataType::Timestamp,
                kind_of(field, leaf)
            ))
        }
    };
    Ok(Value::Timestamp(micros))
}

/// How an error message names what a cell holds.
fn kind_of(field: &Field, leaf: Leaf) -> &'static str {
    match (field, leaf) {
        (Field::ListInternal(_), _) => "a list",
        (_, Leaf::Bool) => "a boolean",
        (_, Leaf::Integer) => "an integer",
        (_, Leaf::Float) => "a float",
        (_, Leaf::Double) => "a double",
        (_, Leaf::Utf8) => "a string",
        (_, Leaf::Timestamp(_)) => "a timestamp",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use crate::config::{Overrides, Settings};
    use crate::ingest::file::{open_load_file, BadRow, Place};
    use crate::ingest::row::ParsedRow;
    use crate::registry::{load_registry, Registry};
    use crate::time::parse_timestamp;

    /// One column chunk: its values and definition levels, and repetition levels for a list.
    struct Chunk {
        values: Values,
        def: Vec<i16>,
        rep: Option<Vec<i16>>,
    }

    enum Values {
        Bool(Vec<bool>),
        Int32(Vec<i32>),
        Int64(Vec<i64>),
        Text(Vec<&'static str>),
    }

    fn chunk(values: Values, def: &[i16]) -> Chunk {
        Chunk {
            values,
            def: def.to_vec(),
            rep: None,
        }
    }

    /// Writes `groups` (each a row group, a chunk per column) as pyarrow would: Snappy.
    fn write_parquet(path: &Path, schema: &str, groups: Vec<Vec<Chunk>>) {
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = SerializedFileWriter::new(
            std::fs::File::create(path).unwrap(),
            Arc::new(parse_message_type(schema).unwrap()),
            Arc::new(properties),
        )
        .unwrap();
        for group in groups {
            let mut row_group = writer.next_row_group().unwrap();
            for chunk in group {
                let mut column = row_group.next_column().unwrap().unwrap();
                let (def, rep) = (Some(chunk.def.as_slice()), chunk.rep.as_deref());
                match chunk.values {
                    Values::Bool(v) => column.typed::<BoolType>().write_batch(&v, def, rep),
                    Values::Int32(v) => column.typed::<Int32Type>().write_batch(&v, def, rep),
                    Values::Int64(v) => column.typed::<Int64Type>().write_batch(&v, def, rep),
                    Values::Text(v) => {
                        let bytes: Vec<ByteArray> = v.into_iter().map(ByteArray::from).collect();
                        column
                            .typed::<ByteArrayType>()
                            .write_batch(&bytes, def, rep)
                    }
                }
                .unwrap();
                column.close().unwrap();
            }
            row_group.close().unwrap();
        }
        writer.close().unwrap();
    }

    fn demo_registry() -> Registry {
        let settings = Settings::load(Path::new("config.toml"), &Overrides::default()).unwrap();
        load_registry(&settings.workspaces).unwrap()
    }

    fn load(registry: &Registry, path: &Path) -> Result<Vec<ParsedRow>, BadRow> {
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        open_load_file(path).unwrap().read_rows(view, |_| {})
    }

    fn micros(text: &str) -> i64 {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn a_parquet_file_loads_the_same_rows_as_the_csv_of_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("users.csv");
        std::fs::write(
            &csv,
            "user_id,timestamp,credit_score,account_age_days,is_verified,home_country,\
             preferred_categories,signup_time\n\
             user_1,2026-01-15T00:00:00.000001Z,712,1460,true,US,\"[\"\"grocery\"\",\"\"travel\"\"]\",2022-01-15T09:30:00.123Z\n\
             user_2,2026-01-15T00:00:00Z,655,92,false,,[],2025-10-15T18:05:12Z\n\
             user_3,2026-01-16T00:00:00Z,,,,,,\n",
        )
        .unwrap();
        // Integers of both widths, event times in nanoseconds (pyarrow's pandas default), a
        // millisecond timestamp feature, a three-level list, and nulls in every feature.
        let parquet = dir.path().join("users.parquet");
        write_parquet(
            &parquet,
            "message schema {
                required binary user_id (UTF8);
                required int64 timestamp (TIMESTAMP(NANOS,true));
                optional int32 credit_score;
                optional int64 account_age_days;
                optional boolean is_verified;
                optional binary home_country (STRING);
                optional group preferred_categories (LIST) {
                    repeated group list { optional binary element (STRING); }
                }
                optional int64 signup_time (TIMESTAMP(MILLIS,false));
            }",
            vec![
                vec![
                    chunk(Values::Text(vec!["user_1", "user_2"]), &[0, 0]),
                    chunk(
                        Values::Int64(vec![
                            micros("2026-01-15T00:00:00.000001Z") * 1000 + 999,
                            micros("2026-01-15T00:00:00Z") * 1000,
                        ]),
                        &[0, 0],
                    ),
                    chunk(Values::Int32(vec![712, 655]), &[1, 1]),
                    chunk(Values::Int64(vec![1460, 92]), &[1, 1]),
                    chunk(Values::Bool(vec![true, false]), &[1, 1]),
                    chunk(Values::Text(vec!["US"]), &[1, 0]),
                    Chunk {
                        values: Values::Text(vec!["grocery", "travel"]),
                        def: vec![3, 3, 1],
                        rep: Some(vec![0, 1, 0]),
                    },
                    chunk(
                        Values::Int64(vec![
                            micros("2022-01-15T09:30:00.123Z") / 1000,
                            micros("2025-10-15T18:05:12Z") / 1000,
                        ]),
                        &[1, 1],
                    ),
                ],
                vec![
                    chunk(Values::Text(vec!["user_3"]), &[0]),
                    chunk(
                        Values::Int64(vec![micros("2026-01-16T00:00:00Z") * 1000]),
                        &[0],
                    ),
                    chunk(Values::Int32(vec![]), &[0]),
                    chunk(Values::Int64(vec![]), &[0]),
                    chunk(Values::Bool(vec![]), &[0]),
                    chunk(Values::Text(vec![]), &[0]),
                    Chunk {
                        values: Values::Text(vec![]),
                        def: vec![0],
                        rep: Some(vec![0]),
                    },
                    chunk(Values::Int64(vec![]), &[0]),
                ],
            ],
        );
        let registry = demo_registry();
        let from_csv = load(&registry, &csv).unwrap();
        assert_eq!(from_csv.len(), 3);
        assert_eq!(load(&registry, &parquet).unwrap(), from_csv);
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_column_row_group_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.parquet");
        let schema = "message schema {
            required binary user_id (UTF8);
            required int64 timestamp (TIMESTAMP(MICROS,true));
            optional binary credit_score (UTF8);
        }";
        let group = |ids: Vec<&'static str>, scores: Vec<&'static str>, def: &[i16]| {
            let times = vec![micros("2026-01-15T00:00:00Z"); ids.len()];
            vec![
                chunk(Values::Text(ids), &vec![0; def.len()]),
                chunk(Values::Int64(times), &vec![0; def.len()]),
                chunk(Values::Text(scores), def),
            ]
        };
        // The first row group's scores are all null, so the mismatch shows in the second.
        write_parquet(
            &path,
            schema,
            vec![
                group(vec!["user_1"], vec![], &[0]),
                group(vec!["user_2", "user_3"], vec!["712"], &[0, 1]),
            ],
        );
        let error = load(&demo_registry(), &path).unwrap_err();
        assert_eq!(error.place, Place::RowGroup { group: 1, row: 1 });
        assert_eq!(
            error.to_string(),
            "row group 1, row 1: column `credit_score`: expected int64, got a string"
        );
    }

    #[test]
    fn a_column_the_view_lacks_or_of_an_unmapped_type_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.parquet");
        let refusal = |schema: &str| {
            write_parquet(&path, schema, vec![]);
            load(&demo_registry(), &path).unwrap_err().to_string()
        };
        assert_eq!(
            refusal("message schema { optional int64 credit_scor; }"),
            "Parquet schema: `credit_scor` is not a column of feature view `user_profile`"
        );
        assert!(
            refusal("message schema { optional int32 credit_score (DECIMAL(9,2)); }").starts_with(
                "Parquet schema: column `credit_score`: its Parquet type has no feature type"
            )
        );
    }
}
