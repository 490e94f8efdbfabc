//! Timestamps (microseconds since the Unix epoch, UTC) and durations (`30d`, `1h30m`) as the
//! repository files, the ingest API and the Feature Service API write them.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use crate::echo::echo;

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// The current wall-clock time. From the system clock's duration since the epoch: chrono's
/// `Utc::now` builds a date and time first (~200 instructions a GetFeatures request, ~80 now).
pub fn now_micros() -> Micros {
    micros_since_epoch(SystemTime::now())
}

/// `time` in whole microseconds since the epoch, rounded down as chrono's `timestamp_micros`
/// rounds. Linux refuses a clock set before 1970, but `SystemTime` makes no such promise
/// elsewhere, so an earlier time counts back from the epoch rather than panicking.
fn micros_since_epoch(time: SystemTime) -> Micros {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_micros() as Micros,
        Err(before) => -(before.duration().as_nanos().div_ceil(1_000) as Micros),
    }
}

/// Parses ISO 8601 as Tecton's ingest API accepts it: `YYYY-MM-DDThh:mm[:ss[.fffffffff]]` with an
/// optional `Z` or `±hh:mm` offset (none means UTC); a space may stand for the `T`, and a bare
/// date means midnight UTC. Precision beyond microseconds is truncated.
pub fn parse_timestamp(text: &str) -> Result<Micros, String> {
    // Before trimming: the common form has no spaces around it (and declines if it has).
    if let Some(micros) = parse_utc_rfc3339(text.as_bytes()) {
        return Ok(micros);
    }
    let text = text.trim();
    let expected = || {
        format!(
            "expected an ISO 8601 timestamp such as 2024-05-01T12:00:00Z, got `{}`",
            echo(text)
        )
    };
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Ok(with_offset.timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(with_offset) = DateTime::parse_from_str(text, format) {
            return Ok(with_offset.timestamp_micros());
        }
    }
    let naive_text = text.strip_suffix('Z').unwrap_or(text);
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(naive_text, format) {
            return Ok(naive.and_utc().timestamp_micros());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(naive_text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .ok_or_else(expected)?
            .and_utc()
            .timestamp_micros());
    }
    Err(expected())
}

/// The form clients send most, `YYYY-MM-DDThh:mm:ss[.f]Z` with one to nine fraction digits,
/// read without chrono: chrono's RFC 3339 parser cost ~430 instructions a timestamp, two a
/// row of a `quiver load` chunk. The fourteen digits are checked together and read in pairs
/// (each field through a checked fold cost ~335 a timestamp with the day count; this ~295;
/// reading the nineteen bytes as three words measured no better). `None` for anything else,
/// a leap second included; chrono then reads it. Where this answers, it answers as chrono
/// does (property-tested).
fn parse_utc_rfc3339(text: &[u8]) -> Option<Micros> {
    let (&b'Z', text) = text.split_last()? else {
        return None;
    };
    let (whole, fraction) = text.split_at_checked(19)?;
    // An array, so that the field reads below need no bounds checks.
    let whole: &[u8; 19] = whole.try_into().ok()?;
    if whole[4] != b'-'
        || whole[7] != b'-'
        || whole[10] != b'T'
        || whole[13] != b':'
        || whole[16] != b':'
    {
        return None;
    }
    let digit = whole.map(|byte| byte.wrapping_sub(b'0'));
    // One test for the fourteen digits: a byte that is not one is above 9 after the subtraction.
    let not_digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        .iter()
        .fold(0u8, |any, &at| any | u8::from(digit[at] > 9));
    if not_digits != 0 {
        return None;
    }
    let pair = |at: usize| i64::from(digit[at] * 10 + digit[at + 1]);
    let (year, month, day) = (pair(0) * 100 + pair(2), pair(5), pair(8));
    let (hour, minute, second) = (pair(11), pair(14), pair(17));
    let leap_year = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap_year => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let fraction_micros = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            // Digits past the sixth are checked, then dropped: chrono truncates to the
            // microsecond as dividing its nanoseconds by 1000 does.
            let (micros, beyond) = digits.split_at(digits.len().min(6));
            ascii_number(beyond)?;
            ascii_number(micros)? * [100_000, 10_000, 1000, 100, 10, 1][micros.len() - 1]
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(seconds * MICROS_PER_SECOND + fraction_micros)
}

/// The number `digits` (ASCII digits only, at most 18 so that it cannot overflow) write; `None`
/// if another byte is among them.
pub(crate) fn ascii_number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, digit| {
        let value = digit.wrapping_sub(b'0');
        (value < 10).then_some(n * 10 + i64::from(value))
    })
}

/// The day count from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// RFC 3339 in UTC with a `Z`, and fractional seconds only when there are any (at most six
/// digits), the form the Tecton SDK parses.
///
/// Years 0 to 9999 (every timestamp a feature holds, in practice) are written digit by digit:
/// chrono's formatter cost ~500 instructions a timestamp of a GetFeatures answer. Other years
/// take chrono's way (its signs and widths).
pub fn format_timestamp(micros: Micros) -> String {
    let mut text = Vec::with_capacity(27);
    push_timestamp(&mut text, micros);
    String::from_utf8(text).expect("a timestamp is ASCII")
}

/// Appends [`format_timestamp`]'s text to `out`: an answer writes its timestamps into its
/// buffer without a `String` each.
pub fn push_timestamp(out: &mut Vec<u8>, micros: Micros) {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let fraction = micros.rem_euclid(MICROS_PER_SECOND);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(format_timestamp_with_chrono(micros).as_bytes());
        return;
    }
    let of_day = seconds.rem_euclid(86_400);
    let mut text = [0u8; 27];
    let mut put = |at: usize, width: usize, mut n: i64| {
        for place in (at..at + width).rev() {
            text[place] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, fraction);
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        text[at] = separator;
    }
    let len = if fraction == 0 { 19 } else { 26 };
    text[len] = b'Z';
    out.extend_from_slice(&text[..=len]);
}

/// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn format_timestamp_with_chrono(micros: Micros) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(time) if micros % MICROS_PER_SECOND == 0 => {
            time.to_rfc3339_opts(SecondsFormat::Secs, true)
        }
        Some(time) => time.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => "1970-01-01T00:00:00Z".to_string(),
    }
}

/// Parses a duration written as Tecton writes them: a run of `<n>d`, `<n>h`, `<n>m`, `<n>s`
/// (e.g. `30d`, `1h30m`, `90s`). Zero is allowed only as `0s`.
pub fn parse_duration(text: &str) -> Result<Micros, String> {
    let expected = || {
        format!(
            "expected a duration such as `30d`, `12h` or `1h30m`, got `{}`",
            echo(text)
        )
    };
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut any_unit = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let seconds_per_unit: i64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(expected()),
        };
        let amount: i64 = digits.parse().map_err(|_| expected())?;
        digits.clear();
        any_unit = true;
        total = amount
            .checked_mul(seconds_per_unit * MICROS_PER_SECOND)
            .and_then(|micros| total.checked_add(micros))
            .ok_or_else(expected)?;
    }
    if !digits.is_empty() || !any_unit {
        return Err(expected());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn now_is_chrono_s_now_in_microseconds() {
        let before = Utc::now().timestamp_micros();
        let now = now_micros();
        let after = Utc::now().timestamp_micros();
        assert!(before <= now && now <= after, "{before} {now} {after}");
    }

    /// The epoch moved by `nanos` (before it when negative).
    fn epoch_plus(nanos: i64) -> SystemTime {
        let offset = std::time::Duration::from_nanos(nanos.unsigned_abs());
        if nanos < 0 {
            UNIX_EPOCH - offset
        } else {
            UNIX_EPOCH + offset
        }
    }

    #[test]
    fn times_before_the_epoch_round_down_to_a_microsecond() {
        assert_eq!(micros_since_epoch(epoch_plus(-1)), -1);
        assert_eq!(micros_since_epoch(epoch_plus(-1_000)), -1);
        assert_eq!(micros_since_epoch(epoch_plus(-1_500)), -2);
        assert_eq!(micros_since_epoch(epoch_plus(-3_000_000_000)), -3_000_000);
        assert_eq!(micros_since_epoch(epoch_plus(1_500)), 1);
        assert_eq!(micros_since_epoch(UNIX_EPOCH), 0);
    }

    proptest! {
        #[test]
        fn clock_times_are_counted_as_chrono_counts_them(nanos in any::<i64>()) {
            let time = epoch_plus(nanos);
            prop_assert_eq!(micros_since_epoch(time), DateTime::<Utc>::from(time).timestamp_micros());
        }

        #[test]
        fn timestamps_are_written_as_chrono_writes_them(micros in any::<i64>()) {
            prop_assert_eq!(format_timestamp(micros), format_timestamp_with_chrono(micros));
        }

        #[test]
        fn timestamps_of_years_0_to_9999_are_written_as_chrono_writes_them(
            micros in -62_167_219_200_000_000i64..253_402_300_800_000_000,
            whole_second in any::<bool>(),
        ) {
            let micros = if whole_second { micros - micros.rem_euclid(MICROS_PER_SECOND) } else { micros };
            prop_assert_eq!(format_timestamp(micros), format_timestamp_with_chrono(micros));
        }
    }

    proptest! {
        #[test]
        fn the_common_form_is_read_as_chrono_reads_it(
            text in "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,11})?[Zz]",
        ) {
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| t.timestamp_micros());
            if let Some(micros) = parse_utc_rfc3339(text.as_bytes()) {
                prop_assert_eq!(Some(micros), chrono);
            } else if text.ends_with('Z') && !text.ends_with(".Z") && text.len() <= 30 {
                // Declined only where chrono refuses too, or for a leap second.
                prop_assert!(chrono.is_none() || &text[17..19] == "60", "{}", text);
            }
        }

        #[test]
        fn written_timestamps_are_read_back_without_chrono(
            micros in -62_167_219_200_000_000i64..253_402_300_800_000_000,
            digits in 1usize..=9,
        ) {
            let written = format_timestamp(micros);
            prop_assert_eq!(parse_utc_rfc3339(written.as_bytes()), Some(micros));
            // The same instant with `digits` fraction digits, truncated as chrono truncates.
            let nanos = micros.rem_euclid(MICROS_PER_SECOND) * 1000;
            let fraction = format!("{nanos:09}");
            let text = format!("{}.{}Z", &written[..19], &fraction[..digits]);
            let chrono = DateTime::parse_from_rfc3339(&text).unwrap().timestamp_micros();
            prop_assert_eq!(parse_utc_rfc3339(text.as_bytes()), Some(chrono));
        }
    }

    #[test]
    fn the_common_form_declines_what_chrono_refuses() {
        for text in [
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-12-31T23:59:59.999999999Z",
            "2024-00-10T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "0000-01-01T00:00:00Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(text).ok();
            assert_eq!(
                parse_utc_rfc3339(text.as_bytes()),
                chrono.map(|t| t.timestamp_micros()),
                "{text}"
            );
        }
        // A leap second is left to chrono.
        assert_eq!(parse_utc_rfc3339(b"2016-12-31T23:59:60Z"), None);
        assert!(parse_timestamp("2016-12-31T23:59:60Z").is_ok());
    }

    #[test]
    fn timestamps_at_the_edges_are_written_as_chrono_writes_them() {
        for micros in [
            0,
            -1,
            1,
            MICROS_PER_SECOND,
            -MICROS_PER_SECOND,
            951_782_400 * MICROS_PER_SECOND, // 2000-02-29
            -62_167_219_200_000_000,         // 0000-01-01
            -62_167_219_200_000_001,
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800_000_000,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(
                format_timestamp(micros),
                format_timestamp_with_chrono(micros),
                "{micros}"
            );
        }
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let noon = 1_714_564_800 * MICROS_PER_SECOND; // 2024-05-01T12:00:00Z
        for text in [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00",
            "2024-05-01T14:00:00+02:00",
            "2024-05-01 12:00:00",
            "2024-05-01T12:00:00.000000000Z",
            " 2024-05-01T12:00:00Z\n",
        ] {
            assert_eq!(parse_timestamp(text), Ok(noon), "{text}");
        }
        assert_eq!(
            parse_timestamp("2024-05-01"),
            Ok(noon - 12 * 3600 * MICROS_PER_SECOND)
        );
        assert!(parse_timestamp("yesterday")
            .unwrap_err()
            .contains("ISO 8601"));
        assert_eq!(format_timestamp(noon), "2024-05-01T12:00:00Z");
        assert_eq!(format_timestamp(noon + 1500), "2024-05-01T12:00:00.001500Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(5400 * MICROS_PER_SECOND));
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400 * MICROS_PER_SECOND));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("").is_err());
    }
}
