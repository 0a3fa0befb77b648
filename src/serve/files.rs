//! Sends one stored file as a static host (S3, CloudFront) does: streamed a chunk at a time, never
//! read whole, with `Range`, `HEAD`, `ETag` + `If-None-Match` and `Last-Modified` +
//! `If-Modified-Since`, so a 5 GiB file costs `cutover serve` no more memory than a small one.

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::store::{Store, StoreResult};

/// The answer to `method` with `request`'s headers for the object at `key`; `None` when it does
/// not exist, so the caller decides what a missing file means.
pub async fn send(store: &dyn Store, key: &str, method: &Method, request: &HeaderMap) -> StoreResult<Option<Response>> {
    let Some(object) = store.open(key).await? else { return Ok(None) };
    let etag = format!("\"{}\"", object.etag);
    let modified = object.modified.map(whole_seconds);
    let last_modified = modified.map(http_date);
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    put(headers, header::ETAG, &etag);
    put(headers, header::CACHE_CONTROL, &object.meta.cache_control);
    if let Some(date) = &last_modified {
        put(headers, header::LAST_MODIFIED, date);
    }
    if not_modified(request, &etag, modified) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(Some(response));
    }
    put(headers, header::ACCEPT_RANGES, "bytes");
    // RFC 9110 14.2: GET is the only method ranges are defined for; HEAD describes the whole file.
    let wanted = if method == Method::GET && if_range_holds(request, &etag, last_modified.as_deref()) {
        wanted(request.get(header::RANGE).and_then(|v| v.to_str().ok()), object.size)
    } else {
        Wanted::Whole
    };
    let range = match wanted {
        Wanted::Whole => 0..object.size,
        Wanted::Part(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, object.size);
            put(response.headers_mut(), header::CONTENT_RANGE, &content_range);
            range
        }
        Wanted::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            put(response.headers_mut(), header::CONTENT_RANGE, &format!("bytes */{}", object.size));
            put(response.headers_mut(), header::CONTENT_LENGTH, "0");
            return Ok(Some(response));
        }
    };
    let headers = response.headers_mut();
    put(headers, header::CONTENT_TYPE, &object.meta.content_type);
    put(headers, header::CONTENT_LENGTH, &(range.end - range.start).to_string());
    if method == Method::GET && !range.is_empty() {
        *response.body_mut() = Body::from_stream((object.read)(range));
    }
    Ok(Some(response))
}

fn put(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// No range, one that is malformed, or several: S3 answers several ranges with the whole
    /// object too, and RFC 9110 lets a server ignore any `Range`.
    Whole,
    /// One satisfiable range, end exclusive.
    Part(Range<u64>),
    /// One range that starts past the end (or a suffix of 0 bytes): 416.
    Unsatisfiable,
}

/// One `range-spec` of RFC 9110 14.1.1.
enum Spec {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(specs) = range.and_then(parse_range) else { return Wanted::Whole };
    let [spec] = specs.as_slice() else { return Wanted::Whole };
    let range = match *spec {
        Spec::FromTo(first, last) => first..last.saturating_add(1).min(size),
        Spec::From(first) => first..size,
        Spec::Suffix(length) => size.saturating_sub(length)..size,
    };
    if range.is_empty() { Wanted::Unsatisfiable } else { Wanted::Part(range) }
}

/// The specs of `bytes=...`, or `None` when any of it is malformed (then the header is ignored).
fn parse_range(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    // Empty list elements are allowed (RFC 9110 5.6.1); a set with nothing else is not.
    let specs: Vec<Spec> = set
        .split(',')
        .map(str::trim)
        .filter(|spec| !spec.is_empty())
        .map(|spec| match spec.split_once('-')? {
            ("", length) => Some(Spec::Suffix(number(length)?)),
            (first, "") => Some(Spec::From(number(first)?)),
            (first, last) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(Spec::FromTo(first, last))
            }
        })
        .collect::<Option<_>>()?;
    (!specs.is_empty()).then_some(specs)
}

/// A decimal of digits only; one too large for u64 stands for "more than any file".
fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// Whether a cache's copy is current (RFC 9110 13.2.2): `If-None-Match` by weak comparison, and
/// only without it `If-Modified-Since`.
fn not_modified(request: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    let mut tags = request.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).peekable();
    if tags.peek().is_some() {
        return tags
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    }
    let since = request.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()).and_then(parse_http_date);
    matches!((modified, since), (Some(modified), Some(since)) if modified <= since)
}

/// Whether `If-Range`, when sent, still names this file (a strong ETag or its exact date), so the
/// range applies; otherwise the whole file is sent.
fn if_range_holds(request: &HeaderMap, etag: &str, last_modified: Option<&str>) -> bool {
    let Some(value) = request.get(header::IF_RANGE) else { return true };
    let Ok(value) = value.to_str() else { return false };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return value == etag;
    }
    last_modified
        .is_some_and(|date| parse_http_date(value).is_some() && parse_http_date(value) == parse_http_date(date))
}

/// HTTP dates count whole seconds.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + std::time::Duration::from_secs(seconds)
}

/// The IMF-fixdate of RFC 9110 5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn parse_http_date(value: &str) -> Option<SystemTime> {
    DateTime::parse_from_rfc2822(value.trim()).ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_is_resolved_against_the_size() {
        let part = |header: &str, size| wanted(Some(header), size);
        assert_eq!(part("bytes=0-99", 1000), Wanted::Part(0..100));
        assert_eq!(part("bytes=990-2000", 1000), Wanted::Part(990..1000), "a last byte past the end is clamped");
        assert_eq!(part("bytes=-100", 1000), Wanted::Part(900..1000));
        assert_eq!(part("bytes=-5000", 1000), Wanted::Part(0..1000), "a suffix longer than the file is all of it");
        assert_eq!(part("bytes=-99999999999999999999999", 10), Wanted::Part(0..10));
        assert_eq!(part("bytes=500-", 1000), Wanted::Part(500..1000));
        assert_eq!(part("Bytes = 1-1", 1000), Wanted::Part(1..2));
        assert_eq!(part("bytes=, 3-4,", 1000), Wanted::Part(3..5), "empty list elements are allowed");
        assert_eq!(part("bytes=999-999", 1000), Wanted::Part(999..1000));
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        for header in ["bytes=1000-", "bytes=1000-1001", "bytes=-0", "bytes=99999999999999999999-"] {
            assert_eq!(wanted(Some(header), 1000), Wanted::Unsatisfiable, "{header}");
        }
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable, "an empty file has no byte 0");
    }

    #[test]
    fn malformed_and_multiple_ranges_are_ignored() {
        for header in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes=1-2-3",
            "items=0-1",
            "bytes 0-1",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=0-1,x",
            "bytes=0-1,2-3",
            "bytes=-1,0-0",
            "",
            "bytes=1 -2",
        ] {
            assert_eq!(wanted(Some(header), 1000), Wanted::Whole, "{header:?}");
        }
        assert_eq!(wanted(None, 1000), Wanted::Whole);
    }

    #[test]
    fn dates_round_trip_in_whole_seconds() {
        let time = UNIX_EPOCH + std::time::Duration::from_millis(784_111_777_250);
        assert_eq!(http_date(whole_seconds(time)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(whole_seconds(time)));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn conditions_follow_rfc_9110() {
        let headers = |pairs: &[(HeaderName, &str)]| {
            pairs
                .iter()
                .map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap()))
                .collect::<HeaderMap>()
        };
        let etag = "\"abc\"";
        let modified = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        let ims = header::IF_MODIFIED_SINCE;
        let inm = header::IF_NONE_MATCH;
        assert!(not_modified(&headers(&[(inm.clone(), "\"x\", W/\"abc\"")]), etag, modified), "weak comparison");
        assert!(not_modified(&headers(&[(inm.clone(), "*")]), etag, modified));
        assert!(!not_modified(&headers(&[(inm.clone(), "\"x\"")]), etag, modified));
        let later = "Mon, 07 Nov 1994 08:49:37 GMT";
        assert!(
            !not_modified(&headers(&[(inm.clone(), "\"x\""), (ims.clone(), later)]), etag, modified),
            "If-None-Match decides when sent"
        );
        assert!(not_modified(&headers(&[(ims.clone(), later)]), etag, modified));
        assert!(not_modified(&headers(&[(ims.clone(), "Sun, 06 Nov 1994 08:49:37 GMT")]), etag, modified));
        assert!(!not_modified(&headers(&[(ims.clone(), "Sun, 06 Nov 1994 08:49:36 GMT")]), etag, modified));
        assert!(!not_modified(&headers(&[(ims.clone(), "garbage")]), etag, modified));
        assert!(!not_modified(&headers(&[(ims, later)]), etag, None));
        let date = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(if_range_holds(&headers(&[]), etag, date));
        assert!(if_range_holds(&headers(&[(header::IF_RANGE, "\"abc\"")]), etag, date));
        assert!(!if_range_holds(&headers(&[(header::IF_RANGE, "W/\"abc\"")]), etag, date), "strong comparison");
        assert!(!if_range_holds(&headers(&[(header::IF_RANGE, "\"old\"")]), etag, date));
        assert!(if_range_holds(&headers(&[(header::IF_RANGE, "Sun, 06 Nov 1994 08:49:37 GMT")]), etag, date));
        assert!(!if_range_holds(&headers(&[(header::IF_RANGE, "Sun, 06 Nov 1994 08:49:38 GMT")]), etag, date));
        assert!(!if_range_holds(&headers(&[(header::IF_RANGE, "soon")]), etag, date));
    }
}
