//! Webhooks, on both backends, against a receiver on loopback written in Python: it
//! checks each body's HMAC-SHA256 signature with Python's own `hmac`, logs what it got,
//! and one of its URLs fails twice before it accepts.

mod common;

use std::io::BufRead;

use common::*;
use serde_json::Value;

/// The receiver: prints its port, then logs one JSON line per request.
const RECEIVER: &str = r#"
import hashlib, hmac, http.server, json, sys
secret, log = sys.argv[1].encode(), sys.argv[2]
failures = {"/flaky": 2}
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Hub-Signature-256", "")
        left = failures.get(self.path, 0)
        status = 500 if left > 0 else 200
        failures[self.path] = left - 1
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "status": status,
                "valid": hmac.compare_digest(want, got),
                "event": self.headers.get("X-Cairn-Event"),
                "delivery": self.headers.get("X-Cairn-Delivery"),
                "body": json.loads(body)}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct Receiver {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Receiver {
    fn start(dir: &std::path::Path, secret: &str) -> Receiver {
        let log = dir.join("received.jsonl");
        let mut child = std::process::Command::new("python3")
            .args(["-c", RECEIVER, secret])
            .arg(&log)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Receiver {
            child,
            port: line.trim().parse().expect("the receiver prints its port"),
            log,
        }
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_are_posted_signed_from_a_queue_that_retries_and_outlives_the_server() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start(dir.path(), "s3cret-for-hooks");
        let secret_file = dir.path().join("hook.secret");
        std::fs::write(&secret_file, "s3cret-for-hooks\n").unwrap();
        let base = format!("http://127.0.0.1:{}", receiver.port);
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "[[repo]]\nid = \"fx\"\n\
                 [[webhook]]\nurl = \"{base}/ok\"\nevents = [\"snapshot.created\", \"alias.published\"]\nsecret_file = \"{s}\"\n\
                 [[webhook]]\nurl = \"{base}/flaky\"\nevents = [\"snapshot.created\"]\nsecret_file = \"{s}\"\n",
                s = secret_file.display()
            ),
        );
        let name = backend.name();
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        // Changes made while no server runs are queued in the catalog.
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
        env.ok(&["publish", "fx", "s1", "--as", "prod"]);
        run_failing(&env, &["publish", "fx", "nope", "--as", "prod"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            receiver.received().is_empty(),
            "{name}: nothing is posted without a server"
        );

        let admin = env.json(&["token", "create", "--name", "ops", "--scope", "admin"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        let server = env.serve();
        wait_for("the deliveries", || {
            receiver
                .received()
                .iter()
                .filter(|r| r["status"] == 200)
                .count()
                >= 3
        });
        std::thread::sleep(std::time::Duration::from_millis(700));
        let got = receiver.received();
        assert!(got.iter().all(|r| r["valid"] == true), "{name}: {got:?}");
        let ok: Vec<&Value> = got.iter().filter(|r| r["path"] == "/ok").collect();
        let events: Vec<&str> = ok.iter().map(|r| r["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["snapshot.created", "alias.published"], "{got:?}");
        assert_eq!(ok[0]["body"]["target"], "repo:fx");
        assert_eq!(ok[0]["body"]["params"]["name"], "s1");
        assert_eq!(ok[1]["body"]["params"]["alias"], "prod");
        assert_eq!(
            ok[1]["body"]["actor"],
            format!(
                "cli:{}",
                run_ok(std::process::Command::new("id").arg("-un")).trim()
            )
        );
        // The flaky receiver failed twice, then got it: the same delivery three times.
        let flaky: Vec<&Value> = got.iter().filter(|r| r["path"] == "/flaky").collect();
        let statuses: Vec<i64> = flaky
            .iter()
            .map(|r| r["status"].as_i64().unwrap())
            .collect();
        assert_eq!(statuses, [500, 500, 200], "{got:?}");
        assert!(flaky.iter().all(|r| r["delivery"] == flaky[0]["delivery"]));

        // The queue says so, and the metrics count it.
        let c = http();
        let listed: Value = serde_json::from_str(
            &c.get(server.url("/api/v1/webhooks/deliveries"))
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .text()
                .unwrap(),
        )
        .unwrap();
        let rows = listed.as_array().unwrap();
        assert_eq!(rows.len(), 3, "{listed}");
        assert!(
            rows.iter()
                .all(|r| r["state"] == "delivered" && r["last_status"] == 200),
            "{listed}"
        );
        let flaky_row = rows
            .iter()
            .find(|r| r["url"].as_str().unwrap().ends_with("/flaky"))
            .unwrap();
        assert_eq!(flaky_row["attempts"], 3);
        let metrics = c
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        for (outcome, n) in [("delivered", 3), ("retried", 2)] {
            let line = format!("cairn_webhook_deliveries_total{{outcome=\"{outcome}\"}} {n}");
            assert!(metrics.contains(&line), "{line}\n{metrics}");
        }
        // The secret is in no body and no row.
        assert!(!got.iter().any(|r| r.to_string().contains("s3cret")));
        assert!(!listed.to_string().contains("s3cret"));
    }
}

#[test]
fn webhook_settings_are_checked() {
    assert_config_refused(
        "[[webhook]]\nurl = \"ftp://x/\"\n",
        "only http:// and https://",
    );
    assert_config_refused(
        "[[webhook]]\nurl = \"http://x/\"\nevents = [\"sync.started\"]\n",
        "unknown event \"sync.started\"",
    );
    assert_config_refused(
        "[[webhook]]\nurl = \"http://x/\"\nsecret = \"inline\"\n",
        "unknown field `secret`",
    );
}
