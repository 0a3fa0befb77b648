//! A fault-injecting HTTP proxy between cutover and moto, on loopback: per request, a rule chooses
//! to forward it, answer S3's `503 SlowDown` or a `500 InternalError`, reset the connection, stall,
//! throttle SSM, refuse it as access denied, or hold the request until the proxy stops (so a test
//! can kill cutover there). The rule sees each whole request, so it can also log every AWS call.
//! One request per connection, so every answer is the proxy's own choice.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// S3's `503 SlowDown`.
    SlowDown,
    /// A `500 InternalError`.
    InternalError,
    /// The connection is reset before any answer.
    Reset,
    /// The answer comes, but only after this long.
    Stall(Duration),
    /// SSM's `ThrottlingException`.
    Throttle,
    /// The request is held, unanswered, until the proxy stops; the test hears of it.
    Hold,
    /// `403 AccessDenied`, as each service words it: what a call the credentials may not make gets.
    Denied,
    /// Forwarded, but an S3 GET or HEAD that S3 answers 404 gets `403 AccessDenied` instead: what
    /// S3 answers a read of a missing key when the credentials may not list the whole bucket.
    MissingDenied,
}

/// One request as the rule sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// 1 for the first request the proxy received.
    pub number: usize,
    pub method: String,
    /// The path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The SSM action (`PutParameter`), if this is an SSM request.
    pub fn ssm_action(&self) -> Option<&str> {
        self.header("x-amz-target")?.strip_prefix("AmazonSSM.")
    }
}

type Rule = dyn Fn(&Request) -> Option<Fault> + Send + Sync;

pub struct Proxy {
    pub url: String,
    stopping: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    faults: Arc<Mutex<Vec<(usize, Fault)>>>,
    held: Mutex<Receiver<usize>>,
    port: u16,
}

impl Proxy {
    /// Starts a proxy to `upstream` (an `http://host:port` URL) applying `rule` to every request.
    pub fn start(upstream: &str, rule: impl Fn(&Request) -> Option<Fault> + Send + Sync + 'static) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("an address").port();
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let stopping = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let (held_tx, held_rx) = channel();
        let rule: Arc<Rule> = Arc::new(rule);
        {
            let (stopping, requests, faults) = (stopping.clone(), requests.clone(), faults.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let job = Job {
                        upstream: upstream.clone(),
                        rule: rule.clone(),
                        stopping: stopping.clone(),
                        requests: requests.clone(),
                        faults: faults.clone(),
                        held: held_tx.clone(),
                    };
                    std::thread::spawn(move || job.serve(client));
                }
            });
        }
        Proxy { url: format!("http://127.0.0.1:{port}"), stopping, requests, faults, held: Mutex::new(held_rx), port }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Every fault injected so far, with the request number it hit.
    pub fn faults(&self) -> Vec<(usize, Fault)> {
        self.faults.lock().unwrap().clone()
    }

    /// Waits until a request is held; its number, or `None` if none was within `limit`.
    pub fn wait_for_hold(&self, limit: Duration) -> Option<usize> {
        self.held.lock().unwrap().recv_timeout(limit).ok()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Job {
    upstream: String,
    rule: Arc<Rule>,
    stopping: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    faults: Arc<Mutex<Vec<(usize, Fault)>>>,
    held: Sender<usize>,
}

impl Job {
    fn serve(self, mut client: TcpStream) {
        let Some((head, body)) = read_message(&mut client) else { return };
        let number = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let request = parse_request(number, &head, &body);
        let fault = (self.rule)(&request);
        if let Some(fault) = fault {
            self.faults.lock().unwrap().push((number, fault));
        }
        match fault {
            None => self.forward(&mut client, &head, &body, false),
            Some(Fault::MissingDenied) => {
                let read = matches!(request.method.as_str(), "GET" | "HEAD");
                self.forward(&mut client, &head, &body, read && !request.target.starts_with("/2020-05-31/"));
            }
            Some(Fault::Stall(pause)) => {
                std::thread::sleep(pause);
                self.forward(&mut client, &head, &body, false);
            }
            Some(Fault::SlowDown) => {
                answer(&mut client, 503, "application/xml", &s3_error("SlowDown", "Please reduce your request rate."))
            }
            Some(Fault::InternalError) if request.ssm_action().is_some() => answer(
                &mut client,
                500,
                "application/x-amz-json-1.1",
                r#"{"__type":"InternalServerError","message":"injected"}"#,
            ),
            Some(Fault::InternalError) => answer(
                &mut client,
                500,
                "application/xml",
                &s3_error("InternalError", "We encountered an internal error."),
            ),
            Some(Fault::Throttle) => answer(
                &mut client,
                400,
                "application/x-amz-json-1.1",
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            Some(Fault::Denied) if request.ssm_action().is_some() => answer(
                &mut client,
                400,
                "application/x-amz-json-1.1",
                r#"{"__type":"AccessDeniedException","message":"injected: not authorized"}"#,
            ),
            Some(Fault::Denied) if request.target.starts_with("/2020-05-31/") => answer(
                &mut client,
                403,
                "text/xml",
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>injected: not authorized</Message></Error></ErrorResponse>",
            ),
            Some(Fault::Denied) => {
                answer(&mut client, 403, "application/xml", &s3_error("AccessDenied", "Access Denied"))
            }
            Some(Fault::Reset) => {
                let socket = socket2::Socket::from(client);
                let _ = socket.set_linger(Some(Duration::ZERO));
                drop(socket);
            }
            Some(Fault::Hold) => {
                let _ = self.held.send(number);
                while !self.stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Sends the request upstream with `Connection: close` and relays the answer the same way; with
    /// `deny_missing`, a 404 is answered `403 AccessDenied` instead (with no body to a HEAD).
    fn forward(&self, client: &mut TcpStream, head: &str, body: &[u8], deny_missing: bool) {
        let Ok(mut upstream) = TcpStream::connect(&self.upstream) else { return };
        let _ = upstream.write_all(close_connection(head).as_bytes()).and_then(|()| upstream.write_all(body));
        let mut answer = Vec::new();
        if upstream.read_to_end(&mut answer).is_err() {
            return;
        }
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |i| i + 4);
        let (answer_head, answer_body) = answer.split_at(split);
        if deny_missing && answer_head.starts_with(b"HTTP/1.1 404") {
            let denied =
                if head.starts_with("HEAD ") { String::new() } else { s3_error("AccessDenied", "Access Denied") };
            return self::answer(client, 403, "application/xml", &denied);
        }
        let _ = client.write_all(close_connection(&String::from_utf8_lossy(answer_head)).as_bytes());
        let _ = client.write_all(answer_body);
        let _ = client.shutdown(Shutdown::Both);
    }
}

/// Reads one HTTP message's head and body (by Content-Length, or chunked to its end).
fn read_message(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).ok()? == 0 {
                return None;
            }
            body.extend_from_slice(&line);
        }
    }
    Some((head, body))
}

fn parse_request(number: usize, head: &str, body: &[u8]) -> Request {
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Request { number, method, target, headers, body: body.to_vec() }
}

/// The same head with `Connection: close` instead of any connection header.
fn close_connection(head: &str) -> String {
    let mut out: String = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| {
            !l.to_ascii_lowercase().starts_with("connection:") && !l.to_ascii_lowercase().starts_with("keep-alive:")
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn s3_error(code: &str, message: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>")
}

fn answer(client: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(text.as_bytes());
    let _ = client.shutdown(Shutdown::Both);
}
