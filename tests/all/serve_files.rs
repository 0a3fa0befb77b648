//! `cutover serve` sends a file as a static host does: `Range`, `HEAD`, `ETag` + `If-None-Match`,
//! `Last-Modified` + `If-Modified-Since`, and streamed, so its memory stays small whatever it sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{Edge, Fixture, Response, http_send, on_both_backends};

on_both_backends!(
    ranges_are_answered_as_a_static_host_answers_them,
    head_answers_every_header_and_no_body,
    an_etag_or_a_date_the_client_holds_gets_304,
    a_path_through_a_file_is_a_missing_file_not_a_502,
);

/// 1,000 bytes, each telling its offset apart from its neighbours'.
fn data() -> String {
    (0..1000u32).map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap())).collect()
}

/// A release with `data.bin` live behind `cutover serve`.
fn live_data(mut f: Fixture) -> (Fixture, Edge) {
    let edge = f.start_edge();
    let dist = f.site("v1", &[("index.html", "1"), ("data.bin", &data())]);
    f.deploy(&dist, "1");
    edge.wait_for_active("1");
    (f, edge)
}

fn send(edge: &Edge, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    http_send(&edge.url, method, path, headers, "").expect("requesting the edge")
}

fn ranges_are_answered_as_a_static_host_answers_them(f: Fixture) {
    let (_f, edge) = live_data(f);
    let data = data();
    for (range, from, to) in [("bytes=0-99", 0, 99), ("bytes=-100", 900, 999), ("bytes=900-", 900, 999)] {
        let answer = send(&edge, "GET", "/data.bin", &[("range", range)]);
        assert_eq!(answer.status, 206, "{range}");
        assert_eq!(answer.header("content-range"), Some(format!("bytes {from}-{to}/1000").as_str()), "{range}");
        assert_eq!(answer.header("content-length"), Some(format!("{}", to - from + 1).as_str()), "{range}");
        assert_eq!(answer.body, data[from..=to], "{range}");
        assert_eq!(answer.header("x-cutover-version"), Some("1"), "a partial answer names its version too");
    }
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let answer = send(&edge, "GET", "/data.bin", &[("range", range)]);
        assert_eq!(answer.status, 416, "{range}");
        assert_eq!(answer.header("content-range"), Some("bytes */1000"), "{range}");
        assert_eq!(answer.body, "", "{range}");
    }
    for range in ["bytes=5-2", "bytes=abc", "lines=0-1", "bytes=0-1,5-6"] {
        let answer = send(&edge, "GET", "/data.bin", &[("range", range)]);
        assert_eq!((answer.status, answer.body.as_str()), (200, data.as_str()), "{range} is ignored");
        assert_eq!(answer.header("accept-ranges"), Some("bytes"), "{range}");
    }
    let etag = send(&edge, "GET", "/data.bin", &[]).header("etag").expect("an etag").to_owned();
    let answer = send(&edge, "GET", "/data.bin", &[("range", "bytes=0-9"), ("if-range", &etag)]);
    assert_eq!((answer.status, answer.body.as_str()), (206, &data[..10]), "If-Range with the current ETag");
    let answer = send(&edge, "GET", "/data.bin", &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]);
    assert_eq!((answer.status, answer.body.len()), (200, 1000), "If-Range with another ETag gets the whole file");
}

fn head_answers_every_header_and_no_body(f: Fixture) {
    let (_f, edge) = live_data(f);
    let get = send(&edge, "GET", "/data.bin", &[]);
    let head = send(&edge, "HEAD", "/data.bin", &[]);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    for name in ["content-type", "content-length", "etag", "last-modified", "cache-control", "accept-ranges"] {
        assert!(head.header(name).is_some(), "HEAD answers {name}: {:?}", head.headers);
        assert_eq!(head.header(name), get.header(name), "HEAD and GET agree on {name}");
    }
    assert_eq!(head.header("content-length"), Some("1000"));
    let ranged = send(&edge, "HEAD", "/data.bin", &[("range", "bytes=0-9")]);
    assert_eq!((ranged.status, ranged.header("content-length")), (200, Some("1000")), "HEAD ignores Range");
}

fn an_etag_or_a_date_the_client_holds_gets_304(f: Fixture) {
    let (_f, edge) = live_data(f);
    let first = send(&edge, "GET", "/data.bin", &[]);
    let etag = first.header("etag").expect("an etag").to_owned();
    let date = first.header("last-modified").expect("a last-modified date").to_owned();
    for held in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
        let answer = send(&edge, "GET", "/data.bin", &[("if-none-match", &held)]);
        assert_eq!((answer.status, answer.body.as_str()), (304, ""), "If-None-Match: {held}");
        assert_eq!(answer.header("etag"), Some(etag.as_str()), "a 304 names the ETag");
        assert_eq!(answer.header("x-cutover-version"), Some("1"));
    }
    let answer = send(&edge, "GET", "/data.bin", &[("if-none-match", "\"other\"")]);
    assert_eq!((answer.status, answer.body.len()), (200, 1000), "another ETag gets the file");
    let answer = send(&edge, "HEAD", "/data.bin", &[("if-none-match", &etag)]);
    assert_eq!(answer.status, 304, "HEAD too");
    let answer = send(&edge, "GET", "/data.bin", &[("if-modified-since", &date)]);
    assert_eq!((answer.status, answer.body.as_str()), (304, ""), "If-Modified-Since: {date}");
    for before in ["Thu, 01 Jan 1970 00:00:00 GMT", "not a date"] {
        let answer = send(&edge, "GET", "/data.bin", &[("if-modified-since", before)]);
        assert_eq!((answer.status, answer.body.len()), (200, 1000), "If-Modified-Since: {before}");
    }
    let answer = send(&edge, "GET", "/data.bin", &[("if-none-match", "\"other\""), ("if-modified-since", &date)]);
    assert_eq!(answer.status, 200, "If-None-Match decides when both are sent (RFC 9110 13.2.2)");
}

/// `/data.bin/x.js` answered 502 with the OS error (ENOTDIR) from the local store: a key that runs
/// through a file is a file that does not exist (what a missing file serves is routing's to say).
fn a_path_through_a_file_is_a_missing_file_not_a_502(f: Fixture) {
    let (_f, edge) = live_data(f);
    for path in ["/data.bin/x.js", "/data.bin/x/y.css"] {
        let answer = send(&edge, "GET", path, &[]);
        assert!(answer.status < 500, "{path}: {} {}", answer.status, answer.body);
        assert!(!answer.body.contains("os error"), "{path}: {}", answer.body);
    }
}

/// The bound the issue sets for `cutover serve` while it sends a file far larger than memory.
const PEAK_RSS_KIB: u64 = 64 * 1024;

const BIG: u64 = 5 << 30;

/// A local store whose live release 1 holds `big.bin`, made a sparse file of `len` bytes in the
/// store (staging that many real bytes would take minutes of disk writes), served by an edge.
fn serving_a_sparse_file(len: u64) -> (Fixture, Edge, std::fs::File) {
    let mut f = Fixture::local();
    let edge = f.start_edge();
    let dist = f.site("v1", &[("index.html", "1"), ("big.bin", "stand-in")]);
    f.deploy(&dist, "1");
    edge.wait_for_active("1");
    let key = f.with_site(async |site| site.layout.object_key("1", "big.bin"));
    let stored = std::path::Path::new(&f.env["CUTOVER_STORE_DIR"]).join("objects").join(key);
    let file = std::fs::OpenOptions::new().write(true).open(&stored).expect("the stored file");
    file.set_len(len).expect("a sparse file");
    (f, edge, file)
}

#[test]
fn four_downloads_of_a_5_gib_file_keep_serve_under_64_mb() {
    let (_f, edge, file) = serving_a_sparse_file(BIG);
    std::os::unix::fs::FileExt::write_at(&file, b"the end", BIG - 7).expect("its last bytes");
    let before = peak_rss_kib(edge.pid()).expect("VmHWM");

    let addr = edge.url.trim_start_matches("http://").to_owned();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || download(&addr, "/big.bin"))
        })
        .collect();
    // Watched while it runs: a server that reads files whole is stopped before it fills the machine.
    let started = Instant::now();
    let mut peak = before;
    while !clients.iter().all(|c| c.is_finished()) {
        peak = peak_rss_kib(edge.pid()).unwrap_or(peak);
        if peak > PEAK_RSS_KIB || started.elapsed() > Duration::from_secs(600) {
            let _ = std::process::Command::new("kill").arg("-9").arg(edge.pid().to_string()).status();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let received: Vec<_> = clients.into_iter().map(|c| c.join().expect("a client")).collect();
    assert!(
        peak <= PEAK_RSS_KIB,
        "cutover serve peaked at {peak} KiB (from {before} KiB) sending 5 GiB to four clients; the bound is \
         {PEAK_RSS_KIB} KiB (after {:?}, received {received:?})",
        started.elapsed()
    );
    for body in received {
        assert_eq!(body, Ok(BIG), "each client receives the whole file");
    }
    let tail = send(&edge, "GET", "/big.bin", &[("range", "bytes=-7")]);
    assert_eq!((tail.status, tail.body.as_str()), (206, "the end"), "a range at the end is read from there");
}

/// What one stalled download may cost `cutover serve` in resident memory (it was 0.5 MiB: 200
/// stalled readers held 134 MB).
const STALLED_KIB_EACH: u64 = 200;
const STALLED: u64 = 100;

/// A download whose client reads nothing holds what serve has queued for it until the client
/// goes: that must stay small, so many slow readers cannot fill the machine.
#[test]
fn stalled_downloads_cost_serve_little_memory_each() {
    let (_f, edge, _file) = serving_a_sparse_file(1 << 30);
    let addr = edge.url.trim_start_matches("http://").to_owned();
    let stall = |n: u64| -> Vec<TcpStream> {
        (0..n)
            .map(|_| {
                let mut stream = TcpStream::connect(&addr).expect("connecting");
                write!(stream, "GET /big.bin HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("a request");
                stream
            })
            .collect()
    };
    // A few first, so what every connection shares (threads and their allocator arenas, the
    // index) is counted before.
    let warm = stall(8);
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kib(edge.pid()).expect("VmRSS");
    let stalled = stall(STALLED);
    // Until the socket buffers are full and serve has queued all it will for each.
    let mut after = before;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        after = after.max(rss_kib(edge.pid()).expect("VmRSS"));
    }
    let each = after.saturating_sub(before) / STALLED;
    cutover::say!("{STALLED} stalled downloads: serve's RSS {before} -> {after} KiB, {each} KiB each");
    assert!(each <= STALLED_KIB_EACH, "each stalled download holds {each} KiB ({before} -> {after} KiB)");
    drop((stalled, warm));
}

/// A request head is taken up to 100 header lines (hyper's bound); beyond, 431 (RFC 6585).
#[test]
fn request_heads_past_100_header_lines_answer_431() {
    let mut f = Fixture::local();
    let edge = f.start_edge();
    let dist = f.site("v1", &[("index.html", "1")]);
    f.deploy(&dist, "1");
    edge.wait_for_active("1");
    let names: Vec<String> = (0..101).map(|i| format!("x-h{i}")).collect();
    let lines = |n: usize| names.iter().take(n).map(|name| (name.as_str(), "1")).collect::<Vec<_>>();
    assert_eq!(send(&edge, "GET", "/", &lines(97)).status, 200, "host and 97 more");
    assert_eq!(send(&edge, "GET", "/", &lines(101)).status, 431);
}

/// The process's resident memory now (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Downloads `path` over one HTTP/1.1 connection, keeping nothing: the body's length, or why not.
fn download(addr: &str, path: &str) -> Result<u64, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buffer = vec![0; 256 * 1024];
    let mut head = Vec::new();
    let mut body = 0u64;
    loop {
        let read = stream.read(&mut buffer).map_err(|e| e.to_string())?;
        if read == 0 {
            break;
        }
        if body == 0 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            head.extend_from_slice(&buffer[..read]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                if !head.starts_with(b"HTTP/1.1 200") {
                    return Err(String::from_utf8_lossy(&head[..end]).into_owned());
                }
                body = u64::try_from(head.len() - end - 4).unwrap_or(0);
            }
            continue;
        }
        body += u64::try_from(read).unwrap_or(0);
    }
    Ok(body)
}

/// The process's peak resident memory so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
