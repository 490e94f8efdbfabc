//! `tecton_proto.common` (and `google.protobuf.Duration`): ids, schemas and data types, and the
//! aggregation functions and time windows of aggregate features. Enums are prost enumerations,
//! carried in their messages as `i32`; each keeps its zero value first, since prost takes the
//! first variant as the field's default and leaves a default value off the wire.

/// `tecton_proto.common.Id`: a 128-bit id as two halves.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Id {
    #[prost(fixed64, tag = "1")]
    pub most_significant_bits: u64,
    #[prost(fixed64, tag = "2")]
    pub least_significant_bits: u64,
}

impl Id {
    /// Quiver's directory ids and object ids are 32 hex digits, Tecton's id written out; other
    /// ids (the bootstrap admin's) have no `Id` form.
    pub fn from_hex(id: &str) -> Option<Id> {
        let bits = u128::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 32)?;
        Some(Id {
            most_significant_bits: (bits >> 64) as u64,
            least_significant_bits: bits as u64,
        })
    }

    /// The 32 hex digits of the id, as Quiver's registry writes object ids.
    pub fn to_hex(&self) -> String {
        format!(
            "{:016x}{:016x}",
            self.most_significant_bits, self.least_significant_bits
        )
    }
}

/// `google.protobuf.Duration`; negative for a time before the window end.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Duration {
    pub fn from_micros(micros: i64) -> Duration {
        // Truncating division keeps seconds and nanos of the same sign, as the type requires.
        Duration {
            seconds: micros / 1_000_000,
            nanos: (micros % 1_000_000) as i32 * 1_000,
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    #[prost(message, repeated, tag = "2")]
    pub columns: Vec<Column>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Column {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "5")]
    pub offline_data_type: Option<DataType>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Field {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub dtype: Option<DataType>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DataType {
    #[prost(enumeration = "DataTypeEnum", tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, boxed, tag = "2")]
    pub array_element_type: Option<Box<DataType>>,
    #[prost(message, repeated, tag = "3")]
    pub struct_fields: Vec<StructField>,
    #[prost(message, optional, boxed, tag = "4")]
    pub map_key_type: Option<Box<DataType>>,
    #[prost(message, optional, boxed, tag = "5")]
    pub map_value_type: Option<Box<DataType>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StructField {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub data_type: Option<DataType>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum DataTypeEnum {
    Unknown = 0,
    Int64 = 2,
    Float32 = 3,
    Float64 = 4,
    String = 5,
    Bool = 6,
    Timestamp = 7,
    Array = 8,
    Struct = 9,
    Map = 11,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum FrameworkVersion {
    Unspecified = 0,
    /// Tecton 1.x's object model, the one the SDK reads definitions of.
    Fwv6 = 6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum BatchComputeMode {
    Unspecified = 0,
    /// Tecton's own compute (not Spark): the closest to a server that computes nothing offline.
    Rift = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum DataSourceType {
    Unknown = 0,
    Batch = 1,
    PushNoBatch = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum AggregationFunction {
    Unknown = 0,
    Count = 1,
    Sum = 2,
    Mean = 3,
    Last = 5,
    Min = 6,
    Max = 7,
    LastDistinctN = 9,
    VarSamp = 10,
    VarPop = 11,
    StddevSamp = 12,
    StddevPop = 13,
    LastNonDistinctN = 14,
    FirstNonDistinctN = 15,
    FirstDistinctN = 16,
    ApproxCountDistinct = 17,
    ApproxPercentile = 18,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregationFunctionParams {
    #[prost(oneof = "FunctionParams", tags = "1, 2, 3, 4")]
    pub params: Option<FunctionParams>,
}

/// The `params` oneof of `AggregationFunctionParams`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FunctionParams {
    #[prost(message, tag = "1")]
    LastN(CountParams),
    #[prost(message, tag = "2")]
    FirstN(CountParams),
    #[prost(message, tag = "3")]
    ApproxCountDistinct(ApproxCountDistinctParams),
    #[prost(message, tag = "4")]
    ApproxPercentile(ApproxPercentileParams),
}

/// `LastNParams` and `FirstNParams`: each is `int32 n = 1` alone.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CountParams {
    #[prost(int32, tag = "1")]
    pub n: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApproxCountDistinctParams {
    #[prost(int32, tag = "1")]
    pub precision: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApproxPercentileParams {
    #[prost(double, tag = "1")]
    pub percentile: f64,
    #[prost(int32, tag = "2")]
    pub precision: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeWindow {
    #[prost(oneof = "Window", tags = "1, 2, 3")]
    pub window: Option<Window>,
}

/// The `window` oneof of `TimeWindow`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Window {
    #[prost(message, tag = "1")]
    RelativeTimeWindow(RelativeTimeWindow),
    #[prost(message, tag = "2")]
    LifetimeWindow(LifetimeWindow),
    #[prost(message, tag = "3")]
    TimeWindowSeries(TimeWindowSeries),
}

/// `[window_start, window_end)` relative to the window's end: both zero or negative.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RelativeTimeWindow {
    #[prost(message, optional, tag = "1")]
    pub window_start: Option<Duration>,
    #[prost(message, optional, tag = "2")]
    pub window_end: Option<Duration>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LifetimeWindow {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeWindowSeries {
    #[prost(message, repeated, tag = "1")]
    pub time_windows: Vec<RelativeTimeWindow>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::{DataType, DataTypeEnum, Duration, Id};

    #[test]
    fn every_named_enum_value_is_on_the_wire() {
        // Only the zero value is a field's default, which prost leaves out.
        let int64 = DataType {
            r#type: DataTypeEnum::Int64 as i32,
            ..DataType::default()
        };
        assert_eq!(int64.encode_to_vec(), [0x08, 0x02]);
    }

    #[test]
    fn directory_ids_are_tecton_ids() {
        let id = Id::from_hex("0000000000000001000000000000000f").unwrap();
        assert_eq!(
            (id.most_significant_bits, id.least_significant_bits),
            (1, 15)
        );
        assert_eq!(id.to_hex(), "0000000000000001000000000000000f");
        assert_eq!(Id::from_hex("bootstrap-admin"), None);
        assert_eq!(Id::from_hex("f"), None, "a short hex id is not a Tecton id");
    }

    #[test]
    fn negative_durations_keep_one_sign() {
        let before = Duration::from_micros(-1_500_000);
        assert_eq!((before.seconds, before.nanos), (-1, -500_000_000));
    }
}
