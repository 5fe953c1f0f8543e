//! The audit log and API tokens, on both backends: every change a command makes is
//! recorded with who made it; tokens are stored hashed, their secret shown once.

mod common;

use common::*;

/// The unix user these tests run as, as the audit log names it.
fn me() -> String {
    run_ok(std::process::Command::new("id").arg("-un"))
        .trim()
        .to_string()
}

fn audit(env: &Env, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    env.json(&all).as_array().unwrap().clone()
}

#[test]
fn every_change_from_the_command_line_is_audited() {
    let cli = format!("cli:{}", me());
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
        env.ok(&["snapshot", "create", "fx", "--name", "s2"]);
        env.ok(&["publish", "fx", "s1", "--as", "prod"]);
        // A failed change is recorded too, with its error.
        let refused = run_failing(&env, &["publish", "fx", "nope", "--as", "prod"]);
        env.ok(&["alias", "delete", "fx", "prod"]);
        env.ok(&["snapshot", "delete", "fx", "s2"]);
        env.ok(&["gc", "--dry-run"]);
        // Reading changes nothing and is not recorded.
        env.ok(&["snapshot", "list", "fx"]);

        let rows = audit(&env, &[]);
        let seen: Vec<(String, String, String)> = rows
            .iter()
            .rev()
            .map(|r| {
                assert_eq!(r["actor"], cli.as_str(), "{r}");
                assert!(r["duration_ms"].as_i64().unwrap() >= 0, "{r}");
                (
                    r["operation"].as_str().unwrap().to_string(),
                    r["target"].as_str().unwrap().to_string(),
                    r["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected: Vec<(String, String, String)> = [
            ("import", "repo:fx", "ok"),
            ("snapshot.create", "repo:fx", "ok"),
            ("snapshot.create", "repo:fx", "ok"),
            ("alias.publish", "repo:fx", "ok"),
            ("alias.publish", "repo:fx", "error"),
            ("alias.delete", "repo:fx", "ok"),
            ("snapshot.delete", "repo:fx", "ok"),
            ("gc", "", "ok"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(seen, expected, "{}", backend.name());

        // Parameters are recorded as given; a failure's error as the command said it.
        let published: Vec<&serde_json::Value> = rows
            .iter()
            .filter(|r| r["operation"] == "alias.publish")
            .collect();
        assert_eq!(published[1]["params"]["alias"], "prod");
        assert_eq!(published[1]["params"]["snapshot"], "s1");
        let error = published[0]["error"].as_str().unwrap();
        assert!(
            error.contains("nope") && refused.contains(error),
            "{error} / {refused}"
        );
        assert_eq!(rows[0]["params"]["dry_run"], true);

        // Filters: by operation, by age, by count.
        let creates = audit(&env, &["--operation", "snapshot.create"]);
        assert_eq!(creates.len(), 2);
        assert_eq!(creates[0]["params"]["name"], "s2");
        assert_eq!(audit(&env, &["--since", "1h"]).len(), rows.len());
        assert_eq!(audit(&env, &["--limit", "3"]).len(), 3);
        assert!(audit(&env, &["--actor", "scheduler"]).is_empty());
        let text = env.ok(&["audit"]);
        assert!(
            text.lines()
                .any(|l| l.contains("alias.publish") && l.contains("error: ")),
            "{text}"
        );
    }
}

/// Every byte the catalog holds, as text (SQLite: the files; PostgreSQL: a dump).
fn catalog_bytes(env: &Env) -> String {
    match &env.backend {
        Backend::Sqlite => {
            let mut all = Vec::new();
            for e in std::fs::read_dir(env.data()).unwrap().flatten() {
                if e.file_name().to_string_lossy().starts_with("catalog.db") {
                    all.extend(std::fs::read(e.path()).unwrap());
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        }
        Backend::Postgres(_) => {
            run_ok(std::process::Command::new("pg_dump").arg(env.database_url()))
        }
    }
}

#[test]
fn tokens_are_shown_once_and_stored_only_as_hashes() {
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            "[[repo]]\nid = \"fx\"\n[[repo]]\nid = \"other\"\n",
        );
        let out = env.run(&[
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "write",
            "--repo",
            "fx",
            "--expires",
            "90d",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let told = String::from_utf8_lossy(&out.stderr);
        assert!(token.starts_with("cairn_") && token.len() > 50, "{token}");
        assert!(
            told.contains("cannot be shown again") && !told.contains(&token),
            "{told}"
        );
        let secret = token["cairn_0123456789abcdef_".len()..].to_string();

        let made = env.json(&["token", "create", "--name", "ops", "--scope", "admin"]);
        let ops_token = made["token"].as_str().unwrap().to_string();
        assert_eq!(made["scope"], "admin");
        assert_eq!(made["state"], "active");
        assert!(made["expires_at"].is_null());

        // Listed with scope, limits and state, never a secret.
        let listing = env.ok(&["token", "list", "--json"]);
        let listed: serde_json::Value = serde_json::from_str(&listing).unwrap();
        let ci = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "ci")
            .unwrap();
        assert_eq!(ci["scope"], "write");
        assert_eq!(ci["repos"], serde_json::json!(["fx"]));
        assert!(
            ci["expires_at"].as_i64().unwrap() > ci["created_at"].as_i64().unwrap() + 89 * 86400
        );
        for text in [listing.clone(), env.ok(&["token", "list"])] {
            assert!(
                !text.contains(&secret) && !text.contains(&ops_token),
                "{text}"
            );
        }

        // A name is taken while its token lives; bad names, scopes and limits are
        // refused with the fix.
        let dup = run_failing(
            &env,
            &["token", "create", "--name", "ci", "--scope", "read"],
        );
        assert!(dup.contains("cairn token revoke ci"), "{dup}");
        let unknown = run_failing(
            &env,
            &[
                "token", "create", "--name", "x", "--scope", "read", "--repo", "nope",
            ],
        );
        assert!(unknown.contains("\"nope\" is not declared"), "{unknown}");
        let scope = run_failing(&env, &["token", "create", "--name", "x", "--scope", "root"]);
        assert!(scope.contains("read, write or admin"), "{scope}");
        let name = run_failing(
            &env,
            &["token", "create", "--name", "a b", "--scope", "read"],
        );
        assert!(name.contains("cannot be a token name"), "{name}");
        let zero = run_failing(
            &env,
            &[
                "token",
                "create",
                "--name",
                "x",
                "--scope",
                "read",
                "--expires",
                "0s",
            ],
        );
        assert!(zero.contains("--expires"), "{zero}");

        // Revoked: listed as such; its name can be given again.
        env.ok(&["token", "revoke", "ci"]);
        let again = run_failing(&env, &["token", "revoke", "ci"]);
        assert!(again.contains("no live token named \"ci\""), "{again}");
        let listed = env.json(&["token", "list"]);
        assert!(listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "ci" && t["state"] == "revoked"));
        env.ok(&["token", "create", "--name", "ci", "--scope", "read"]);

        // Made and revoked tokens are audited, without their secrets.
        let rows = env.ok(&["audit", "--json"]);
        assert!(
            rows.contains("token.create") && rows.contains("token.revoke"),
            "{rows}"
        );
        assert!(rows.contains("\"token:ci\""), "{rows}");
        // The secrets are nowhere in the catalog (nor the audit log it holds).
        let stored = catalog_bytes(&env);
        assert!(
            stored.contains("token.create"),
            "the catalog dump reads the audit log"
        );
        for s in [&secret, &token, &ops_token] {
            assert!(
                !rows.contains(s.as_str()) && !stored.contains(s.as_str()),
                "{}",
                backend.name()
            );
        }
    }
}

/// Tokens checked as the API checks them: valid, tampered, revoked, expired.
#[test]
fn tokens_are_checked_against_their_hashes() {
    for backend in backends() {
        let env = Env::with_repo_toml(&backend, "[[repo]]\nid = \"fx\"\n");
        let made = env.json(&[
            "token", "create", "--name", "ci", "--scope", "write", "--repo", "fx",
        ]);
        let token = made["token"].as_str().unwrap().to_string();
        let short = env.json(&[
            "token",
            "create",
            "--name",
            "brief",
            "--scope",
            "read",
            "--expires",
            "1s",
        ]);
        let brief = short["token"].as_str().unwrap().to_string();
        let config = cairn::app::config::Config::load(&env.config).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let app = cairn::app::context::App::open(config).await.unwrap();
            let who = app.authenticate(&token).await.unwrap();
            assert_eq!(who.name, "ci");
            assert!(who.may(cairn::app::tokens::Scope::Write, Some("fx")));
            assert!(!who.may(cairn::app::tokens::Scope::Admin, Some("fx")));
            assert!(!who.may(cairn::app::tokens::Scope::Read, Some("other")));
            // Any change to the secret, or a made-up token, is refused.
            let mut tampered = token.clone().into_bytes();
            let last = tampered.len() - 1;
            tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            use cairn::app::tokens::AuthError;
            assert!(matches!(
                app.authenticate(&tampered).await,
                Err(AuthError::Unknown)
            ));
            assert!(matches!(
                app.authenticate("cairn_0123456789abcdef_xyz").await,
                Err(AuthError::Unknown)
            ));
            assert!(matches!(
                app.authenticate("Bearer nonsense").await,
                Err(AuthError::Malformed)
            ));
            std::thread::sleep(std::time::Duration::from_millis(2100));
            assert!(
                matches!(app.authenticate(&brief).await, Err(AuthError::Expired(n)) if n == "brief")
            );
            let by = cairn::domain::actor::Actor::Cli("tester".into());
            app.revoke_token(&by, "ci").await.unwrap();
            assert!(
                matches!(app.authenticate(&token).await, Err(AuthError::Revoked(n)) if n == "ci")
            );
            app.catalog.close().await;
        });
        // Using a token records when it was last used.
        let listed = env.json(&["token", "list"]);
        let ci = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "ci")
            .unwrap();
        assert!(ci["last_used_at"].as_i64().is_some(), "{listed}");
    }
}
