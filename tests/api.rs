//! The admin API (`/api/v1/`) against a real `cairn serve`, on both backends: tokens
//! and scopes, every endpoint's answer, one error shape, the audit rows of API writes,
//! and no token secret in any answer, the log or the catalog.

mod common;

use common::*;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};

/// Everything the test received, to check that no secret was ever in it.
#[derive(Default)]
struct Seen(std::cell::RefCell<String>);

impl Seen {
    /// Sends `req`; returns the status and the parsed JSON body (Null when empty).
    fn send(&self, req: RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap();
        self.0.borrow_mut().push_str(&text);
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        if status >= 400 {
            // One error shape, everywhere.
            let code = body["error"]["code"].as_str().unwrap_or("");
            let message = body["error"]["message"].as_str().unwrap_or("");
            assert!(!code.is_empty() && !message.is_empty(), "{status}: {body}");
            assert!(
                !message.contains("/tmp") && !message.contains(".rs:"),
                "{body}"
            );
            assert_eq!(
                headers["content-type"], "application/json",
                "{status}: {body}"
            );
        }
        (status, body, headers)
    }
}

/// Writes `request` on a new connection (as far as the server reads it) and returns
/// what the server answers.
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = conn.write_all(request);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn token(env: &Env, name: &str, args: &[&str]) -> String {
    let mut all = vec!["token", "create", "--name", name];
    all.extend_from_slice(args);
    env.json(&all)["token"].as_str().unwrap().to_string()
}

#[test]
fn the_api_answers_by_token_scope_in_one_error_shape() {
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            "[[repo]]\nid = \"fx\"\n[[repo]]\nid = \"other\"\n\
             [[view]]\nname = \"v\"\nrepos = [\"fx\"]\n",
        );
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s0"]);
        let reader = token(&env, "reader", &["--scope", "read"]);
        let writer = token(&env, "writer", &["--scope", "write", "--repo", "fx"]);
        let admin = token(&env, "admin", &["--scope", "admin"]);
        let revoked = token(&env, "gone", &["--scope", "admin"]);
        env.ok(&["token", "revoke", "gone"]);
        let expired = token(&env, "brief", &["--scope", "admin", "--expires", "1s"]);
        let log_path = env.dir.path().join("serve.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let server = env.serve_logging(&[], log);
        let c: Client = http();
        let api = |path: &str| server.url(&format!("/api/v1{path}"));
        let seen = Seen::default();
        let name = backend.name();

        // No token, a made-up one, a revoked one: 401, saying how to authenticate.
        let (s, b, h) = seen.send(c.get(api("/repos")));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{name}"
        );
        assert!(h["www-authenticate"].to_str().unwrap().contains("Bearer"));
        let (s, _, _) = seen.send(
            c.get(api("/repos"))
                .bearer_auth("cairn_0123456789abcdef_nope"),
        );
        assert_eq!(s, 401);
        let (s, _, _) = seen.send(c.get(api("/repos")).bearer_auth(&revoked));
        assert_eq!(s, 401);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (s, b, _) = seen.send(c.get(api("/repos")).bearer_auth(&expired));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{b}"
        );

        // Reading: every repository for an unlimited token, its own for a limited one.
        let (s, b, _) = seen.send(c.get(api("/repos")).bearer_auth(&reader));
        assert_eq!(s, 200, "{b}");
        let names: Vec<&str> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["repo"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fx", "other"], "{b}");
        assert_eq!(b[0]["config"]["mode"], "regenerate");
        let (_, b, _) = seen.send(c.get(api("/repos")).bearer_auth(&writer));
        assert_eq!(b.as_array().unwrap().len(), 1, "{b}");
        let (s, b, _) = seen.send(c.get(api("/repos/other")).bearer_auth(&writer));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{b}"
        );
        // HTTP Basic with the token as the password works as Bearer does.
        let (s, b, _) = seen.send(c.get(api("/repos/fx")).basic_auth("anyone", Some(&reader)));
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["snapshots"][0]["name"], "s0");
        let (s, b, _) = seen.send(c.get(api("/views/v")).bearer_auth(&reader));
        assert_eq!((s, b["repos"].clone()), (200, json!(["fx"])), "{b}");
        let (s, _, _) = seen.send(c.get(api("/views/fx")).bearer_auth(&reader));
        assert_eq!(s, 404);

        // A tree's packages, filtered and paged; a package by digest.
        let (s, b, _) = seen.send(
            c.get(api(
                "/repos/fx/trees/latest/packages?name=demo-l&per_page=10",
            ))
            .bearer_auth(&reader),
        );
        assert_eq!((s, b["total"].as_i64()), (200, Some(1)), "{b}");
        let sha = b["packages"][0]["sha256"].as_str().unwrap().to_string();
        let (s, b, _) = seen.send(
            c.get(api("/repos/fx/trees/latest/packages?per_page=2&page=2"))
                .bearer_auth(&reader),
        );
        assert_eq!(
            (
                s,
                b["total"].as_i64(),
                b["packages"].as_array().unwrap().len()
            ),
            (200, Some(4), 2),
            "{b}"
        );
        let (s, b, _) = seen.send(
            c.get(api("/repos/fx/trees/nope/packages"))
                .bearer_auth(&reader),
        );
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{b}"
        );
        let (s, b, _) = seen.send(
            c.get(api("/repos/fx/trees/latest/packages?page=zero"))
                .bearer_auth(&reader),
        );
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{b}"
        );
        let (s, b, _) = seen.send(c.get(api(&format!("/packages/{sha}"))).bearer_auth(&reader));
        assert_eq!((s, b["name"].as_str()), (200, Some("demo-lib")), "{b}");
        assert_eq!(b["sha256"].as_str(), Some(sha.as_str()), "{b}");
        assert!(
            b["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["kind"] == "provides" && d["name"] == "demo-lib"),
            "{b}"
        );
        assert!(b["files"].as_array().is_some_and(|f| !f.is_empty()), "{b}");
        let (s, _, _) = seen.send(c.get(api(&format!("/packages/{sha}"))).bearer_auth(&writer));
        assert_eq!(s, 403, "a limited token reads only its own repositories");

        // Writing: snapshots and aliases, with the command line's rules.
        let snapshot = |token: &str, body: Value| {
            seen.send(
                c.post(api("/repos/fx/snapshots"))
                    .bearer_auth(token)
                    .body(body.to_string()),
            )
        };
        let (s, b, _) = snapshot(&reader, json!({"name": "s1"}));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{b}"
        );
        let (s, b, _) = snapshot(&writer, json!({"name": "s1"}));
        assert_eq!((s, b["name"].as_str()), (201, Some("s1")), "{name}: {b}");
        let (s, b, _) = snapshot(&writer, json!({"name": "s1"}));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (409, Some("conflict")),
            "{b}"
        );
        let (s, b, _) = snapshot(&writer, json!({"name": "a/b"}));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{b}"
        );
        let (s, b, _) = seen.send(
            c.post(api("/repos/fx/snapshots"))
                .bearer_auth(&writer)
                .body("{\"name\": "),
        );
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{b}"
        );
        let (s, b, _) = seen.send(
            c.put(api("/repos/fx/aliases/prod"))
                .bearer_auth(&writer)
                .body(json!({"snapshot": "s1"}).to_string()),
        );
        assert_eq!((s, b["previous"].clone()), (200, Value::Null), "{b}");
        let served = c
            .get(server.url("/repos/fx/prod/repodata/repomd.xml"))
            .send()
            .unwrap();
        assert_eq!(served.status(), 200, "the alias is served at once");
        let (s, b, _) = seen.send(
            c.put(api("/repos/fx/aliases/prod"))
                .bearer_auth(&writer)
                .body(json!({"snapshot": "s0"}).to_string()),
        );
        assert_eq!((s, b["previous"].as_str()), (200, Some("s1")), "{b}");
        let (s, b, _) = seen.send(c.delete(api("/repos/fx/snapshots/s0")).bearer_auth(&writer));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (409, Some("in_use")),
            "{b}"
        );
        let (s, b, _) = seen.send(
            c.get(api("/repos/fx/diff?from=s0&to=latest"))
                .bearer_auth(&reader),
        );
        assert_eq!(s, 200, "{b}");
        let (s, b, _) = seen.send(c.delete(api("/repos/fx/aliases/prod")).bearer_auth(&writer));
        assert_eq!((s, b), (204, Value::Null));
        let (s, _, _) = seen.send(c.post(api("/repos/fx/snapshots")).bearer_auth(&writer));
        assert_eq!(s, 201, "the name is optional");
        let (s, _, _) = snapshot(&writer, json!({"name": "s2"}));
        assert_eq!(s, 201);
        let (s, b, _) = seen.send(c.delete(api("/repos/fx/snapshots/s2")).bearer_auth(&writer));
        assert_eq!((s, b), (204, Value::Null));
        // A view: the limited token may not; an unlimited one may.
        let (s, _, _) = seen.send(
            c.post(api("/views/v/snapshots"))
                .bearer_auth(&writer)
                .body(json!({"name": "v1"}).to_string()),
        );
        assert_eq!(s, 403);
        let (s, b, _) = seen.send(
            c.post(api("/views/v/snapshots"))
                .bearer_auth(&admin)
                .body(json!({"name": "v1"}).to_string()),
        );
        assert_eq!((s, b["name"].as_str()), (201, Some("v1")), "{b}");
        let (s, b, _) = seen.send(
            c.put(api("/views/v/aliases/stable"))
                .bearer_auth(&admin)
                .body(json!({"snapshot": "v1"}).to_string()),
        );
        assert_eq!(s, 200, "{b}");
        let (_, b, _) = seen.send(c.get(api("/views/v")).bearer_auth(&reader));
        assert_eq!(
            (
                b["aliases"][0]["name"].as_str(),
                b["aliases"][0]["snapshot"].as_str()
            ),
            (Some("stable"), Some("v1")),
            "{b}"
        );

        // Unknown endpoints, wrong methods, bodies too large.
        let (s, _, _) = seen.send(c.get(api("/nope")).bearer_auth(&reader));
        assert_eq!(s, 404);
        let (s, _, h) = seen.send(c.patch(api("/repos/fx/snapshots")).bearer_auth(&writer));
        assert_eq!((s, h["allow"].to_str().unwrap()), (405, "GET, POST"));
        // (Said before the body is read: a raw client sends only the head.)
        let head = format!(
            "POST /api/v1/repos/fx/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {writer}\r\n\
             Content-Length: {}\r\n\r\n",
            2 * 1024 * 1024
        );
        let answer = raw_exchange(&server.addr, head.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 413") && answer.contains("too_large"),
            "{answer}"
        );
        // A chunked body with no length is cut off at the limit.
        let mut chunked = format!(
            "POST /api/v1/repos/fx/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {writer}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..3 {
            chunked.extend(format!("{:x}\r\n", 512 * 1024).as_bytes());
            chunked.extend(vec![b' '; 512 * 1024]);
            chunked.extend(b"\r\n");
        }
        chunked.extend(b"0\r\n\r\n");
        let answer = raw_exchange(&server.addr, &chunked);
        assert!(
            answer.starts_with("HTTP/1.1 413") && answer.contains("too_large"),
            "{answer}"
        );

        // The audit log and the tokens: admin only, and the API's writes are there as the
        // token's, with their parameters.
        let (s, _, _) = seen.send(c.get(api("/audit")).bearer_auth(&reader));
        assert_eq!(s, 403);
        let (s, b, _) = seen.send(
            c.get(api(
                "/audit?operation=alias.publish&actor=token:writer&limit=10",
            ))
            .bearer_auth(&admin),
        );
        assert_eq!(s, 200, "{b}");
        let rows = b.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{b}");
        assert_eq!(rows[1]["actor"], "token:writer");
        assert_eq!(rows[1]["params"]["snapshot"], "s1");
        let (_, b, _) = seen.send(
            c.get(api("/audit?actor=token:writer&limit=1"))
                .bearer_auth(&admin),
        );
        let newest = b[0]["id"].as_i64().unwrap();
        let (_, b, _) = seen.send(
            c.get(api(&format!("/audit?actor=token:writer&before={newest}")))
                .bearer_auth(&admin),
        );
        assert!(
            b.as_array()
                .unwrap()
                .iter()
                .all(|r| r["id"].as_i64().unwrap() < newest),
            "{b}"
        );
        let (s, b, _) = seen.send(c.get(api("/tokens")).bearer_auth(&admin));
        let states: Vec<(&str, &str)> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap(), t["state"].as_str().unwrap()))
            .collect();
        assert_eq!(s, 200);
        assert_eq!(
            states,
            [
                ("admin", "active"),
                ("brief", "expired"),
                ("gone", "revoked"),
                ("reader", "active"),
                ("writer", "active")
            ],
            "{b}"
        );

        // The audit page: admin only (a browser asks for the token as a password),
        // every value escaped.
        let page = |token: Option<&str>| {
            let mut req = c.get(server.url("/audit?operation=alias.publish"));
            if let Some(t) = token {
                req = req.basic_auth("cairn", Some(t));
            }
            let resp = req.send().unwrap();
            (resp.status().as_u16(), resp.text().unwrap())
        };
        assert_eq!(page(None).0, 401);
        assert_eq!(page(Some(&reader)).0, 403);
        let (s, html) = page(Some(&admin));
        assert_eq!(s, 200, "{html}");
        assert!(
            html.contains("token:writer") && html.contains("alias.publish"),
            "{html}"
        );
        assert!(html.contains("&#34;snapshot&#34;:&#34;s1&#34;"), "{html}");
        assert!(!html.contains("snapshot.create"), "filtered: {html}");

        // Too many failures from one address: held off, even with a good token.
        for _ in 0..10 {
            seen.send(
                c.get(api("/repos"))
                    .bearer_auth("cairn_0123456789abcdef_wrong"),
            );
        }
        let (s, b, h) = seen.send(c.get(api("/repos")).bearer_auth(&reader));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (429, Some("too_many_failures")),
            "{b}"
        );
        assert!(h.contains_key("retry-after"));
        let metrics = c
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            metrics.lines().any(|l| l
                .starts_with("cairn_api_auth_failures_total{reason=\"unknown\"} ")
                && !l.ends_with(" 0")),
            "{metrics}"
        );
        drop(server);

        // No secret anywhere: not in an answer, the server's log or the catalog.
        let logged = std::fs::read_to_string(&log_path).unwrap();
        assert!(logged.contains("authentication failed"), "{logged}");
        let answers = seen.0.borrow();
        for secret in [&reader, &writer, &admin, &revoked, &expired] {
            let part = &secret["cairn_0123456789abcdef_".len()..];
            assert!(!answers.contains(part), "{name}: a secret in an answer");
            assert!(!logged.contains(part), "{name}: a secret in the log");
        }
    }
}

/// Follows job `id` until it ends; returns its last state.
fn wait_job(c: &Client, server: &Server, token: &str, id: i64) -> Value {
    let mut last = Value::Null;
    wait_for(&format!("job {id} to end"), || {
        last = c
            .get(server.url(&format!("/api/v1/jobs/{id}")))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json_value();
        last["finished_at"].is_i64()
    });
    last
}

trait JsonValue {
    fn json_value(self) -> Value;
}

impl JsonValue for reqwest::blocking::Response {
    fn json_value(self) -> Value {
        serde_json::from_str(&self.text().unwrap()).unwrap()
    }
}

#[test]
fn syncs_run_as_jobs_that_report_progress_cancel_and_outlive_the_server() {
    for backend in backends() {
        let (up_dir, repo) = demo_upstream_tree();
        let upstream = Upstream::start_slow(up_dir.path(), "2m");
        let env = mirror_env(&backend, &upstream, "");
        let ops = token(&env, "ops", &["--scope", "admin"]);
        let looker = token(&env, "looker", &["--scope", "read", "--repo", "m"]);
        let server = env.serve();
        let c = http();
        let api = |path: &str| server.url(&format!("/api/v1{path}"));
        let name = backend.name();

        // A sync as a job: 202 with where to follow it; it ends as the command's would.
        let resp = c
            .post(api("/repos/m/sync"))
            .bearer_auth(&ops)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{name}");
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let job = resp.json_value();
        assert_eq!(
            (job["kind"].as_str(), job["state"].as_str()),
            (Some("sync"), Some("queued")),
            "{job}"
        );
        assert_eq!(location, format!("/api/v1/jobs/{}", job["id"]));
        let done = wait_job(&c, &server, &ops, job["id"].as_i64().unwrap());
        assert_eq!(done["state"], "succeeded", "{name}: {done}");
        assert_eq!(done["result"]["status"], "ok", "{done}");
        assert!(done["progress"]["files"].as_i64().unwrap() >= 4, "{done}");
        assert_eq!(done["actor"], "token:ops");
        let served = c
            .get(server.url("/repos/m/latest/repodata/repomd.xml"))
            .send()
            .unwrap();
        assert_eq!(served.status(), 200);
        // The sync is audited as the token's.
        let audit = env.json(&["audit", "--operation", "sync"]);
        assert_eq!(audit[0]["actor"], "token:ops", "{audit}");

        // A long sync (a 16 MiB package at 2 MB/s): its events report progress; cancelled,
        // it stops, keeping what it downloaded, and latest is unchanged.
        cairn::formats::samples::large_package(&repo, "bigpkg", 16 * 1024 * 1024).unwrap();
        createrepo_dir(&repo, true);
        make_world_readable(up_dir.path());
        let job = c
            .post(api("/repos/m/sync"))
            .bearer_auth(&ops)
            .send()
            .unwrap()
            .json_value();
        let id = job["id"].as_i64().unwrap();
        let mut events = c
            .get(api(&format!("/jobs/{id}/events")))
            .bearer_auth(&looker)
            .send()
            .unwrap();
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        use std::io::Read;
        while !seen.contains("\"bytes\":")
            || !seen
                .lines()
                .any(|l| l.starts_with("data:") && !l.contains("\"bytes\":0,"))
        {
            let n = events.read(&mut buf).unwrap();
            assert!(n > 0, "the event stream ended early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(seen.starts_with("event: progress\ndata: {"), "{seen}");
        let job_of = |id: i64| {
            c.get(api(&format!("/jobs/{id}")))
                .bearer_auth(&ops)
                .send()
                .unwrap()
                .json_value()
        };
        assert_eq!(job_of(id)["state"], "running", "{name}");
        // A second sync of the same repository waits, queued, behind the first; a
        // queued job cancelled ends without having started.
        let second = c
            .post(api("/repos/m/sync"))
            .bearer_auth(&ops)
            .send()
            .unwrap()
            .json_value();
        let second = second["id"].as_i64().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let queued = job_of(second);
        assert_eq!(
            (queued["state"].as_str(), queued["started_at"].as_i64()),
            (Some("queued"), None),
            "{name}: {queued}"
        );
        let resp = c
            .post(api(&format!("/jobs/{second}/cancel")))
            .bearer_auth(&ops)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{name}");
        let ended = wait_job(&c, &server, &ops, second);
        assert_eq!(ended["state"], "cancelled", "{name}: {ended}");
        assert!(ended["started_at"].is_null(), "{ended}");
        assert!(
            ended["error"]
                .as_str()
                .unwrap()
                .contains("before it started"),
            "{ended}"
        );
        // gc waits for the running sync (it holds the pool); cancelled, it stops
        // waiting.
        let gc = c
            .post(api("/gc"))
            .bearer_auth(&ops)
            .body(r#"{"min_age": "0s"}"#)
            .send()
            .unwrap()
            .json_value();
        let gc = gc["id"].as_i64().unwrap();
        wait_for("gc to start waiting", || job_of(gc)["state"] == "running");
        let resp = c
            .post(api(&format!("/jobs/{gc}/cancel")))
            .bearer_auth(&ops)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{name}");
        let ended = wait_job(&c, &server, &ops, gc);
        assert_eq!(ended["state"], "cancelled", "{name}: {ended}");
        assert!(
            ended["error"].as_str().unwrap().contains("gc cancelled"),
            "{ended}"
        );
        assert_eq!(job_of(id)["state"], "running", "{name}: the sync goes on");
        // Read-only tokens may not cancel.
        let refused = c
            .post(api(&format!("/jobs/{id}/cancel")))
            .bearer_auth(&looker)
            .send()
            .unwrap();
        assert_eq!(refused.status(), 403);
        let resp = c
            .post(api(&format!("/jobs/{id}/cancel")))
            .bearer_auth(&ops)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{name}");
        let done = wait_job(&c, &server, &ops, id);
        assert_eq!(done["state"], "cancelled", "{name}: {done}");
        // The event stream ends with the job, saying how.
        let mut rest = String::new();
        events.read_to_string(&mut rest).unwrap();
        assert!(
            rest.contains("event: done") && rest.contains("\"cancelled\""),
            "{rest}"
        );
        let kept = std::fs::read_dir(env.data().join("pool/tmp"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("partial-"));
        assert!(
            kept,
            "{name}: the partial download is kept for the next sync"
        );
        let again = c
            .post(api(&format!("/jobs/{id}/cancel")))
            .bearer_auth(&ops)
            .send()
            .unwrap();
        assert_eq!(again.status(), 409, "a finished job cannot be cancelled");

        // gc as a job; jobs listed, newest first; a limited token sees its own only.
        let gc = c
            .post(api("/gc"))
            .bearer_auth(&ops)
            .body(r#"{"dry_run": true, "min_age": "0s"}"#)
            .send()
            .unwrap();
        assert_eq!(gc.status(), 202);
        let gc = wait_job(&c, &server, &ops, gc.json_value()["id"].as_i64().unwrap());
        assert_eq!(
            (gc["state"].as_str(), gc["params"]["dry_run"].as_bool()),
            (Some("succeeded"), Some(true)),
            "{gc}"
        );
        let metrics = c
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        for line in [
            "cairn_jobs_total{kind=\"sync\",state=\"succeeded\"} 1",
            "cairn_jobs_total{kind=\"sync\",state=\"cancelled\"} 2",
            "cairn_jobs_total{kind=\"gc\",state=\"succeeded\"} 1",
            "cairn_jobs_total{kind=\"gc\",state=\"cancelled\"} 1",
        ] {
            assert!(metrics.contains(line), "{line}\n{metrics}");
        }
        let listed = c
            .get(api("/jobs"))
            .bearer_auth(&ops)
            .send()
            .unwrap()
            .json_value();
        let kinds: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["gc", "gc", "sync", "sync", "sync"], "{listed}");
        let mine = c
            .get(api("/jobs"))
            .bearer_auth(&looker)
            .send()
            .unwrap()
            .json_value();
        assert_eq!(mine.as_array().unwrap().len(), 3, "{mine}");

        // A job running when the server stops is interrupted, as the next server says.
        let job = c
            .post(api("/repos/m/sync"))
            .bearer_auth(&ops)
            .send()
            .unwrap()
            .json_value();
        let id = job["id"].as_i64().unwrap();
        let mut server = server;
        server.stop();
        let server = env.serve();
        let after = c
            .get(server.url(&format!("/api/v1/jobs/{id}")))
            .bearer_auth(&ops)
            .send()
            .unwrap()
            .json_value();
        assert_eq!(after["state"], "interrupted", "{name}: {after}");
        assert!(after["finished_at"].is_i64(), "{after}");

        // verify as a job, with its report; a read token may not start one.
        let refused = c
            .post(server.url("/api/v1/verify"))
            .bearer_auth(&looker)
            .send()
            .unwrap();
        assert_eq!(refused.status(), 403);
        let verify = c
            .post(server.url("/api/v1/verify"))
            .bearer_auth(&ops)
            .send()
            .unwrap();
        assert_eq!(verify.status(), 202);
        let verify = wait_job(
            &c,
            &server,
            &ops,
            verify.json_value()["id"].as_i64().unwrap(),
        );
        assert_eq!(verify["state"], "succeeded", "{verify}");
        assert!(
            verify["result"]["missing"].as_array().unwrap().is_empty(),
            "{verify}"
        );
        assert!(
            verify["progress"]["files"].as_i64().unwrap() >= 4,
            "{verify}"
        );

        // Every mirrored repository at once: one job each.
        let all = c
            .post(server.url("/api/v1/sync"))
            .bearer_auth(&ops)
            .send()
            .unwrap();
        assert_eq!(all.status(), 202);
        let all = all.json_value();
        assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
        assert_eq!(all[0]["target"], "repo:m");
        wait_job(&c, &server, &ops, all[0]["id"].as_i64().unwrap());
    }
}

#[test]
fn guarded_trees_need_a_read_token_which_dnf_sends() {
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            // A long memory of accepted tokens: a revocation must still take effect
            // at once.
            "token_cache = \"5m\"\n\
             [[repo]]\nid = \"fx\"\naccess = \"token\"\n[[repo]]\nid = \"open\"\n\
             [[view]]\nname = \"gv\"\nrepos = [\"open\"]\naccess = \"token\"\n",
        );
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["import", "open", rpms.to_str().unwrap()]);
        let reader = token(&env, "fx-reader", &["--scope", "read", "--repo", "fx"]);
        let other = token(&env, "open-writer", &["--scope", "write", "--repo", "open"]);
        let server = env.serve();
        let c = http();
        let name = backend.name();
        let status = |path: &str, auth: Option<&str>| {
            let mut req = c.get(server.url(path));
            if let Some(t) = auth {
                req = req.basic_auth("cairn", Some(t));
            }
            req.send().unwrap().status().as_u16()
        };
        // Every tree, file, page and .repo file of a guarded repository or view.
        for path in [
            "/repos/fx/",
            "/repos/fx/latest/",
            "/repos/fx/latest.repo",
            "/repos/fx/latest/repodata/repomd.xml",
            "/views/gv/latest/repodata/repomd.xml",
        ] {
            assert_eq!(status(path, None), 401, "{name}: {path}");
            assert_eq!(
                status(path, Some("cairn_0123456789abcdef_nope")),
                401,
                "{path}"
            );
        }
        assert_eq!(
            status("/repos/fx/latest/repodata/repomd.xml", Some(&reader)),
            200
        );
        assert_eq!(
            status("/repos/fx/latest/repodata/repomd.xml", Some(&other)),
            403
        );
        // A token for a view's member is not one for the view.
        assert_eq!(
            status("/views/gv/latest/repodata/repomd.xml", Some(&other)),
            403
        );
        // Public ones stay public.
        assert_eq!(status("/repos/open/latest/repodata/repomd.xml", None), 200);
        // The public home page does not list the guarded ones.
        let home = c.get(server.url("/")).send().unwrap().text().unwrap();
        assert!(home.contains("href=\"/repos/open/\""), "{home}");
        assert!(
            !home.contains("/repos/fx/") && !home.contains("/views/gv/"),
            "{name}: {home}"
        );
        let repo_file = c
            .get(server.url("/repos/fx/latest.repo"))
            .bearer_auth(&reader)
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            repo_file.contains("username=cairn\npassword=TOKEN\n"),
            "{repo_file}"
        );

        // dnf with the token as its password installs; without it, it cannot.
        let baseurl = server.url("/repos/fx/latest/");
        let password = format!("--setopt=t.password={reader}");
        let with = dnf_with(
            &baseurl,
            &["--nogpgcheck", "--setopt=t.username=cairn", &password],
            &["install", "demo-app"],
        );
        assert!(with.ok, "{name}: {}\n{}", with.stdout, with.stderr);
        assert!(
            with.installed.contains(&"demo-lib".to_string()),
            "{:?}",
            with.installed
        );
        let without = dnf_with(&baseurl, &["--nogpgcheck"], &["install", "demo-app"]);
        assert!(
            !without.ok && without.installed.is_empty(),
            "{name}: {}",
            without.stdout
        );
        assert!(without.stderr.contains("401"), "{}", without.stderr);

        // A worker remembers a token it accepted (dnf's many requests were not each
        // checked in the catalog) ...
        let counted = |how: &str| -> u64 {
            let text = c
                .get(server.url("/metrics"))
                .send()
                .unwrap()
                .text()
                .unwrap();
            let prefix = format!("cairn_http_token_checks_total{{how=\"{how}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {prefix}in {text}"))
                .parse()
                .unwrap()
        };
        assert!(
            counted("remembered") > 0,
            "{name}: checked {}",
            counted("checked")
        );
        let checked = counted("checked");
        let repomd = "/repos/fx/latest/repodata/repomd.xml";
        for _ in 0..20 {
            assert_eq!(status(repomd, Some(&reader)), 200);
        }
        assert!(
            counted("checked") <= checked + 2,
            "{name}: one check per worker at most"
        );
        // ... but forgets it as soon as it is revoked, however long it may remember.
        env.ok(&["token", "revoke", "fx-reader"]);
        wait_for("the revoked token to be refused", || {
            status(repomd, Some(&reader)) == 401
        });
        for _ in 0..5 {
            // 429 once this address has failed too often (the earlier refusals count).
            let refused = status(repomd, Some(&reader));
            assert!(matches!(refused, 401 | 429), "{name}: {refused}");
        }
    }
}

#[test]
fn packages_are_uploaded_by_streaming_put_under_the_rules_of_import() {
    use sha2::Digest;
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            "[[repo]]\nid = \"fx\"\n[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:9/none/\"\n",
        );
        let rpms = env.dir.path().join("rpms");
        let files = cairn::formats::samples::demo_packages(&rpms).unwrap();
        let big = cairn::formats::samples::large_package(&rpms, "bigpkg", 8 * 1024 * 1024).unwrap();
        let writer = token(&env, "up", &["--scope", "write", "--repo", "fx"]);
        let reader = token(&env, "r", &["--scope", "read"]);
        let server = env.serve();
        let c = http();
        let seen = Seen::default();
        let name = backend.name();
        let put = |file: &str, bytes: Vec<u8>, token: &str, sha: Option<&str>| {
            let mut req = c
                .put(server.url(&format!("/api/v1/repos/fx/packages/{file}")))
                .bearer_auth(token)
                .body(bytes);
            if let Some(sha) = sha {
                req = req.header("X-Checksum-Sha256", sha);
            }
            seen.send(req)
        };
        let lib = std::fs::read(&files[0]).unwrap();
        let lib_name = files[0].file_name().unwrap().to_str().unwrap().to_string();
        let lib_sha = hex::encode(sha2::Sha256::digest(&lib));

        let (s, b, _) = put(&lib_name, lib.clone(), &writer, Some(&lib_sha));
        assert_eq!(s, 201, "{name}: {b}");
        assert_eq!(
            (b["sha256"].as_str(), b["added"].as_array().unwrap().len()),
            (Some(lib_sha.as_str()), 1),
            "{b}"
        );
        let (s, b, _) = put(&lib_name, lib.clone(), &writer, None);
        assert_eq!((s, b["unchanged"].as_bool()), (201, Some(true)), "{b}");
        // RFC 3230's Digest header works as well.
        use base64::Engine;
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&lib));
        let (s, _, _) = seen.send(
            c.put(server.url(&format!("/api/v1/repos/fx/packages/{lib_name}")))
                .bearer_auth(&writer)
                .header("Digest", format!("sha-256={digest}"))
                .body(lib.clone()),
        );
        assert_eq!(s, 201);

        // A stated checksum that does not match: nothing kept.
        let tools = std::fs::read(&files[1]).unwrap();
        let tools_name = files[1].file_name().unwrap().to_str().unwrap().to_string();
        let (s, b, _) = put(&tools_name, tools.clone(), &writer, Some(&lib_sha));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{b}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was kept"),
            "{b}"
        );
        // A damaged package: refused with why, naming the file (not where it was kept).
        let (s, b, _) = put(
            &tools_name,
            tools[..tools.len() / 2].to_vec(),
            &writer,
            None,
        );
        assert_eq!(s, 422, "{b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&tools_name) && !message.contains("/pool/"),
            "{message}"
        );
        // Who and where: a read token, a mirror, a name that is not a package's.
        let (s, _, _) = put(&tools_name, tools.clone(), &reader, None);
        assert_eq!(s, 403);
        let (s, b, _) = seen.send(
            c.put(server.url(&format!("/api/v1/repos/m/packages/{tools_name}")))
                .bearer_auth(&reader)
                .body(tools.clone()),
        );
        assert_eq!(s, 403, "{b}");
        let admin = token(&env, "adm", &["--scope", "admin"]);
        let (s, b, _) = seen.send(
            c.put(server.url(&format!("/api/v1/repos/m/packages/{tools_name}")))
                .bearer_auth(&admin)
                .body(tools.clone()),
        );
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (409, Some("conflict")),
            "{b}"
        );
        let (s, _, _) = put("notes.txt", tools.clone(), &writer, None);
        assert_eq!(s, 422);

        // A large package streams through.
        let big_bytes = std::fs::read(&big).unwrap();
        let (s, b, _) = put("bigpkg.rpm", big_bytes.clone(), &writer, None);
        assert_eq!(
            (s, b["size"].as_u64()),
            (201, Some(big_bytes.len() as u64)),
            "{b}"
        );

        // What landed is served and listed, and the uploads are audited as the token's.
        let listed = c
            .get(server.url("/api/v1/repos/fx/trees/latest/packages"))
            .bearer_auth(&reader)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let listed: Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed["total"], 2, "{listed}");
        let served = c
            .get(server.url(&format!(
                "/repos/fx/latest/{}",
                listed["packages"][1]["location"].as_str().unwrap()
            )))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(served.as_ref(), lib.as_slice());
        let audit = env.json(&["audit", "--operation", "import", "--actor", "token:up"]);
        assert!(audit.as_array().unwrap().len() >= 4, "{audit}");
        let tmp: Vec<_> = std::fs::read_dir(env.data().join("pool/tmp"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            tmp.is_empty(),
            "{name}: uploads leave nothing behind: {tmp:?}"
        );
    }
}
