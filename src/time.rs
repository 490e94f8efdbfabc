//! Timestamps (microseconds since the Unix epoch, UTC) and durations (`30d`, `1h30m`) as the
//! repository files, the ingest API and the Feature Service API write them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// The current wall-clock time.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// Parses ISO 8601 as Tecton's ingest API accepts it: `YYYY-MM-DDThh:mm[:ss[.fffffffff]]` with an
/// optional `Z` or `±hh:mm` offset (none means UTC); a space may stand for the `T`, and a bare
/// date means midnight UTC. Precision beyond microseconds is truncated.
pub fn parse_timestamp(text: &str) -> Result<Micros, String> {
    let text = text.trim();
    let expected =
        || format!("expected an ISO 8601 timestamp such as 2024-05-01T12:00:00Z, got `{text}`");
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
    let expected = || format!("expected a duration such as `30d`, `12h` or `1h30m`, got `{text}`");
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

    proptest! {
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
