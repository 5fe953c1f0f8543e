//! Operation errors as API answers: the status and code a client branches on, and a
//! message meant for people. Client mistakes (unknown names, conflicts, invalid
//! values) are told as the command line tells them; anything else is logged in full and
//! answered 500 (or 503 when the cause is a full disk or an unreachable catalog)
//! without details, so no internal path or stack ever reaches a client.

use hyper::StatusCode;

use super::ApiResponse;
use crate::app::context::AppError;
use crate::app::publish::PublishError;
use crate::app::view::ViewError;
use crate::store::catalog::CatalogError;
use crate::store::pool::PoolError;

fn catalog(e: &CatalogError) -> Option<(StatusCode, &'static str)> {
    Some(match e {
        CatalogError::UnknownRepo(_)
        | CatalogError::UnknownSnapshot { .. }
        | CatalogError::UnknownAlias { .. } => (StatusCode::NOT_FOUND, "not_found"),
        CatalogError::SnapshotExists { .. }
        | CatalogError::AliasExists { .. }
        | CatalogError::AliasShadowsSnapshot { .. }
        | CatalogError::TokenExists(_) => (StatusCode::CONFLICT, "conflict"),
        CatalogError::SnapshotInUse { .. } => (StatusCode::CONFLICT, "in_use"),
        CatalogError::Full(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_full"),
        _ => return None,
    })
}

fn publish(e: &PublishError) -> Option<(StatusCode, &'static str)> {
    match e {
        PublishError::BadName(_) | PublishError::Reserved(_) => {
            Some((StatusCode::UNPROCESSABLE_ENTITY, "invalid"))
        }
        PublishError::Catalog(c) => catalog(c),
        PublishError::Pool(PoolError::NoSpace { .. }) => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "storage_full"))
        }
        _ => None,
    }
}

/// The status and code of `e`, when it is the client's to fix.
fn classify(e: &AppError) -> Option<(StatusCode, &'static str)> {
    match e {
        AppError::UndeclaredRepo(_) | AppError::UndeclaredView(_) | AppError::UnknownRepo(_) => {
            Some((StatusCode::NOT_FOUND, "not_found"))
        }
        AppError::UnknownToken(_) | AppError::UnknownJob(_) => {
            Some((StatusCode::NOT_FOUND, "not_found"))
        }
        AppError::NotLocal(_) | AppError::NoFeed(_) | AppError::JobNotRunning { .. } => {
            Some((StatusCode::CONFLICT, "conflict"))
        }
        AppError::BadAlias { .. } | AppError::BadTokenName(_) | AppError::TokenExpiry => {
            Some((StatusCode::UNPROCESSABLE_ENTITY, "invalid"))
        }
        AppError::Catalog(c) => catalog(c),
        AppError::Publish(p) => publish(p),
        AppError::View(ViewError::Catalog(c)) => catalog(c),
        AppError::View(ViewError::Publish(p)) => publish(p),
        AppError::Pool(PoolError::NoSpace { .. }) => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "storage_full"))
        }
        _ => None,
    }
}

/// The answer for a failed operation.
pub fn answer(e: &AppError) -> ApiResponse {
    match classify(e) {
        // The full text names where the disk is full: logged, not told.
        Some((status, code @ "storage_full")) => {
            tracing::error!("api: {e}");
            ApiResponse::error(
                status,
                code,
                "the server's storage is full: nothing was changed; try again once the operator has freed space",
            )
        }
        Some((status, code)) => ApiResponse::error(status, code, &e.to_string()),
        None => {
            tracing::error!("api: {e}");
            ApiResponse::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the operation failed on the server (the server's log has the details)",
            )
        }
    }
}
