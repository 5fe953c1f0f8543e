//! `cairn serve` against slow, greedy and malformed clients: a connection limit that
//! answers 503 instead of falling over, header and idle timeouts that cut slowloris and
//! stalled readers off without hurting other clients, request-head size limits, GET
//! bodies, reloads that keep connections, and no descriptors left behind.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// A repository with the demo packages and a 12 MiB package, snapshotted as `s1`, and
/// a server with tight limits so tests run in seconds.
fn site(extra_server_toml: &str) -> (Env, Server) {
    let backend = backends().remove(0);
    let env = Env::with_repo_toml(&backend, "[[repo]]\nid = \"fx\"\n");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replacen("[server]\n", &format!("[server]\n{extra_server_toml}"), 1),
    )
    .unwrap();
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    cairn::formats::samples::large_package(&rpms, "bigpkg", 12 * 1024 * 1024).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
    let server = env.serve();
    (env, server)
}

const SMALL: &str = "/repos/fx/s1/Packages/d/demo-lib-1.2.0-1.noarch.rpm";
const BIG: &str = "/repos/fx/s1/Packages/b/bigpkg-1.0-1.noarch.rpm";

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads one response head from `s` (up to the blank line).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends GET `path` on `s` and reads the whole response: (status line, body length).
fn get_on(s: &mut TcpStream, path: &str) -> (String, usize) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let head = read_head(s);
    let len = content_length(&head);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head.lines().next().unwrap_or("").to_string(), len)
}

/// True when the peer closes `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + within;
    let mut buf = [0u8; 65536];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn connections_beyond_the_limit_get_503_and_serving_goes_on() {
    let (_env, server) = site("max_connections = 8\n");
    // Eight keep-alive clients, each answered once (so each is surely accepted).
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = connect(&server);
            assert_eq!(get_on(&mut s, "/healthz").0, "HTTP/1.1 200 OK");
            s
        })
        .collect();
    let mut s = connect(&server);
    let _ = write!(s, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = read_head(&mut s);
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{head}"
    );
    assert!(head.contains("Retry-After: 1"));
    drop(idle);
    wait_for("serving to resume once connections close", || {
        let mut s = connect(&server);
        let _ = write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        read_head(&mut s).starts_with("HTTP/1.1 200")
    });
    let metrics = http()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let rejected: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cairn_http_rejected_connections_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rejected >= 1.0);
}

#[test]
fn slowloris_is_cut_off_while_other_clients_are_served() {
    let (_env, mut server) = site("header_timeout = \"2s\"\n");
    let baseline = server.open_fds();
    // 500 clients that trickle their request headers, one byte per round.
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = connect(&server);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let mut served = 0;
    let mut normal = connect(&server);
    while started.elapsed() < Duration::from_secs(4) {
        for s in &mut slow {
            let _ = s.write(b"X");
        }
        // A normal client on a keep-alive connection keeps getting answers.
        let (status, len) = get_on(&mut normal, SMALL);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(len > 0);
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served >= 10, "{served} requests answered");
    // Every slow client was disconnected: the header never completed in time.
    let mut cut = 0;
    for s in &mut slow {
        s.set_nonblocking(false).unwrap();
        if closed_within(s, Duration::from_secs(5)) {
            cut += 1;
        }
    }
    assert_eq!(cut, 500, "slow clients still connected");
    drop(slow);
    drop(normal);
    wait_for("the server to release every descriptor", || {
        server.open_fds() <= baseline + 2
    });
    assert!(server.stop().success());
}

#[test]
fn oversized_heads_get_431_and_get_bodies_are_skipped() {
    let (_env, server) = site("max_header_bytes = 8192\n");
    let mut s = connect(&server);
    let _ = write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    // A GET with a body: the body is read past, the next request is answered.
    let mut s = connect(&server);
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello worldGET {SMALL} HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    .unwrap();
    let first = read_head(&mut s);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let mut body = vec![0u8; content_length(&first)];
    s.read_exact(&mut body).unwrap();
    let second = read_head(&mut s);
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        second.contains("content-type: application/x-rpm"),
        "{second}"
    );

    // A request line too long is refused, not served.
    let mut s = connect(&server);
    // The server may close before the client has written it all.
    let _ = write!(s, "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "p".repeat(20_000));
    let head = read_head(&mut s);
    assert!(
        head.starts_with("HTTP/1.1 431") || head.starts_with("HTTP/1.1 414") || head.is_empty(),
        "{head}"
    );
}

#[test]
fn idle_and_stalled_connections_are_closed() {
    let (_env, server) = site("header_timeout = \"2s\"\nidle_timeout = \"2s\"\n");
    // A keep-alive connection that asks nothing more is closed.
    let mut s = connect(&server);
    let (status, _) = get_on(&mut s, SMALL);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(closed_within(&mut s, Duration::from_secs(10)));

    // A client that stops reading a 12 MiB download is disconnected; it never gets the
    // whole file, and the server is fine afterwards.
    let mut s = connect(&server);
    write!(s, "GET {BIG} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    std::thread::sleep(Duration::from_secs(6));
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 12 * 1024 * 1024, "the stalled download was completed");
    let r = http().get(server.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_publish_reloads_the_index_without_dropping_connections() {
    let (env, server) = site("");
    let mut s = connect(&server);
    let (status, _) = get_on(&mut s, "/repos/fx/s1/repodata/repomd.xml");
    assert_eq!(status, "HTTP/1.1 200 OK");
    env.ok(&["snapshot", "create", "fx", "--name", "s2"]);
    // The same connection sees the new snapshot once the index reloads.
    let mut seen = false;
    for _ in 0..100 {
        let (status, _) = get_on(&mut s, "/repos/fx/s2/repodata/repomd.xml");
        if status == "HTTP/1.1 200 OK" {
            seen = true;
            break;
        }
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen,
        "the new snapshot never appeared on the open connection"
    );
    let (status, _) = get_on(&mut s, SMALL);
    assert_eq!(status, "HTTP/1.1 200 OK");
}
