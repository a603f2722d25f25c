//! How the command line shows things, the same way in every command: columns padded for
//! Chinese text ([`cell`], [`width`]), content hashes cut short ([`short_hash`]), nodes with
//! their names ([`place`]), times in China Standard Time ([`china_time`]), and CSV files read
//! with the `csv` crate ([`read_csv`]).

/// Display columns of `text` (CJK characters take two).
pub(crate) fn width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// `text` padded with spaces to `width` terminal columns (CJK characters take two).
pub(crate) fn cell(text: &str, width: usize) -> String {
    let used = self::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

/// A node as people read it, its name before its code: `华城镇 441424104` (the code alone when
/// its name is not known, `-` for none).
pub(crate) fn place(code: &str) -> String {
    tongban_domains::places::label(code)
}

/// `-` for an empty field.
pub(crate) fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// The first 16 characters of a content hash, as tables print it; a shorter (or odd) hash from
/// a node is printed whole rather than cut mid-character.
pub(crate) fn short_hash(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// The records of a CSV text (RFC 4180: commas, double-quoted fields with `""` for a quote,
/// CRLF or LF line ends; a UTF-8 byte-order mark, as spreadsheet programs write, is skipped).
/// Rows may have different lengths; blank lines are skipped.
pub(crate) fn read_csv(text: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| anyhow::anyhow!("record {}: {e}", i + 1))?;
        records.push(record.iter().map(str::to_owned).collect());
    }
    Ok(records)
}

/// Times as people in Wuhua read them: China Standard Time, UTC+8 (Asia/Shanghai keeps no
/// daylight saving, so a fixed offset is exact), whatever the zone of the machine running the
/// command.
pub(crate) mod china_time {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

    /// UTC+8 in milliseconds.
    pub const OFFSET_MS: i64 = 8 * 3600 * 1000;

    /// The instant as China wall-clock time (naive: printing adds no zone).
    pub fn wall_clock(unix_ms: i64) -> Option<NaiveDateTime> {
        DateTime::from_timestamp_millis(unix_ms.checked_add(OFFSET_MS)?).map(|t| t.naive_utc())
    }

    fn format(unix_ms: i64, pattern: &str) -> Option<String> {
        wall_clock(unix_ms).map(|t| t.format(pattern).to_string())
    }

    /// `2026-11-27 09:30`; `-` for no time (0) or one out of range.
    pub fn minute(unix_ms: i64) -> String {
        if unix_ms == 0 {
            return "-".to_owned();
        }
        format(unix_ms, "%Y-%m-%d %H:%M").unwrap_or_else(|| "-".to_owned())
    }

    /// `11-27 09:30`, for short lines; the raw milliseconds if out of range.
    pub fn short(unix_ms: i64) -> String {
        format(unix_ms, "%m-%d %H:%M").unwrap_or_else(|| format!("{unix_ms}ms"))
    }

    /// `2026-11-27`, the day in China.
    pub fn date(unix_ms: i64) -> String {
        format(unix_ms, "%Y-%m-%d").unwrap_or_default()
    }

    /// `20261127`, the day in China, as ids carry it.
    pub fn compact_date(unix_ms: i64) -> String {
        format(unix_ms, "%Y%m%d").unwrap_or_default()
    }

    /// The instant a China wall-clock time names.
    pub fn from_wall_clock(wall: NaiveDateTime) -> i64 {
        wall.and_utc().timestamp_millis() - OFFSET_MS
    }

    /// The instant `minutes` after midnight starts `date` in China (minutes may run past a day).
    pub fn at(date: NaiveDate, minutes: i64) -> i64 {
        date.and_time(NaiveTime::MIN).and_utc().timestamp_millis() - OFFSET_MS + minutes * 60_000
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used, clippy::expect_used)]
    mod tests {
        use super::*;

        #[test]
        fn times_are_china_wall_clock_wherever_the_machine_is() {
            // 2026-11-27 23:30 UTC is 07:30 on the 28th in China.
            let ms = 1_795_822_200_000;
            assert_eq!(minute(ms), "2026-11-28 07:30");
            assert_eq!(short(ms), "11-28 07:30");
            assert_eq!(
                (date(ms), compact_date(ms)),
                ("2026-11-28".to_owned(), "20261128".to_owned())
            );
            assert_eq!(minute(0), "-");
            assert_eq!(short(i64::MAX), format!("{}ms", i64::MAX));
            let day = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
            assert_eq!(at(day, 7 * 60 + 30), ms);
            assert_eq!(from_wall_clock(wall_clock(ms).unwrap()), ms);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_quotes_bom_and_ragged_rows() {
        let rows = read_csv("\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\nlast\n").unwrap();
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x, y", "say \"hi\""], vec!["last"]]);
        assert_eq!(cell("五华", 6), "五华  ");
        assert_eq!(width("五华x"), 5);
        assert_eq!(short_hash("0123456789abcdef0123"), "0123456789abcdef");
        assert_eq!(short_hash("abc"), "abc");
    }
}
