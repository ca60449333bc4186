//! The sliver of HTTP/1.1 the server speaks: reading a request head (request line and the two
//! conditional headers), HTTP dates, validators, and writing answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Longest request head (request line and headers) the server reads before answering 431.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Default)]
pub(crate) struct Request {
    /// `GET`, `HEAD`, …
    pub(crate) method: String,
    /// The request target as sent, e.g. `/run/live.mclr?t=1`.
    pub(crate) target: String,
    /// The `If-None-Match` header, if sent.
    pub(crate) if_none_match: Option<String>,
    /// The `If-Modified-Since` header, if sent.
    pub(crate) if_modified_since: Option<String>,
}

/// The answers the server gives besides a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    HeadTooLarge,
    Unavailable,
}

impl Status {
    fn code_and_reason(self) -> (u16, &'static str) {
        match self {
            Self::BadRequest => (400, "Bad Request"),
            Self::Forbidden => (403, "Forbidden"),
            Self::NotFound => (404, "Not Found"),
            Self::MethodNotAllowed => (405, "Method Not Allowed"),
            Self::HeadTooLarge => (431, "Request Header Fields Too Large"),
            Self::Unavailable => (503, "Service Unavailable"),
        }
    }
}

/// Reads the request line and the headers, keeping the conditional ones.
pub(crate) fn read_head(stream: &TcpStream) -> Result<Request, Status> {
    // `take` bounds what a client can make the server buffer, even within one endless line.
    let limit = u64::try_from(MAX_HEAD_BYTES + 1).unwrap_or(u64::MAX);
    let mut reader = BufReader::new(stream.take(limit));
    let mut line = Vec::new();
    let mut read = 0usize;
    let mut request: Option<Request> = None;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|_| Status::BadRequest)?;
        read += n;
        if read > MAX_HEAD_BYTES {
            return Err(Status::HeadTooLarge);
        }
        if n == 0 {
            return Err(Status::BadRequest);
        }
        let text = std::str::from_utf8(&line).map_err(|_| Status::BadRequest)?;
        let trimmed = text.trim_end_matches(['\r', '\n']);
        match request.as_mut() {
            None => {
                let mut parts = trimmed.split(' ');
                let (Some(method), Some(target), Some(version), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(Status::BadRequest);
                };
                if !version.starts_with("HTTP/1.") {
                    return Err(Status::BadRequest);
                }
                request = Some(Request {
                    method: method.to_owned(),
                    target: target.to_owned(),
                    ..Request::default()
                });
            }
            Some(request) if trimmed.is_empty() => return Ok(std::mem::take(request)),
            Some(request) => {
                let Some((name, value)) = trimmed.split_once(':') else {
                    return Err(Status::BadRequest);
                };
                let value = Some(value.trim().to_owned());
                if name.eq_ignore_ascii_case("if-none-match") {
                    request.if_none_match = value;
                } else if name.eq_ignore_ascii_case("if-modified-since") {
                    request.if_modified_since = value;
                }
            }
        }
    }
}

/// The validators of one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    /// Quoted entity tag, e.g. `"1a2b-4000-17f3c0a1b2c3d4e5"`.
    pub(crate) etag: String,
    /// Modification time in whole seconds since the Unix epoch.
    pub(crate) modified_secs: u64,
}

impl Validators {
    /// The validators of a file of `len` bytes modified `modified_ns` nanoseconds after the
    /// Unix epoch, with identity `inode` (0 where the platform has none). The inode makes a file
    /// replaced by rename differ even when the size and the (coarse) time stamp do not.
    pub(crate) fn new(inode: u64, len: u64, modified_ns: u128) -> Self {
        Self {
            etag: format!("\"{inode:x}-{len:x}-{modified_ns:x}\""),
            modified_secs: u64::try_from(modified_ns / 1_000_000_000).unwrap_or(u64::MAX),
        }
    }

    /// Whether a request with these conditional headers already has this version: an
    /// `If-None-Match` listing the entity tag (weakly compared) or `*`; without one, an
    /// `If-Modified-Since` at or after the modification time (RFC 9110 §13.1.3: the entity tag
    /// wins when both are sent).
    pub(crate) fn not_modified(&self, request: &Request) -> bool {
        if let Some(tags) = &request.if_none_match {
            return tags.split(',').map(str::trim).any(|tag| {
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag.as_str()
            });
        }
        request
            .if_modified_since
            .as_deref()
            .and_then(parse_http_date)
            .is_some_and(|since| self.modified_secs <= since)
    }
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `secs` since the Unix epoch as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = WEEKDAYS
        .get(usize::try_from(days % 7).unwrap_or(0))
        .copied()
        .unwrap_or("Thu");
    let month_name = MONTHS
        .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an IMF-fixdate (the only form the server writes) into seconds since the Unix epoch;
/// `None` for anything else, which the caller ignores as the RFC asks.
pub(crate) fn parse_http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    let day: u64 = day.parse().ok()?;
    let month = u64::try_from(MONTHS.iter().position(|m| *m == month)? + 1).ok()?;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(str::parse::<u64>);
    let (h, m, s) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    if hms.next().is_some() || !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || s > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Day count since 1970-01-01 of a date (the inverse of [`civil_from_days`], year ≥ 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = year - u64::from(month <= 2);
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// What a file answer carries after its head.
pub(crate) enum Body<'a> {
    /// `304 Not Modified`: the client has this version.
    NotModified,
    /// `200 OK` to a `HEAD`: the length a `GET` would send, and no body.
    Head(u64),
    /// `200 OK` with the file's bytes.
    Full(&'a [u8]),
}

/// Writes a file answer; every one carries the validators and `Cache-Control: no-cache`, so
/// that a browser keeps the file but asks again each time.
pub(crate) fn respond_file(
    stream: &mut TcpStream,
    content_type: &str,
    validators: &Validators,
    body: &Body<'_>,
) -> std::io::Result<()> {
    let common = format!(
        "ETag: {}\r\nLast-Modified: {}\r\nCache-Control: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        validators.etag,
        http_date(validators.modified_secs)
    );
    let (len, bytes) = match body {
        Body::NotModified => {
            let head = format!("HTTP/1.1 304 Not Modified\r\n{common}\r\n");
            stream.write_all(head.as_bytes())?;
            return stream.flush();
        }
        Body::Head(len) => (*len, None),
        Body::Full(bytes) => (bytes.len() as u64, Some(*bytes)),
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n{common}\r\n"
    );
    stream.write_all(head.as_bytes())?;
    if let Some(bytes) = bytes {
        stream.write_all(bytes)?;
    }
    stream.flush()
}

/// Most bytes [`drain`] reads and discards.
const DRAIN_BYTES: u64 = 1 << 20;

/// Ends the sending side and reads what the client still sends (at most [`DRAIN_BYTES`], for at
/// most a second), so that closing the socket does not reset the connection under the answer.
pub(crate) fn drain(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(1)))?;
    let _ = std::io::copy(&mut (&*stream).take(DRAIN_BYTES), &mut std::io::sink());
    Ok(())
}

/// Writes an error answer with a one-line plain-text body (left out for `HEAD`).
pub(crate) fn respond_status(
    stream: &mut TcpStream,
    status: Status,
    head_only: bool,
) -> std::io::Result<()> {
    let (code, reason) = status.code_and_reason();
    let body = format!("{code} {reason}\n");
    let allow = if status == Status::MethodNotAllowed {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::{Request, Validators, civil_from_days, http_date, parse_http_date};

    #[test]
    fn http_dates_are_imf_fixdates_and_parse_back() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        for secs in [0, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs), "{secs}");
        }
        assert_eq!(civil_from_days(19_000), (2022, 1, 8));
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn conditional_requests_compare_the_entity_tag_first() {
        let v = Validators::new(7, 100, 1_700_000_000_123_456_789);
        assert_eq!(v.etag, "\"7-64-17979cfe3d85cd15\"");
        let req = |inm: Option<&str>, ims: Option<&str>| Request {
            if_none_match: inm.map(str::to_owned),
            if_modified_since: ims.map(str::to_owned),
            ..Request::default()
        };
        assert!(v.not_modified(&req(Some(&v.etag), None)));
        assert!(v.not_modified(&req(Some(&format!("\"x\", W/{}", v.etag)), None)));
        assert!(v.not_modified(&req(Some("*"), None)));
        assert!(!v.not_modified(&req(Some("\"other\""), None)));
        let later = http_date(1_700_000_001);
        let earlier = http_date(1_699_999_999);
        assert!(v.not_modified(&req(None, Some(&later))));
        assert!(v.not_modified(&req(None, Some(&http_date(1_700_000_000)))));
        assert!(!v.not_modified(&req(None, Some(&earlier))));
        // A stale entity tag wins over a fresh date.
        assert!(!v.not_modified(&req(Some("\"other\""), Some(&later))));
        assert!(!v.not_modified(&req(None, Some("garbage"))));
        assert!(!v.not_modified(&req(None, None)));
    }
}
