//! Timestamps (microseconds since the Unix epoch, UTC) and durations (`30d`, `1h30m`) as the
//! repository files, the ingest API and the Feature Service API write them.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};

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
pub fn format_timestamp(micros: Micros) -> String {
    let Some(time) = DateTime::<Utc>::from_timestamp_micros(micros) else {
        return "1970-01-01T00:00:00Z".to_string();
    };
    let fraction = micros.rem_euclid(MICROS_PER_SECOND);
    if !(0..=9999).contains(&time.naive_utc().year()) {
        let format = if fraction == 0 {
            SecondsFormat::Secs
        } else {
            SecondsFormat::Micros
        };
        return time.to_rfc3339_opts(format, true);
    }
    // Four-digit years written digit by digit, as chrono writes them: its formatter cost half
    // of an answer's encoding where values are timestamps. The fields are read from the naive
    // date and time (each of `DateTime`'s accessors converts the instant again).
    fn push_digits(text: &mut String, mut n: u32, width: usize) {
        let mut digits = [0u8; 6];
        for digit in digits[..width].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        text.extend(digits[..width].iter().map(|&digit| char::from(digit)));
    }
    let naive = time.naive_utc();
    let (date, clock) = (naive.date(), naive.time());
    let mut text = String::with_capacity(27);
    push_digits(&mut text, date.year() as u32, 4);
    for (separator, n) in [
        ('-', date.month()),
        ('-', date.day()),
        ('T', clock.hour()),
        (':', clock.minute()),
        (':', clock.second()),
    ] {
        text.push(separator);
        push_digits(&mut text, n, 2);
    }
    if fraction != 0 {
        text.push('.');
        push_digits(&mut text, fraction as u32, 6);
    }
    text.push('Z');
    text
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
        fn timestamps_format_as_chrono_writes_them(micros in any::<i64>(), seconds in -62_135_596_800i64..253_402_300_800, fraction in 0i64..3) {
            let chrono = |micros: Micros| match DateTime::<Utc>::from_timestamp_micros(micros) {
                Some(time) if micros % MICROS_PER_SECOND == 0 => time.to_rfc3339_opts(SecondsFormat::Secs, true),
                Some(time) => time.to_rfc3339_opts(SecondsFormat::Micros, true),
                None => "1970-01-01T00:00:00Z".to_string(),
            };
            // Any instant, and whole seconds (or a few micros past) across years 1..=9999.
            let whole = seconds * MICROS_PER_SECOND + fraction;
            prop_assert_eq!(format_timestamp(micros), chrono(micros));
            prop_assert_eq!(format_timestamp(whole), chrono(whole));
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
