//! ISO 8601 times of one shape, as nanoseconds since the epoch:
//! `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)`, from 1970 up to 2242 (2**33 s);
//! without the offset too where the caller reads a naive time as UTC (metrics).
//!
//! What Python's `datetime.fromisoformat` accepts beyond that (a space for the T, a comma,
//! more digits, offsets with seconds, no offset) is `None`, for the Python path. The upper
//! bound keeps `int(ts.timestamp())`, a float, exact: below 2**33 s a float's half step is
//! under a microsecond, so truncating it gives the whole seconds.

const MAX_SECONDS: i64 = 1 << 33;

pub fn nanos(text: &str, naive_utc: bool) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(b, 0, 4)?, num(b, 5, 2)?, num(b, 8, 2)?);
    let (hour, minute, second) = (num(b, 11, 2)?, num(b, 14, 2)?, num(b, 17, 2)?);
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0;
    if b.get(i) == Some(&b'.') {
        let from = i + 1;
        i = from;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - from;
        if !(1..=6).contains(&n) {
            return None;
        }
        micros = num(b, from, n)? * 10_i64.pow((6 - n) as u32);
    }
    let offset = match &b[i..] {
        [] if naive_utc => 0,
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(b, i + 1, 2)?, num(b, i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            (h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    if !(0..MAX_SECONDS).contains(&seconds) {
        return None;
    }
    Some(seconds as u64 * 1_000_000_000 + micros as u64 * 1000)
}

fn num(b: &[u8], from: usize, len: usize) -> Option<i64> {
    b.get(from..from + len)?.iter().try_fold(0, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// algorithm, shifted so the year starts in March).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    fn nanos(text: &str) -> Option<u64> {
        super::nanos(text, false)
    }

    #[test]
    fn reads_the_shape() {
        assert_eq!(nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            nanos("2026-02-20T10:00:00+00:00"),
            Some(1_771_581_600_000_000_000)
        );
        assert_eq!(
            nanos("2026-02-20T12:00:00.5+02:00"),
            Some(1_771_581_600_500_000_000)
        );
        assert_eq!(
            nanos("2024-02-29T00:00:00.000001-01:30"),
            Some(1_709_170_200_000_001_000)
        );
    }

    #[test]
    fn says_no_to_the_rest() {
        for text in [
            "2026-02-30T00:00:00Z",
            "2026-02-20 10:00:00Z",
            "2026-02-20T10:00:00",
            "2026-02-20T10:00:00z",
            "2026-02-20T10:00:00.1234567Z",
            "2026-02-20T10:00:00.Z",
            "2026-02-20T24:00:00Z",
            "2026-02-20T10:00:00+24:00",
            "2026-02-20T10:00:00+0000",
            "1969-12-31T23:59:59.5Z",
            "2300-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-02-20T10:00:00,5Z",
            "2026-02-20T10:00:60Z",
            "+026-02-20T10:00:00Z",
        ] {
            assert_eq!(nanos(text), None, "{text}");
        }
    }

    #[test]
    fn naive_is_utc_where_asked() {
        assert_eq!(
            super::nanos("1970-01-01T00:00:01.5", true),
            Some(1_500_000_000)
        );
        assert_eq!(super::nanos("1970-01-01T00:00:01.5", false), None);
        assert_eq!(
            super::nanos("1970-01-01T00:00:01", true),
            Some(1_000_000_000)
        );
    }
}
