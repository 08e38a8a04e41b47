//! Small loopback HTTP/1.1 servers for the tests: a scripted server that
//! records every request, and a proxy in front of docker-registry that can
//! cut a blob download after some bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request as a test server received it; header names are lower-case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    /// Returns the values of query parameter `name`. Only `%3A`, `%2F`,
    /// `%2C` and `+` are decoded, which covers scopes and digests.
    pub fn query(&self, name: &str) -> Vec<String> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| {
                value
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%2C", ",")
                    .replace('+', " ")
            })
            .collect()
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (key, value) in &self.headers {
            out.extend_from_slice(format!("{key}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response from a scripted server.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn write_to(&self, stream: &mut TcpStream, head_only: bool) -> std::io::Result<()> {
        let mut out = format!("HTTP/1.1 {} Test\r\n", self.status).into_bytes();
        for (key, value) in &self.headers {
            out.extend_from_slice(format!("{key}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        stream.write_all(&out)
    }
}

/// Reads one request from `reader`; `None` at end of stream.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (key, value) = header.split_once(':')?;
        headers.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(key, _)| key == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// A loopback listener whose connections are handled on threads; stopped
/// on drop.
struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handle = handle.clone();
                std::thread::spawn(move || handle(stream));
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it checks the stop flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A server that records each request and responds with what `handler`
/// returns for it.
pub struct TestServer {
    listener: Listener,
    log: Arc<Mutex<Vec<Request>>>,
}

impl TestServer {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = log.clone();
        let listener = Listener::start(move |stream| {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut stream = stream;
            if let Some(request) = read_request(&mut reader) {
                recorded.lock().unwrap().push(request.clone());
                let response = handler(&request);
                let _ = response.write_to(&mut stream, request.method == "HEAD");
            }
            let _ = stream.shutdown(Shutdown::Both);
        });
        Self { listener, log }
    }

    pub fn port(&self) -> u16 {
        self.listener.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

/// A proxy in front of `127.0.0.1:upstream` that forwards one request per
/// connection and records it. While armed, it cuts the body of the first
/// blob GET after `cut_after` bytes. With `strip_range` it removes the
/// Range header of every request, so the registry returns 200.
pub struct CutProxy {
    listener: Listener,
    log: Arc<Mutex<Vec<Request>>>,
}

impl CutProxy {
    pub fn start(upstream: u16, cut_after: Option<usize>, strip_range: bool) -> Self {
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let armed = Arc::new(AtomicBool::new(cut_after.is_some()));
        let recorded = log.clone();
        let listener = Listener::start(move |client| {
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let mut client = client;
            let Some(mut request) = read_request(&mut reader) else {
                return;
            };
            recorded.lock().unwrap().push(request.clone());
            request
                .headers
                .retain(|(key, _)| key != "connection" && !(strip_range && key == "range"));
            request.headers.push(("connection".into(), "close".into()));
            let is_blob_get = request.method == "GET" && request.target.contains("/blobs/sha256:");
            let cut = if is_blob_get && armed.swap(false, Ordering::SeqCst) {
                cut_after
            } else {
                None
            };
            let mut upstream = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).unwrap();
            upstream.write_all(&request.to_bytes()).unwrap();
            match cut {
                None => {
                    let _ = std::io::copy(&mut upstream, &mut client);
                }
                Some(limit) => {
                    let mut response = BufReader::new(upstream);
                    loop {
                        let mut line = String::new();
                        if response.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        client.write_all(line.as_bytes()).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; limit];
                    let _ = response.read_exact(&mut body);
                    let _ = client.write_all(&body);
                }
            }
            let _ = client.shutdown(Shutdown::Both);
        });
        Self { listener, log }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.listener.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}
