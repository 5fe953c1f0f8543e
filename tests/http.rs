//! HTTP behaviour of `cairn serve`: headers, HEAD, ranges, conditional requests, 404s,
//! traversal attempts, large-file streaming, damaged blobs, live reload and SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use reqwest::header;

struct Fixture {
    env: Env,
    server: Server,
    big_sha: String,
    big_size: u64,
}

/// A repo with the demo packages and one ~12 MB package, snapshotted as `s1`.
fn fixture(backend: &Backend) -> Fixture {
    fixture_with(backend, &[])
}

fn fixture_with(backend: &Backend, server_env: &[(&str, &str)]) -> Fixture {
    let env = Env::new(backend, &["fx"]);
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    let big = cairn::formats::samples::large_package(&rpms, "bigpkg", 12 * 1024 * 1024).unwrap();
    // Read in one read and kept in the worker's memory cache.
    cairn::formats::samples::large_package(&rpms, "midpkg", 1024 * 1024).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
    let bytes = std::fs::read(&big).unwrap();
    let big_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let server = env.serve_with(server_env);
    Fixture {
        env,
        server,
        big_sha,
        big_size: bytes.len() as u64,
    }
}

const BIG: &str = "/repos/fx/s1/Packages/b/bigpkg-1.0-1.noarch.rpm";
const SMALL: &str = "/repos/fx/s1/Packages/d/demo-lib-1.2.0-1.noarch.rpm";
const MID: &str = "/repos/fx/s1/Packages/m/midpkg-1.0-1.noarch.rpm";

fn raw_request(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn serving_semantics() {
    for backend in backends() {
        check_serving(&fixture(&backend), backend.name());
    }
}

/// The same behaviour when io_uring is refused (ordinary reads on the blocking pool).
#[test]
fn serving_semantics_without_io_uring() {
    let f = fixture_with(&Backend::Sqlite, &[("CAIRN_IO_URING", "off")]);
    let health = http()
        .get(f.server.url("/healthz"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(health.contains("reads: blocking"), "{health}");
    check_serving(&f, "no-io_uring");
}

fn check_serving(f: &Fixture, name: &str) {
    {
        let c = http();

        // Health, metadata, package with full headers.
        assert_eq!(
            c.get(f.server.url("/healthz")).send().unwrap().status(),
            200
        );
        let repomd = c
            .get(f.server.url("/repos/fx/s1/repodata/repomd.xml"))
            .send()
            .unwrap();
        assert_eq!(repomd.status(), 200, "{name}");
        assert!(repomd.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let latest = c
            .get(f.server.url("/repos/fx/latest/repodata/repomd.xml"))
            .send()
            .unwrap();
        assert_eq!(latest.headers()[header::CACHE_CONTROL], "no-cache");
        let latest_body = latest.bytes().unwrap();
        assert_eq!(
            repomd.bytes().unwrap(),
            latest_body,
            "{name}: same content, same repomd bytes"
        );

        let r = c.get(f.server.url(BIG)).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-rpm");
        assert_eq!(
            r.headers()[header::CONTENT_LENGTH],
            f.big_size.to_string().as_str()
        );
        assert_eq!(
            r.headers()[header::ETAG],
            format!("\"{}\"", f.big_sha).as_str()
        );
        assert!(r.headers().contains_key(header::LAST_MODIFIED));
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        let body = r.bytes().unwrap();
        assert_eq!(
            body.len() as u64,
            f.big_size,
            "{name}: large file streamed whole"
        );
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
            f.big_sha
        );

        // HEAD carries GET's headers and no body.
        let h = c.head(f.server.url(BIG)).send().unwrap();
        assert_eq!(h.status(), 200);
        assert_eq!(
            h.headers()[header::CONTENT_LENGTH],
            f.big_size.to_string().as_str()
        );
        assert_eq!(
            h.headers()[header::ETAG],
            format!("\"{}\"", f.big_sha).as_str()
        );
        assert!(h.bytes().unwrap().is_empty());

        // Conditional requests.
        let r = c
            .get(f.server.url(BIG))
            .header(header::IF_NONE_MATCH, format!("\"{}\"", f.big_sha))
            .send()
            .unwrap();
        assert_eq!(r.status(), 304);
        assert!(r.bytes().unwrap().is_empty());
        let r = c
            .get(f.server.url(SMALL))
            .header(header::IF_NONE_MATCH, "\"nope\"")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);

        // Ranges: explicit, open (resume), suffix, beyond the end, multi-range.
        let r = c
            .get(f.server.url(BIG))
            .header(header::RANGE, "bytes=100-199")
            .send()
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(
            r.headers()[header::CONTENT_RANGE],
            format!("bytes 100-199/{}", f.big_size).as_str()
        );
        assert_eq!(r.bytes().unwrap(), body.slice(100..200));
        let from = f.big_size - 1_000_000;
        let r = c
            .get(f.server.url(BIG))
            .header(header::RANGE, format!("bytes={from}-"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().unwrap(), body.slice(from as usize..));
        let r = c
            .get(f.server.url(BIG))
            .header(header::RANGE, "bytes=-10")
            .send()
            .unwrap();
        assert_eq!(r.bytes().unwrap(), body.slice(body.len() - 10..));
        let r = c
            .get(f.server.url(BIG))
            .header(header::RANGE, format!("bytes={}-", f.big_size))
            .send()
            .unwrap();
        assert_eq!(r.status(), 416);
        assert_eq!(
            r.headers()[header::CONTENT_RANGE],
            format!("bytes */{}", f.big_size).as_str()
        );
        let r = c
            .get(f.server.url(SMALL))
            .header(header::RANGE, "bytes=0-1,5-6")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "multi-range falls back to the whole file");

        // A blob kept in memory after its first read answers the same, whole and in
        // ranges (small parts, large parts, suffixes), on every worker and every time.
        let mid = c.get(f.server.url(MID)).send().unwrap();
        assert_eq!(mid.status(), 200, "{name}");
        let mid = mid.bytes().unwrap();
        assert!(mid.len() > 1024 * 1024, "{name}: {}", mid.len());
        let n = mid.len();
        for _ in 0..4 {
            let again = c.get(f.server.url(MID)).send().unwrap();
            assert_eq!(
                again.headers()[header::CONTENT_LENGTH],
                n.to_string().as_str()
            );
            assert!(again.bytes().unwrap() == mid, "{name}: cached copy differs");
            for (range, want) in [
                ("bytes=10-19".to_string(), mid.slice(10..20)),
                (format!("bytes=100-{}", n - 100), mid.slice(100..n - 99)),
                ("bytes=-70000".to_string(), mid.slice(n - 70000..)),
                (format!("bytes={}-", n - 5), mid.slice(n - 5..)),
            ] {
                let r = c
                    .get(f.server.url(MID))
                    .header(header::RANGE, &range)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 206, "{name}: {range}");
                assert_eq!(
                    r.headers()[header::CONTENT_LENGTH],
                    want.len().to_string().as_str(),
                    "{name}: {range}"
                );
                assert!(r.bytes().unwrap() == want, "{name}: {range}: other bytes");
            }
            let h = c.head(f.server.url(MID)).send().unwrap();
            assert_eq!(h.headers()[header::CONTENT_LENGTH], n.to_string().as_str());
            assert!(h.bytes().unwrap().is_empty());
        }

        // Unknown paths and methods.
        for p in [
            "/repos/fx/s1/Packages/n/nope.rpm",
            "/repos/fx/nosnap/repodata/repomd.xml",
            "/repos/nope/latest/repodata/repomd.xml",
            "/elsewhere",
        ] {
            assert_eq!(c.get(f.server.url(p)).send().unwrap().status(), 404, "{p}");
        }
        assert_eq!(c.post(f.server.url(SMALL)).send().unwrap().status(), 405);

        // Traversal attempts never reach the filesystem (raw requests, no client normalisation).
        for p in [
            "/repos/fx/s1/../../../etc/passwd",
            "/repos/fx/s1/%2e%2e/%2e%2e/etc/passwd",
            "/repos/fx/s1/Packages%2fd%2fdemo-lib-1.2.0-1.noarch.rpm",
            "/repos/fx/s1/Packages\\d\\x.rpm",
            "/repos/fx/s1/%00",
        ] {
            let resp = raw_request(
                &f.server.addr,
                &format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            );
            assert!(
                resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.1 404"),
                "{p}: {}",
                resp.lines().next().unwrap_or("")
            );
            assert!(!resp.contains("root:"), "{p} leaked a file");
        }

        // Directory pages exist for people.
        let page = c.get(f.server.url("/repos/fx/s1/")).send().unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(page.text().unwrap().contains("repodata/"));
    }
}

#[test]
fn damaged_blobs_give_errors_not_short_bodies() {
    let f = fixture(&Backend::Sqlite);
    let c = http();
    let pool = f.env.data().join("pool");
    let blob = pool
        .join(&f.big_sha[..2])
        .join(&f.big_sha[2..4])
        .join(&f.big_sha);
    // Truncated on disk: a 500 before any body, never a short 200.
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    let r = c.get(f.server.url(BIG)).send().unwrap();
    assert_eq!(r.status(), 500);
    // Missing on disk: 500.
    std::fs::remove_file(&blob).unwrap();
    let r = c.get(f.server.url(BIG)).send().unwrap();
    assert_eq!(r.status(), 500);
    // The server keeps serving everything else.
    assert_eq!(c.get(f.server.url(SMALL)).send().unwrap().status(), 200);
}

#[test]
fn an_idle_server_loads_its_index_again_only_when_something_is_published() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        let log_path = env.dir.path().join("serve.log");
        let server = env.serve_logging(&[], std::fs::File::create(&log_path).unwrap());
        let loads = || {
            std::fs::read_to_string(&log_path)
                .unwrap()
                .matches("published content changed")
                .count()
        };
        let c = http();
        // What checks that the index is fresh (repomd.xml, a 404 in a tree) reads the
        // generation marker: reading it is no change.
        for _ in 0..20 {
            let r = c.get(server.url("/repos/fx/latest/repodata/repomd.xml"));
            assert_eq!(r.send().unwrap().status(), 200);
            let r = c.get(server.url("/repos/fx/latest/Packages/nothing.rpm"));
            assert_eq!(r.send().unwrap().status(), 404);
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert_eq!(loads(), 0, "{}: reloads while idle", backend.name());
        // A change is loaded, once.
        let more = env.dir.path().join("more");
        cairn::formats::samples::generate(&more, 2).unwrap();
        env.ok(&["import", "fx", more.to_str().unwrap()]);
        wait_for("the change to be loaded", || loads() > 0);
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert!(loads() <= 2, "{}: {} loads", backend.name(), loads());
    }
}

#[test]
fn publishing_from_another_process_reaches_the_running_server() {
    for backend in backends() {
        let f = fixture(&backend);
        let c = http();
        assert_eq!(
            c.get(f.server.url("/repos/fx/s2/repodata/repomd.xml"))
                .send()
                .unwrap()
                .status(),
            404
        );
        let before = c
            .get(f.server.url("/repos/fx/latest/repodata/repomd.xml"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();

        let more = f.env.dir.path().join("more");
        let extra = cairn::formats::samples::generate(&more, 3).unwrap();
        f.env.ok(&["import", "fx", more.to_str().unwrap()]);
        f.env.ok(&["snapshot", "create", "fx", "--name", "s2"]);
        wait_for("the new snapshot to be served", || {
            c.get(f.server.url("/repos/fx/s2/repodata/repomd.xml"))
                .send()
                .unwrap()
                .status()
                == 200
        });
        let after = c
            .get(f.server.url("/repos/fx/latest/repodata/repomd.xml"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_ne!(before, after, "{}: latest was republished", backend.name());
        let name = extra[0].file_name().unwrap().to_str().unwrap();
        assert_eq!(
            c.get(f.server.url(&format!("/repos/fx/latest/Packages/g/{name}")))
                .send()
                .unwrap()
                .status(),
            200
        );
        // The old snapshot did not change.
        assert_eq!(
            c.get(f.server.url(&format!("/repos/fx/s1/Packages/g/{name}")))
                .send()
                .unwrap()
                .status(),
            404
        );
    }
}

#[test]
fn sigterm_finishes_in_flight_downloads_and_exits_cleanly() {
    let mut f = fixture(&Backend::Sqlite);
    // Start a large download, then ask the server to stop while it streams.
    let mut s = TcpStream::connect(&f.server.addr).unwrap();
    s.write_all(format!("GET {BIG} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).unwrap();
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        1024 + rest.len()
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let status = f.server.stop();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    let received = reader.join().unwrap();
    assert!(
        received as u64 > f.big_size,
        "the in-flight download completed ({received} bytes incl. headers)"
    );
}

#[test]
fn latest_metadata_is_the_new_one_the_moment_a_command_returns() {
    let f = fixture(&Backend::Sqlite);
    let c = http();
    let get = |path: &str| {
        c.get(f.server.url(path))
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .to_vec()
    };
    // Each import returns only once `latest` is published; a client that asks right
    // after must get the repomd.xml that names the new package, never the one before.
    for i in 0..15 {
        let dir = f.env.dir.path().join(format!("more{i}"));
        let name = format!("fresh-{i}");
        cairn::formats::samples::large_package(&dir, &name, 64).unwrap();
        f.env.ok(&["import", "fx", dir.to_str().unwrap()]);
        let repomd = get("/repos/fx/latest/repodata/repomd.xml");
        let primary = repomd_href(&repomd, "primary");
        let listed =
            String::from_utf8(decompress(&get(&format!("/repos/fx/latest/{primary}")))).unwrap();
        assert!(
            listed.contains(&format!("<name>{name}</name>")),
            "round {i}: the repomd.xml served right after the import is the previous one"
        );
    }
}
