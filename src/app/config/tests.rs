//! The configuration's parsing and checks.

use super::*;

#[test]
fn defaults_apply() {
    let c = Config::parse("", Path::new("x.toml")).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.data_dir, PathBuf::from("./cairn-data"));
    assert!(c
        .database_url()
        .starts_with("sqlite://./cairn-data/catalog.db"));
}

#[test]
fn values_that_could_only_fail_later_are_refused_at_load_with_line_and_key() {
    let cases = [
        ("[server]\nidle_timeout = \"0s\"\n", "idle_timeout", 2),
        ("[server]\n\nheader_timeout = \"0s\"\n", "header_timeout", 3),
        ("[server]\nmax_connections = 0\n", "max_connections", 2),
        ("[server]\ntoken_cache = \"1h\"\n", "token_cache", 2),
        ("[server]\n\nmax_jobs = 0\n", "max_jobs", 3),
        ("[server]\nworkers = 100000\n", "workers", 2),
        ("[server]\nmax_header_bytes = 100\n", "max_header_bytes", 2),
        ("[server]\nlisten = \"127.0.0.1:99999\"\n", "listen", 2),
        ("[[repo]]\nid = \"a\"\nfeed = \"http://\"\n", "feed", 3),
        (
            "[[repo]]\nid = \"a\"\nfeed = \"https://m.example/el9/repodata/\"\n",
            "repository's root",
            3,
        ),
        ("[[repo]]\nid = \"latest\"\n", "reserved", 2),
        (
            "[[repo]]\nid = \"a\"\n[[view]]\nname = \"a\"\nrepos = [\"a\"]\n",
            "has the name of a repo",
            4,
        ),
        (
            "[[repo]]\nid = \"a\"\n[[view]]\nname = \"v\"\nrepos = [\"a\",\n \"a\"]\n",
            "twice",
            6,
        ),
    ];
    for (text, what, line) in cases {
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{text:?}: {err}");
        assert!(err.contains(&format!("line {line}")), "{text:?}: {err}");
    }
}

#[test]
fn relative_paths_are_taken_from_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(
        &file,
        "[server]\ndata_dir = \"./site\"\n[[repo]]\nid = \"m\"\nfeed = \"https://x.example/\"\ntls_ca = \"ca.pem\"\n",
    )
    .unwrap();
    let c = Config::load(&file).unwrap();
    let root = std::path::absolute(dir.path()).unwrap();
    assert_eq!(c.server.data_dir, root.join("./site"));
    assert_eq!(
        c.repos[0].tls_ca.as_deref(),
        Some(root.join("ca.pem").as_path())
    );
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    let err = Config::parse(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    let err = Config::parse("[[repo]]\nid = \"a\"\nfeeed = \"x\"\n", Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("feeed"), "{err}");
}

#[test]
fn bad_values_are_named() {
    let err = Config::parse("[server]\nlisten = \"nowhere\"\n", Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listen"), "{err}");
    let err = Config::parse("[[repo]]\nid = \"../x\"\n", Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("../x"), "{err}");
    let err = Config::parse(
        "[[repo]]\nid = \"a\"\n[[repo]]\nid = \"a\"\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("twice"), "{err}");
    let err = Config::parse(
        "[[repo]]\nid = \"a\"\ncompression = \"lz4\"\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lz4") || err.contains("compression"), "{err}");
}

#[test]
fn schedules_are_checked() {
    let err = Config::parse(
        "[[repo]]\nid = \"a\"\nfeed = \"http://x/\"\nschedule = \"weekly\"\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("schedule") && err.contains("weekly"), "{err}");
    let err = Config::parse(
        "[[repo]]\nid = \"a\"\nschedule = \"every 1h\"\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs a feed"), "{err}");
    let ok = Config::parse(
        "[[repo]]\nid = \"a\"\nfeed = \"https://x/\"\nschedule = \"every 1h\"\n",
        Path::new("c.toml"),
    )
    .unwrap();
    assert!(ok.repos[0].schedule.is_some());
}

#[test]
fn upstreams_are_one_of_feed_mirrorlist_and_metalink_with_their_variables_set() {
    let refused = |repo: &str, what: &[&str]| {
        let text = format!("[[repo]]\nid = \"a\"\n{repo}");
        let err = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        for w in what {
            assert!(err.contains(w), "{repo}: {err}");
        }
    };
    refused(
        "feed = \"https://x/\"\nmirrorlist = \"https://m/\"\n",
        &["one of", "feed and mirrorlist"],
    );
    refused(
        "metalink = \"https://m/?repo=epel-$releasever\"\n",
        &["metalink", "$releasever", "vars"],
    );
    refused("feed = \"ftp://x/\"\n", &["feed", "http://", "file://"]);
    refused("max_rate = \"fast\"\n", &["max_rate", "10M"]);
    refused(
        "feed = \"https://x/\"\ntimeout = \"5s\"\nidle_timeout = \"9s\"\n",
        &["timeout", "not both"],
    );
    refused("feed = \"https://x/\"\ntimeout = \"0s\"\n", &["timeout"]);
    refused(
        "metalink = \"https://m/\"\nkind = \"tree\"\n",
        &["metalink", "tree"],
    );
    let ok = Config::parse(
        "[[repo]]\nid = \"a\"\nmetalink = \"https://m/metalink?repo=epel-${releasever}&arch=$basearch\"\n\
         vars = { releasever = \"9\", basearch = \"x86_64\" }\nmax_rate = \"2M\"\n\
         [[repo]]\nid = \"b\"\nfeed = \"file:///srv/iso/BaseOS/\"\n",
        Path::new("c.toml"),
    )
    .unwrap();
    assert_eq!(
        ok.repos[0].upstream(),
        Some(crate::app::config::Upstream::Metalink(
            "https://m/metalink?repo=epel-9&arch=x86_64".into()
        ))
    );
    assert_eq!(ok.repos[0].max_rate, Some(2 * 1024 * 1024));
    // Default timeouts; one `timeout` for both; each on its own.
    let secs = std::time::Duration::from_secs;
    assert_eq!(
        (ok.repos[0].connect_timeout(), ok.repos[0].idle_timeout()),
        (secs(15), secs(20))
    );
    let t = Config::parse(
        "[[repo]]\nid = \"a\"\nfeed = \"https://x/\"\ntimeout = \"7s\"\n\
         [[repo]]\nid = \"b\"\nfeed = \"https://x/\"\nidle_timeout = \"9s\"\n",
        Path::new("c.toml"),
    )
    .unwrap();
    assert_eq!(
        (t.repos[0].connect_timeout(), t.repos[0].idle_timeout()),
        (secs(7), secs(7))
    );
    assert_eq!(
        (t.repos[1].connect_timeout(), t.repos[1].idle_timeout()),
        (secs(15), secs(9))
    );
    assert!(ok.repos[1].is_mirrored());
}

#[test]
fn mirror_mode_refuses_filters() {
    let err = Config::parse(
        "[[repo]]\nid = \"a\"\nfeed = \"http://x/\"\nmode = \"mirror\"\nexclude = [\"x\"]\n",
        Path::new("c.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("mirror") && err.contains("exclude"), "{err}");
}

#[test]
fn example_configs_parse() {
    for file in ["config/cairn.example.toml", "appliance/cairn.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!c.repos.is_empty(), "{file}");
    }
}
