//! The API's OpenAPI 3.1 document (`GET /api/v1/openapi.json`), made from the same
//! endpoint table the router checks requests against ([`ENDPOINTS`]) and from the Rust
//! types the answers are serialised from (their `ToSchema` derives): it cannot list an
//! endpoint the router does not answer, nor a shape the answers do not have.

use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, Parameter, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema, Type,
};

use crate::app::tokens::Scope;

/// What an endpoint answers with on success.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// One value of the named schema.
    One(&'static str),
    /// A list of values of the named schema.
    List(&'static str),
    /// A JSON object of no fixed shape.
    Object,
    /// Nothing (204).
    Nothing,
    /// Server-sent events.
    Events,
}

/// One endpoint: method, path (under `/api/v1`, `{name}` for a path parameter), the
/// scope its token needs (`None`: public), and what it takes and answers.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Option<Scope>,
    pub summary: &'static str,
    /// Query parameters: name, type (`string`, `boolean`, `integer`, or
    /// `integer:MIN[:MAX]`), description.
    pub query: &'static [(&'static str, &'static str, &'static str)],
    /// The request body's schema, if it takes one (always optional).
    pub body: Option<&'static str>,
    pub status: u16,
    pub answer: Answer,
}

const fn e(
    method: &'static str,
    path: &'static str,
    scope: Option<Scope>,
    summary: &'static str,
    status: u16,
    answer: Answer,
) -> Endpoint {
    Endpoint {
        method,
        path,
        scope,
        summary,
        query: &[],
        body: None,
        status,
        answer,
    }
}

const R: Option<Scope> = Some(Scope::Read);
const W: Option<Scope> = Some(Scope::Write);
const A: Option<Scope> = Some(Scope::Admin);

const PACKAGE_QUERY: &[(&str, &str, &str)] = &[
    ("name", "string", "only packages whose name contains this"),
    ("unsigned", "boolean", "only unsigned packages"),
    ("page", "integer:1", "the page, from 1"),
    (
        "per_page",
        "integer:1:1000",
        "packages per page, 1 to 1000 (default 100)",
    ),
];
const DIFF_QUERY: &[(&str, &str, &str)] = &[
    ("from", "string", "a tree: latest, a snapshot or an alias"),
    ("to", "string", "a tree: latest, a snapshot or an alias"),
];
const AUDIT_QUERY: &[(&str, &str, &str)] = &[
    (
        "since",
        "string",
        "only changes within this long: 90s, 30m, 12h, 3d",
    ),
    (
        "actor",
        "string",
        "only changes by this actor (cli:root, token:ci)",
    ),
    (
        "operation",
        "string",
        "only this operation (sync, alias.publish)",
    ),
    (
        "before",
        "integer",
        "only rows older than this id (the next page)",
    ),
    ("limit", "integer:1:1000", "rows, 1 to 1000 (default 100)"),
];
const LIMIT_QUERY: &[(&str, &str, &str)] = &[("limit", "integer:1:1000", "rows, 1 to 1000")];
const DELIVERY_QUERY: &[(&str, &str, &str)] = &[
    ("state", "string", "pending, delivered or failed"),
    ("limit", "integer:1:1000", "rows, 1 to 1000"),
];

/// Every endpoint the API answers.
pub const ENDPOINTS: &[Endpoint] = &[
    e(
        "GET",
        "/openapi.json",
        None,
        "This document",
        200,
        Answer::Object,
    ),
    e(
        "GET",
        "/repos",
        R,
        "Repositories",
        200,
        Answer::List("RepoSummary"),
    ),
    e(
        "GET",
        "/repos/{repo}",
        R,
        "A repository",
        200,
        Answer::One("RepoDetails"),
    ),
    e(
        "GET",
        "/views",
        R,
        "Views",
        200,
        Answer::List("ViewSummary"),
    ),
    e(
        "GET",
        "/views/{view}",
        R,
        "A view",
        200,
        Answer::One("ViewDetails"),
    ),
    e(
        "GET",
        "/repos/{repo}/snapshots",
        R,
        "A repository's snapshots",
        200,
        Answer::List("SnapshotRow"),
    ),
    e(
        "GET",
        "/views/{view}/snapshots",
        R,
        "A view's snapshots",
        200,
        Answer::List("ViewSnapshotRow"),
    ),
    Endpoint {
        body: Some("NewSnapshot"),
        ..e(
            "POST",
            "/repos/{repo}/snapshots",
            W,
            "Snapshot a repository",
            201,
            Answer::One("SnapshotRow"),
        )
    },
    Endpoint {
        body: Some("NewSnapshot"),
        ..e(
            "POST",
            "/views/{view}/snapshots",
            W,
            "Snapshot a view and its members",
            201,
            Answer::One("ViewSnapshotRow"),
        )
    },
    e(
        "DELETE",
        "/repos/{repo}/snapshots/{snapshot}",
        W,
        "Delete a snapshot",
        204,
        Answer::Nothing,
    ),
    e(
        "DELETE",
        "/views/{view}/snapshots/{snapshot}",
        W,
        "Delete a view snapshot",
        204,
        Answer::Nothing,
    ),
    Endpoint {
        body: Some("AliasTarget"),
        ..e(
            "PUT",
            "/repos/{repo}/aliases/{alias}",
            W,
            "Point an alias at a snapshot",
            200,
            Answer::One("AliasSet"),
        )
    },
    Endpoint {
        body: Some("AliasTarget"),
        ..e(
            "PUT",
            "/views/{view}/aliases/{alias}",
            W,
            "Point a view's alias at a snapshot",
            200,
            Answer::One("AliasSet"),
        )
    },
    e(
        "DELETE",
        "/repos/{repo}/aliases/{alias}",
        W,
        "Remove an alias",
        204,
        Answer::Nothing,
    ),
    e(
        "DELETE",
        "/views/{view}/aliases/{alias}",
        W,
        "Remove a view's alias",
        204,
        Answer::Nothing,
    ),
    Endpoint {
        query: DIFF_QUERY,
        ..e(
            "GET",
            "/repos/{repo}/diff",
            R,
            "Compare two trees",
            200,
            Answer::One("Diff"),
        )
    },
    Endpoint {
        query: DIFF_QUERY,
        ..e(
            "GET",
            "/views/{view}/diff",
            R,
            "Compare two trees of a view",
            200,
            Answer::One("Diff"),
        )
    },
    Endpoint {
        query: PACKAGE_QUERY,
        ..e(
            "GET",
            "/repos/{repo}/trees/{tree}/packages",
            R,
            "A tree's packages",
            200,
            Answer::One("TreePackages"),
        )
    },
    Endpoint {
        query: PACKAGE_QUERY,
        ..e(
            "GET",
            "/views/{view}/trees/{tree}/packages",
            R,
            "A view tree's packages",
            200,
            Answer::One("TreePackages"),
        )
    },
    e(
        "GET",
        "/repos/{repo}/trees/{tree}/advisories",
        R,
        "The advisories a tree publishes (its updateinfo)",
        200,
        Answer::List("Advisory"),
    ),
    e(
        "GET",
        "/views/{view}/trees/{tree}/advisories",
        R,
        "The advisories a view tree publishes",
        200,
        Answer::List("Advisory"),
    ),
    e(
        "GET",
        "/packages/{sha256}",
        R,
        "A package by its sha256",
        200,
        Answer::One("PackageDetails"),
    ),
    Endpoint {
        body: Some("binary"),
        ..e(
            "PUT",
            "/repos/{repo}/packages/{file}",
            W,
            "Upload a package into a local repository (checked as cairn import checks it; \
             X-Checksum-Sha256 or Digest: sha-256= checked against the body when sent)",
            201,
            Answer::One("Uploaded"),
        )
    },
    e(
        "POST",
        "/repos/{repo}/sync",
        W,
        "Sync a repository (a job)",
        202,
        Answer::One("JobInfo"),
    ),
    e(
        "POST",
        "/sync",
        W,
        "Sync every mirrored repository (one job each)",
        202,
        Answer::List("JobInfo"),
    ),
    Endpoint {
        body: Some("FetchRequest"),
        ..e(
            "POST",
            "/repos/{repo}/fetch",
            W,
            "Download what a tree of an on_demand or streamed repository lacks (a job)",
            202,
            Answer::One("JobInfo"),
        )
    },
    Endpoint {
        body: Some("GcRequest"),
        ..e(
            "POST",
            "/gc",
            A,
            "Collect garbage (a job)",
            202,
            Answer::One("JobInfo"),
        )
    },
    e(
        "POST",
        "/verify",
        A,
        "Verify the pool (a job)",
        202,
        Answer::One("JobInfo"),
    ),
    Endpoint {
        query: LIMIT_QUERY,
        ..e(
            "GET",
            "/jobs",
            R,
            "Jobs, newest first",
            200,
            Answer::List("JobInfo"),
        )
    },
    e(
        "GET",
        "/jobs/{job}",
        R,
        "A job",
        200,
        Answer::One("JobInfo"),
    ),
    e(
        "GET",
        "/jobs/{job}/events",
        R,
        "A job's progress as server-sent events",
        200,
        Answer::Events,
    ),
    e(
        "POST",
        "/jobs/{job}/cancel",
        W,
        "Cancel a running sync",
        202,
        Answer::One("JobInfo"),
    ),
    Endpoint {
        query: AUDIT_QUERY,
        ..e(
            "GET",
            "/audit",
            A,
            "The audit log, newest first",
            200,
            Answer::List("AuditEntry"),
        )
    },
    e(
        "GET",
        "/tokens",
        A,
        "Tokens (never a secret)",
        200,
        Answer::List("TokenInfo"),
    ),
    Endpoint {
        query: DELIVERY_QUERY,
        ..e(
            "GET",
            "/webhooks/deliveries",
            A,
            "Webhook deliveries, newest first",
            200,
            Answer::List("DeliveryRow"),
        )
    },
    e(
        "POST",
        "/config/reload",
        A,
        "Re-read the configuration",
        200,
        Answer::Object,
    ),
];

/// Does `path` (split in segments) match the endpoint path template `template`?
fn matches(template: &str, segs: &[&str]) -> bool {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    parts.len() == segs.len()
        && parts
            .iter()
            .zip(segs)
            .all(|(p, s)| p.starts_with('{') || p == s)
}

/// The endpoints whose path is `segs`.
pub fn endpoints_at(segs: &[&str]) -> Vec<&'static Endpoint> {
    ENDPOINTS.iter().filter(|e| matches(e.path, segs)).collect()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn method(m: &str) -> HttpMethod {
    match m {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn operation(e: &Endpoint) -> Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(e.summary))
        .operation_id(Some(format!(
            "{}{}",
            e.method.to_lowercase(),
            e.path.replace(['/', '{', '}', '.'], "_")
        )))
        .description(Some(match e.scope {
            Some(s) => format!("Needs a token of {} scope.", s.as_str()),
            None => "Public.".to_string(),
        }));
    for part in e.path.split('/').filter(|p| p.starts_with('{')) {
        let name = part.trim_matches(|c| c == '{' || c == '}');
        op = op.parameter(
            Parameter::builder()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    for (name, kind, description) in e.query {
        let mut bounds = kind.split(':');
        let t = match bounds.next() {
            Some("integer") => Type::Integer,
            Some("boolean") => Type::Boolean,
            _ => Type::String,
        };
        let mut schema = ObjectBuilder::new().schema_type(t);
        if let Some(min) = bounds.next().and_then(|m| m.parse::<f64>().ok()) {
            schema = schema.minimum(Some(min));
        }
        if let Some(max) = bounds.next().and_then(|m| m.parse::<f64>().ok()) {
            schema = schema.maximum(Some(max));
        }
        op = op.parameter(
            Parameter::builder()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(schema)),
        );
    }
    match e.body {
        // A package's bytes.
        Some("binary") => {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/octet-stream",
                        json(RefOr::T(Schema::Object(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .content_media_type("application/x-rpm")
                                .build(),
                        ))),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        Some(body) => {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(schema_ref(body)))
                    .required(Some(Required::False))
                    .build(),
            ));
        }
        None => {}
    }
    let ok = match e.answer {
        Answer::One(name) => ResponseBuilder::new()
            .description("the answer")
            .content("application/json", json(schema_ref(name))),
        Answer::List(name) => ResponseBuilder::new().description("the answer").content(
            "application/json",
            json(RefOr::T(Schema::Array(
                utoipa::openapi::schema::Array::new(schema_ref(name)),
            ))),
        ),
        Answer::Object => ResponseBuilder::new().description("the answer").content(
            "application/json",
            json(RefOr::T(Schema::Object(
                ObjectBuilder::new().schema_type(Type::Object).build(),
            ))),
        ),
        Answer::Nothing => ResponseBuilder::new().description("done"),
        // Each event: `event: progress|done` and `data:` the job (JSON text).
        Answer::Events => ResponseBuilder::new()
            .description("progress events")
            .content(
                "text/event-stream",
                json(RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .property("event", ObjectBuilder::new().schema_type(Type::String))
                        .property("data", ObjectBuilder::new().schema_type(Type::String))
                        .build(),
                ))),
            ),
    };
    op = op.response(e.status.to_string(), ok.build());
    let errors: &[(u16, &str)] = &[
        (400, "a bad query parameter"),
        (401, "no valid token"),
        (403, "the token may not"),
        (404, "no such thing"),
        (405, "another method is needed"),
        (409, "a conflict (exists, in use, not running)"),
        (413, "the body is too large"),
        (422, "an invalid name or body"),
        (429, "too many failed authentications"),
        (500, "a failure on the server"),
        (503, "busy, or the storage is full"),
    ];
    for (status, description) in errors {
        op = op.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(*description)
                .content("application/json", json(schema_ref("ErrorBody")))
                .build(),
        );
    }
    if e.scope.is_some() {
        op = op
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .security(SecurityRequirement::new("basic", Vec::<String>::new()));
    }
    op.build()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Cairn API",
        description = "Automate a Cairn RPM mirror: repositories, views, snapshots, aliases, jobs, the audit log."
    ),
    components(schemas(
        crate::app::reads::RepoSummary,
        crate::app::reads::RepoSettings,
        crate::app::reads::RepoDetails,
        crate::app::reads::ViewSummary,
        crate::app::reads::ViewDetails,
        crate::app::reads::TreePackages,
        crate::app::reads::PackageInfo,
        crate::app::reads::SignatureInfo,
        crate::app::reads::PackageDetails,
        crate::app::reads::DependencyInfo,
        crate::app::reads::FileInfo,
        crate::app::reads::ChangelogInfo,
        crate::store::catalog::RepoRow,
        crate::store::catalog::SnapshotRow,
        crate::store::catalog::AliasRow,
        crate::store::catalog::SyncRun,
        crate::store::catalog::ViewSnapshotRow,
        crate::store::catalog::DeliveryRow,
        crate::formats::diff::Diff,
        crate::formats::repodata::updateinfo::Advisory,
        crate::formats::diff::Nevra,
        crate::formats::diff::Change,
        crate::app::audit::AuditEntry,
        crate::app::tokens::TokenInfo,
        crate::app::tokens::Scope,
        crate::app::jobs::JobInfo,
        crate::app::jobs::JobProgress,
        super::routes::NewSnapshot,
        super::routes::AliasTarget,
        super::routes::GcRequest,
        super::routes::FetchRequest,
        super::routes::AliasSet,
        super::upload::Uploaded,
        super::ErrorBody,
        super::ErrorDetail,
    ))
)]
struct Components;

/// The document.
pub fn document() -> OpenApi {
    let mut doc = <Components as utoipa::OpenApi>::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    let mut paths = utoipa::openapi::Paths::new();
    for e in ENDPOINTS {
        paths.add_path_operation(e.path, vec![method(e.method)], operation(e));
    }
    doc.paths = paths;
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_named_is_a_component_and_paths_are_unique() {
        let doc = document();
        let components = doc.components.as_ref().unwrap();
        for e in ENDPOINTS {
            let names = [
                match e.answer {
                    Answer::One(n) | Answer::List(n) => Some(n),
                    _ => None,
                },
                e.body,
            ];
            for name in names.into_iter().flatten().filter(|n| *n != "binary") {
                assert!(
                    components.schemas.contains_key(name),
                    "{name} of {}",
                    e.path
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for e in ENDPOINTS {
            assert!(
                seen.insert((e.method, e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
        }
        let text = serde_json::to_string(&doc).unwrap();
        assert!(text.contains("\"openapi\":\"3.1.0\""), "{}", &text[..100]);
        let paths = serde_json::to_value(&doc.paths).unwrap();
        for (path, method) in [
            ("/repos/{repo}/packages/{file}", "put"),
            ("/repos/{repo}/trees/{tree}/advisories", "get"),
            ("/config/reload", "post"),
        ] {
            assert!(
                paths["paths"][path][method].is_object() || paths[path][method].is_object(),
                "{path}"
            );
        }
    }
}
