//! The pool's unit tests: durability protocol, stager, buckets, temp-file rules.

use super::temp::writer_pid;
use super::*;
use std::collections::HashSet;

#[test]
fn blobs_are_content_addressed_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    let a = pool.stage_bytes(b"hello").unwrap();
    let sha = a.sha256.clone();
    assert_eq!(
        sha,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert!(!pool.contains(&sha));
    pool.commit(vec![a]).unwrap();
    assert!(pool.contains(&sha));
    assert!(pool.path_of(&sha).ends_with(format!("2c/f2/{sha}")));
    let b = pool.stage_bytes(b"hello").unwrap();
    pool.commit(vec![b]).unwrap();
    assert_eq!(pool.verify(&sha).unwrap(), BlobState::Ok);
    assert_eq!(fs::read_dir(pool.root().join(TMP_DIR)).unwrap().count(), 0);
}

#[test]
fn a_large_batch_lands_whole_across_commit_threads() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    let early = pool.stage_bytes(b"blob 7").unwrap();
    pool.commit(vec![early]).unwrap();
    // 600 distinct blobs (spread over most top-level buckets), one of them already
    // stored, one staged twice in the same batch.
    let mut staged: Vec<Staged> = (0..600)
        .map(|i| pool.stage_bytes(format!("blob {i}").as_bytes()).unwrap())
        .collect();
    staged.push(pool.stage_bytes(b"blob 42").unwrap());
    let shas: Vec<String> = staged.iter().map(|s| s.sha256.clone()).collect();
    let buckets: HashSet<&str> = shas.iter().map(|s| &s[..2]).collect();
    assert!(buckets.len() > 200, "{} buckets", buckets.len());
    pool.commit(staged).unwrap();
    for (i, sha) in shas.iter().enumerate().take(600) {
        assert_eq!(
            fs::read(pool.path_of(sha)).unwrap(),
            format!("blob {i}").as_bytes()
        );
    }
    assert_eq!(fs::read_dir(pool.root().join(TMP_DIR)).unwrap().count(), 0);
}

#[test]
fn a_stager_writes_in_the_background_and_its_blobs_commit() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    let stager = pool.stager().unwrap();
    // More blobs than the queue holds: staging waits for the writer, never drops.
    let blobs: Vec<Vec<u8>> = (0..STAGER_QUEUE * 8)
        .map(|i| format!("verified {i}").into_bytes())
        .collect();
    let staged: Vec<Staged> = blobs
        .iter()
        .map(|b| {
            let sha = hex::encode(Sha256::digest(b));
            stager.stage_hashed(&pool, b.clone(), sha).unwrap()
        })
        .collect();
    assert_eq!(staged[0].size, blobs[0].len() as u64);
    let err = stager
        .stage_hashed(&pool, b"x".to_vec(), "../escape".into())
        .unwrap_err();
    assert!(matches!(err, PoolError::BadAddress(_)), "{err}");
    let journal = stager.finish().unwrap();
    let shas: Vec<String> = staged.iter().map(|s| s.sha256.clone()).collect();
    let temp = staged[0].path().unwrap().to_path_buf();
    assert_eq!(
        temp.parent(),
        pool.path_of(&shas[0]).parent(),
        "beside its blob"
    );
    assert!(is_temp_name(&temp.file_name().unwrap().to_string_lossy()));
    pool.commit(staged).unwrap();
    for (sha, bytes) in shas.iter().zip(&blobs) {
        assert_eq!(&fs::read(pool.path_of(sha)).unwrap(), bytes);
        assert_eq!(pool.verify(sha).unwrap(), BlobState::Ok);
        let bucket = pool.path_of(sha).parent().unwrap().to_path_buf();
        let names: Vec<String> = fs::read_dir(bucket)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| is_temp_name(n)), "{names:?}");
    }
    // The journal named each bucket once, and goes when discarded.
    let journals: Vec<PathBuf> = fs::read_dir(pool.root().join(TMP_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    let noted: Vec<String> = fs::read_to_string(&journals[0])
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let buckets: HashSet<String> = shas
        .iter()
        .map(|s| format!("{}/{}", &s[..2], &s[2..4]))
        .collect();
    assert_eq!(noted.len(), buckets.len());
    assert_eq!(noted.into_iter().collect::<HashSet<_>>(), buckets);
    journal.discard();
    assert_eq!(fs::read_dir(pool.root().join(TMP_DIR)).unwrap().count(), 0);
}

#[test]
fn a_failed_background_write_fails_finish_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    let stager = pool.stager().unwrap();
    let sha = hex::encode(Sha256::digest(b"lost"));
    // The bucket cannot be made: a file stands where its directory would be.
    let bucket = pool.path_of(&sha).parent().unwrap().to_path_buf();
    fs::create_dir_all(bucket.parent().unwrap()).unwrap();
    fs::write(&bucket, b"in the way").unwrap();
    let staged = stager
        .stage_hashed(&pool, b"lost".to_vec(), sha.clone())
        .unwrap();
    let path = staged.path().unwrap().to_path_buf();
    let err = stager.finish().unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    drop(staged);
    assert!(!pool.contains(&sha));
}

#[test]
fn buckets_made_ahead_receive_their_blobs_and_a_damaged_copy_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    let blobs: Vec<Vec<u8>> = (0..20).map(|i| format!("ahead {i}").into_bytes()).collect();
    let shas: Vec<String> = blobs
        .iter()
        .map(|b| hex::encode(Sha256::digest(b)))
        .collect();
    let maker = pool.bucket_maker();
    for sha in &shas {
        maker.add(sha);
    }
    maker.add("../../outside");
    drop(maker);
    let made = |sha: &str| pool.path_of(sha).parent().unwrap().is_dir();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !shas.iter().all(|s| made(s)) {
        assert!(std::time::Instant::now() < deadline, "buckets never made");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!dir.path().join("outside").exists());
    // A truncated copy already sits under one of the names.
    fs::write(pool.path_of(&shas[3]), b"ahe").unwrap();
    let staged: Vec<Staged> = blobs.iter().map(|b| pool.stage_bytes(b).unwrap()).collect();
    pool.commit(staged).unwrap();
    for sha in &shas {
        assert_eq!(pool.verify(sha).unwrap(), BlobState::Ok, "{sha}");
    }
    assert_eq!(fs::read_dir(pool.root().join(TMP_DIR)).unwrap().count(), 0);
}

/// The id of a process that has just ended.
pub(crate) fn ended_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id()
}

#[test]
fn temp_files_are_stale_once_their_writer_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let long_ago = SystemTime::now() - STALE_TMP - Duration::from_secs(60);
    let make = |name: &str, old: bool| {
        let path = dir.path().join(name);
        let f = File::create(&path).unwrap();
        if old {
            f.set_modified(long_ago).unwrap();
        }
        path
    };
    let (me, gone) = (std::process::id(), ended_pid());
    let sha = "ab".repeat(32);
    assert_eq!(writer_pid(&format!(".{sha}.{me}-7.tmp")), Some(me));
    assert_eq!(writer_pid(&format!("{me}-7-123.tmp")), Some(me));
    assert!(is_stale_temp(&make(&format!(".{sha}.{gone}-1.tmp"), true)));
    assert!(is_stale_temp(&make(&format!("{gone}-1-5.tmp"), true)));
    assert!(
        !is_stale_temp(&make(&format!(".{sha}.{me}-1.tmp"), true)),
        "writer alive"
    );
    assert!(
        !is_stale_temp(&make(&format!("{me}-2-5.tmp"), true)),
        "writer alive"
    );
    // A writer that ended leaves nothing anyone finishes: recent files go too.
    assert!(is_stale_temp(&make(&format!(".{sha}.{gone}-2.tmp"), false)));
    assert!(is_stale_temp(&make(&format!("{gone}-3-5.tmp"), false)));
    assert!(
        !is_stale_temp(&make(&format!("{me}-4-5.tmp"), false)),
        "writer alive"
    );
    assert!(
        is_stale_temp(&make("partial-m-sha256-abc", true)),
        "names no writer"
    );
    assert!(!is_stale_temp(&make("partial-m-sha256-def", false)));
}

#[test]
fn dropped_stage_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    let s = pool.stage_bytes(b"abandoned").unwrap();
    let sha = s.sha256.clone();
    drop(s);
    assert!(!pool.contains(&sha));
    assert_eq!(fs::read_dir(pool.root().join(TMP_DIR)).unwrap().count(), 0);
}

#[test]
fn verify_detects_corruption_and_absence() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    let s = pool.stage_bytes(b"payload").unwrap();
    let sha = s.sha256.clone();
    pool.commit(vec![s]).unwrap();
    fs::write(pool.path_of(&sha), b"tampered").unwrap();
    assert!(matches!(
        pool.verify(&sha).unwrap(),
        BlobState::Corrupt { .. }
    ));
    fs::remove_file(pool.path_of(&sha)).unwrap();
    assert_eq!(pool.verify(&sha).unwrap(), BlobState::Missing);
}

#[test]
fn unknown_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pool");
    Pool::open(&root).unwrap();
    fs::write(root.join(LAYOUT_FILE), "cairn-pool 99\n").unwrap();
    let err = Pool::open(&root).unwrap_err().to_string();
    assert!(err.contains("layout version"), "{err}");
}
