//! Reloading the configuration of a running server, by SIGHUP and through the API, on
//! both backends: what is new takes effect at once; a configuration with errors is
//! refused with the messages a start gives, and the old one stays in force.

mod common;

use common::*;
use serde_json::Value;

fn status(c: &reqwest::blocking::Client, url: &str) -> u16 {
    c.get(url).send().unwrap().status().as_u16()
}

#[test]
fn sighup_and_the_api_reload_the_configuration_or_keep_the_old_one() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        let admin = env.json(&["token", "create", "--name", "ops", "--scope", "admin"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        let reader = env.json(&["token", "create", "--name", "r", "--scope", "read"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        let original = std::fs::read_to_string(&env.config).unwrap();
        let server = env.serve();
        let c = http();
        let name = backend.name();
        let fx = server.url("/repos/fx/latest/repodata/repomd.xml");
        let two = server.url("/repos/two/latest/repodata/repomd.xml");
        assert_eq!(status(&c, &fx), 200);
        assert_eq!(status(&c, &two), 404);

        // SIGHUP: a new repository is served, and a new access rule guards fx.
        let guarded = original.replace(
            "id = \"fx\"\n",
            "id = \"fx\"\naccess = \"token\"\n[[repo]]\nid = \"two\"\n",
        );
        std::fs::write(&env.config, &guarded).unwrap();
        unsafe {
            libc::kill(server.pid() as i32, libc::SIGHUP);
        }
        wait_for("the reload", || status(&c, &two) == 200);
        assert_eq!(status(&c, &fx), 401, "{name}: the new access rule holds");

        // A configuration with errors: refused, as a start refuses it; the old one
        // stays in force and the server goes on.
        std::fs::write(
            &env.config,
            format!("{guarded}[[repo]]\nid = \"x\"\nbogus = 1\n"),
        )
        .unwrap();
        let startup = run_failing(&env, &["repo", "list"]);
        assert!(startup.contains("bogus"), "{startup}");
        unsafe {
            libc::kill(server.pid() as i32, libc::SIGHUP);
        }
        // (The command line cannot read this configuration: the API tells.)
        let audited = || -> Value {
            let text = c
                .get(server.url("/api/v1/audit?operation=config.reload"))
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .text()
                .unwrap();
            serde_json::from_str(&text).unwrap()
        };
        wait_for("the refused reload to be audited", || {
            audited().as_array().unwrap().len() == 2
        });
        let rows = audited();
        assert_eq!(rows[0]["outcome"], "error", "{rows}");
        assert_eq!(rows[0]["actor"], "signal:SIGHUP");
        assert!(
            rows[0]["error"]
                .as_str()
                .unwrap()
                .contains("unknown field `bogus`"),
            "{rows}"
        );
        assert_eq!(rows[1]["outcome"], "ok");
        assert_eq!(status(&c, &two), 200);
        assert_eq!(status(&c, &fx), 401);

        // The API: admin only; the same refusal, then a good configuration.
        let reload = |token: &str| {
            let resp = c
                .post(server.url("/api/v1/config/reload"))
                .bearer_auth(token)
                .send()
                .unwrap();
            let code = resp.status().as_u16();
            let body: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
            (code, body)
        };
        assert_eq!(reload(&reader).0, 403);
        let (code, body) = reload(&admin);
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (422, Some("invalid_config")),
            "{body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `bogus`"));
        std::fs::write(&env.config, &original).unwrap();
        let (code, body) = reload(&admin);
        assert_eq!(code, 200, "{name}: {body}");
        assert_eq!(body["repos_removed"], serde_json::json!(["two"]), "{body}");
        assert_eq!(status(&c, &fx), 200, "fx is public again");
        let rows = env.json(&[
            "audit",
            "--operation",
            "config.reload",
            "--actor",
            "token:ops",
        ]);
        assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");

        let mut server = server;
        assert!(
            server.stop().success(),
            "{name}: SIGTERM still ends the server cleanly"
        );
    }
}
