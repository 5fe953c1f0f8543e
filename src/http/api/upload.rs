//! `PUT /api/v1/repos/{repo}/packages/{file}.rpm`: a package uploaded into a local
//! repository, streamed (the worker hands the body on chunk by chunk, the control
//! runtime writes it to a temporary file in the pool as it comes, hashing it), then
//! imported by the same [`App::import`] as `cairn import`: its payload digests checked,
//! its signature checked against the repository's keys, the repository and its views
//! republished. A sha256 the client states (`X-Checksum-Sha256: HEX` or `Digest:
//! sha-256=BASE64`) must match the body, or nothing is kept. The token is checked before
//! any of the body is read.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, StatusCode};
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::auth::{self, Limiter};
use super::{errors, Api, ApiRequest, ApiResponse};
use crate::app::context::App;
use crate::app::tokens::Scope;

/// Largest package accepted.
pub const MAX_UPLOAD: u64 = 8 * 1024 * 1024 * 1024;

/// Is `path` (under `/api/v1`) an upload's?
pub fn is_upload(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segs.as_slice(), ["repos", _, "packages", _])
}

/// The sha256 the request states for its body, as lower-case hex (`Some("")` when a
/// header is there but says nothing readable).
pub fn stated_checksum(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("x-checksum-sha256") {
        let hex = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
        return Some(if crate::store::pool::is_sha256(&hex) {
            hex
        } else {
            String::new()
        });
    }
    let digest = headers.get("digest")?.to_str().unwrap_or("");
    let value = digest.split(',').find_map(|d| {
        let (alg, v) = d.trim().split_once('=')?;
        alg.eq_ignore_ascii_case("sha-256").then_some(v.trim())
    })?;
    use base64::Engine;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .filter(|b| b.len() == 32)
            .map(hex::encode)
            .unwrap_or_default(),
    )
}

/// On a worker: hands `meta` to the control runtime and pumps `body` after it, until
/// it ends or the control runtime stops reading (it refused the upload).
pub async fn forward(api: &Api, meta: ApiRequest, mut body: Incoming) -> ApiResponse {
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let answer = match api.send_upload(meta, rx) {
        Ok(answer) => answer,
        Err(busy) => return busy,
    };
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if tx.send(Ok(data)).await.is_err() {
                        break;
                    }
                }
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(e.to_string())).await;
                break;
            }
        }
    }
    drop(tx);
    answer.await.unwrap_or_else(|_| {
        ApiResponse::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the upload ended abnormally (logged)",
        )
    })
}

/// What an upload did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    pub repo: String,
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// The NEVRA placed in the repository, unless it held these bytes already.
    pub added: Vec<String>,
    /// The file replaced a package of the same name-version-release-arch.
    pub replaced: bool,
    /// The repository held exactly these bytes already.
    pub unchanged: bool,
}

fn invalid(message: &str) -> ApiResponse {
    ApiResponse::error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}

/// On the control runtime: authenticates, receives the body into the pool's temporary
/// space, checks it and imports it.
pub async fn receive(
    app: &App,
    limiter: &Limiter,
    req: ApiRequest,
    mut chunks: mpsc::Receiver<Result<Bytes, String>>,
) -> ApiResponse {
    let who = match auth::authenticate(app, limiter, req.peer, req.authorization.as_deref()).await {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let ["repos", repo, "packages", file] = segs.as_slice() else {
        return ApiResponse::error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    };
    let (repo, file) = (repo.to_string(), file.to_string());
    if !who.may(Scope::Write, Some(&repo)) {
        return ApiResponse::error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("token {:?} may not write to {repo:?}", who.name),
        );
    }
    match app.config.repo(&repo) {
        None => {
            return errors::answer(&crate::app::context::AppError::UndeclaredRepo(repo));
        }
        Some(r) if r.is_mirrored() => {
            return errors::answer(&crate::app::context::AppError::NotLocal(repo));
        }
        Some(_) => {}
    }
    if !file.ends_with(".rpm") || file.starts_with('.') || file.contains('\\') {
        return invalid(&format!(
            "{file:?}: upload a package under its file name (NAME.rpm)"
        ));
    }
    if req.checksum.as_deref() == Some("") {
        return ApiResponse::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the stated checksum is unreadable: send X-Checksum-Sha256: <64 hex digits> or Digest: sha-256=<base64>",
        );
    }
    // Received into the pool's temporary space, named after this process, so a
    // crash leaves nothing the next start does not remove.
    let tmp = app.pool.new_tmp_path();
    let received = async {
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| format!("cannot store the upload: {e}"))?;
        let mut hash = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk.map_err(|e| format!("the upload was cut off: {e}"))?;
            size += chunk.len() as u64;
            if size > MAX_UPLOAD {
                return Err(format!("larger than {MAX_UPLOAD} bytes"));
            }
            hash.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot store the upload: {e}"))?;
        }
        out.sync_all()
            .await
            .map_err(|e| format!("cannot store the upload: {e}"))?;
        Ok::<_, String>((hex::encode(hash.finalize()), size))
    };
    let outcome = received.await;
    // Stop the worker pumping whatever is left.
    chunks.close();
    let answer = match outcome {
        Err(e) if e.starts_with("larger than") => ApiResponse::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("{file}: {e}"),
        ),
        Err(e) => {
            tracing::warn!("upload of {file} into {repo}: {e}");
            ApiResponse::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("{file}: {e}"),
            )
        }
        Ok((sha256, _)) if req.checksum.as_deref().is_some_and(|c| c != sha256) => {
            invalid(&format!(
                "{file}: the body's sha256 is {sha256}, not the {} stated: nothing was kept",
                req.checksum.as_deref().unwrap_or("")
            ))
        }
        Ok((sha256, size)) => import(app, &who, &repo, &file, &tmp, sha256, size).await,
    };
    let _ = tokio::fs::remove_file(&tmp).await;
    answer
}

async fn import(
    app: &App,
    who: &crate::app::tokens::Principal,
    repo: &str,
    file: &str,
    tmp: &std::path::Path,
    sha256: String,
    size: u64,
) -> ApiResponse {
    let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
    let report = match app
        .import(&who.actor(), repo, &[tmp.to_path_buf()], None, progress)
        .await
    {
        Ok(report) => report,
        Err(e) => return errors::answer(&e),
    };
    if let Some(skipped) = report.skipped.first() {
        // The reason, without the temporary file's path.
        let reason = skipped.reason.replace(&tmp.display().to_string(), file);
        return invalid(&format!("{file}: not imported: {reason}"));
    }
    let uploaded = Uploaded {
        repo: repo.to_string(),
        file: file.to_string(),
        sha256,
        size,
        replaced: !report.replaced.is_empty(),
        unchanged: report.unchanged > 0,
        added: report.added,
    };
    ApiResponse::json(StatusCode::CREATED, &uploaded)
}
