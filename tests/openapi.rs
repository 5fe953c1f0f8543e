//! The API against its own OpenAPI document: schemathesis (from PyPI) generates requests
//! from the document, valid and invalid, for every operation, and fails on any 5xx and
//! on any answer that does not match the document. Both backends.

mod common;

use common::*;

#[test]
fn the_api_keeps_to_its_openapi_document_under_schemathesis() {
    require_tool("schemathesis");
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            "[[repo]]\nid = \"fx\"\n[[repo]]\nid = \"two\"\n[[view]]\nname = \"v\"\nrepos = [\"fx\"]\n",
        );
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
        env.ok(&["publish", "fx", "s1", "--as", "prod"]);
        let admin = env.json(&["token", "create", "--name", "st", "--scope", "admin"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        let server = env.serve();

        // The document is public, and OpenAPI 3.1.
        let doc: serde_json::Value = serde_json::from_str(
            &http()
                .get(server.url("/api/v1/openapi.json"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(
            doc["paths"]["/repos/{repo}/snapshots"]["post"].is_object(),
            "{doc}"
        );

        let work = tempfile::tempdir().unwrap();
        // Names that exist, so every operation is also run against real data (random
        // names only ever reach the 404 answers).
        std::fs::write(
            work.path().join("schemathesis.toml"),
            "[parameters]\n\"path.repo\" = \"fx\"\n\"path.view\" = \"v\"\n\
             \"path.tree\" = \"latest\"\n\"path.snapshot\" = \"s1\"\n\"path.alias\" = \"prod\"\n",
        )
        .unwrap();
        let out = std::process::Command::new("schemathesis")
            .current_dir(work.path())
            .arg("run")
            .arg(server.url("/api/v1/openapi.json"))
            .args(["-H", &format!("Authorization: Bearer {admin}")])
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            // One worker: CPython before 3.11.8 can fail "AST constructor recursion
            // depth mismatch" when hypothesis parses source in two threads at once
            // (python/cpython#106905), a failure of the checker, not of the API.
            .args(["--max-examples", "25", "--seed", "1", "--workers", "1"])
            // Every phase, with valid and invalid data.
            .args([
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--mode",
                "all",
            ])
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis runs");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{}: schemathesis found problems:\n{text}",
            backend.name()
        );
        assert!(text.contains("passed"), "{text}");
        // Every phase ran (a phase that cannot run is reported, not an error).
        // (The examples phase has nothing to run: the document gives no examples.)
        for phase in ["Coverage", "Fuzzing", "Stateful"] {
            assert!(text.contains(&format!("✅ {phase}")), "{phase}:\n{text}");
        }
        eprintln!("{}: {}", backend.name(), text.trim_end());
    }
}
