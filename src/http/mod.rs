//! `cairn serve`: hyper 1 on one io_uring runtime per core.
//!
//! Each worker thread runs its own current-thread runtime (`tokio_uring::start`, or a
//! plain tokio runtime with a `LocalSet` where io_uring is refused) and its own
//! listening socket bound with `SO_REUSEPORT`, so the kernel spreads connections over
//! the workers without any shared accept lock. The published index is an immutable map
//! behind an `ArcSwap`; a control thread reloads it when the data directory's
//! generation marker changes (a `cairn` command in another process published) and
//! swaps it in. SIGTERM or SIGINT stops accepting, lets in-flight requests finish
//! (up to [`DRAIN_TIMEOUT`]) and exits. A worker that has served requests back to back
//! for half a millisecond yields its CPU ([`fair`]), so under saturation no runnable
//! thread (another worker, network processing) waits a whole scheduler tick.

mod access;
pub mod api;
mod audit_page;
pub mod blob;
mod budget;
mod cache;
pub mod fair;
mod files;
mod freshness;
mod grants;
pub mod handler;
pub mod index;
mod keys;
mod listen;
mod listing;
mod package_page;
pub mod pages;
mod respond;
mod router;
mod settings;
pub mod stats;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

use crate::store::catalog::Catalog;
use crate::store::datadir::DataDir;
use crate::store::pool::Pool;
use blob::ReadMode;
pub(crate) use freshness::Freshness;
use freshness::{read_generation, watch_generation};
use handler::Shared;
use index::Index;
use listen::{bind, check_free};
pub use settings::Settings;

/// How long SIGTERM waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-worker memory for small blob contents (repomd.xml, small packages).
pub const SMALL_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Connection limits and timeouts (the `[server]` keys of the same names).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most, all workers together; more get 503 and are closed.
    pub max_connections: usize,
    /// A request's whole head must arrive within this; also the keep-alive idle wait.
    pub header_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head accepted (hyper's read buffer; at least 8 KiB).
    pub max_header_bytes: usize,
    /// The access log's format (see [`access`]).
    pub access_log: crate::app::config::AccessLog,
}

impl Limits {
    pub fn from_config(c: &crate::app::config::ServerConfig) -> Limits {
        Limits {
            max_connections: c.max_connections.max(1),
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
            max_header_bytes: c.max_header_bytes.max(8192),
            access_log: c.access_log,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::from_config(&crate::app::config::ServerConfig::default())
    }
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: the address is already in use (by another cairn serve or cairn demo, or another server): stop it, or choose another `listen` address")]
    AddressInUse { addr: SocketAddr },
    #[error("{path} is already served by another cairn serve ({holder}): stop it first, or give this one another data_dir")]
    DataDirServed {
        path: std::path::PathBuf,
        holder: String,
    },
    #[error("cannot lock the data dir for serving: {0}")]
    ServeLock(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] crate::store::catalog::CatalogError),
    #[error("watching {path}: {source}")]
    Watch {
        path: std::path::PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("worker thread: {0}")]
    Worker(String),
}

/// A running server's handle (for the CLI and tests).
pub struct Server {
    pub addr: SocketAddr,
    pub index: Arc<ArcSwap<Index>>,
    shutdown: watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    access_writer: Option<std::thread::JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
    stats: tokio::task::JoinHandle<()>,
    pages: tokio::task::JoinHandle<()>,
    api: Option<tokio::task::JoinHandle<()>>,
    /// What serving takes from the configuration.
    settings: Arc<ArcSwap<Settings>>,
    /// The App the API answers with, when started for an installation.
    app: Option<Arc<ArcSwap<crate::app::context::App>>>,
    /// Reload requests made through the API (taken by whoever runs the server).
    reloads: Option<tokio::sync::mpsc::Receiver<api::ReloadRequest>>,
    /// The data dir's server lock, when started for an installation.
    _serve_lock: Option<crate::store::datadir::ServeLock>,
}

impl Server {
    /// Binds, loads the index and starts the workers. Must be called inside a tokio
    /// runtime (the control runtime, which also reloads the index).
    /// Starts serving what `app` publishes on `listen`, with its config's workers,
    /// alias grace period and limits.
    pub async fn for_app(
        app: &crate::app::context::App,
        listen: SocketAddr,
    ) -> Result<Server, ServeError> {
        let server = &app.config.server;
        // One server per data dir: a second one would answer from the same catalog
        // and pool under another address, or share this one's port.
        let mut lock = match app
            .datadir
            .try_lock_serve()
            .map_err(ServeError::ServeLock)?
        {
            Ok(lock) => lock,
            Err(holder) => {
                return Err(ServeError::DataDirServed {
                    path: app.datadir.root().to_path_buf(),
                    holder: if holder.is_empty() {
                        "it is starting".into()
                    } else {
                        holder
                    },
                })
            }
        };
        // The API answers with the current configuration's App (see `reconfigure`);
        // reload requests reach whoever runs the server.
        let app_slot = Arc::new(ArcSwap::from_pointee(app.clone()));
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        // Jobs a previous server left running ended with it.
        match app.interrupt_jobs().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "{n} jobs were running when the server last stopped: marked interrupted"
            ),
            Err(e) => tracing::warn!("marking interrupted jobs: {e}"),
        }
        let mut started = Server::start(
            app.catalog.clone(),
            app.pool.clone(),
            app.datadir.clone(),
            listen,
            server.workers,
            server.alias_grace,
            Limits::from_config(server),
            Settings::of(app),
            Some(api::Api::start(app_slot.clone(), reload_tx)),
        )
        .await?;
        started.app = Some(app_slot);
        started.reloads = Some(reload_rx);
        lock.describe(&format!(
            "pid {}, listening on http://{}/",
            std::process::id(),
            started.addr
        ))
        .map_err(ServeError::ServeLock)?;
        started._serve_lock = Some(lock);
        Ok(started)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        catalog: Catalog,
        pool: Pool,
        datadir: DataDir,
        listen: SocketAddr,
        workers: usize,
        alias_grace: Duration,
        limits: Limits,
        settings: Settings,
        api: Option<(api::Api, tokio::task::JoinHandle<()>)>,
    ) -> Result<Server, ServeError> {
        let settings = Arc::new(ArcSwap::from_pointee(settings));
        let (api, api_task) = match api {
            Some((api, task)) => (Some(api), Some(task)),
            None => (None, None),
        };
        // Register every metric now, not on the first request.
        let _ = crate::app::metrics::metrics();
        let marker = datadir.generation_path();
        let generation = read_generation(&marker);
        let mut first_index = Index::load(&catalog, alias_grace).await?;
        first_index.generation = generation;
        let index = Arc::new(ArcSwap::from_pointee(first_index));
        let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (reloaded_tx, reloaded_rx) = watch::channel(0u64);
        let mode = if blob::uring_available() {
            ReadMode::Uring
        } else {
            tracing::warn!(
                "io_uring is not available here (kernel or seccomp refused it); serving with ordinary reads"
            );
            ReadMode::Blocking
        };
        let n = if workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            workers
        };
        check_free(listen)?;
        let first = bind(listen).map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => ServeError::AddressInUse { addr: listen },
            _ => ServeError::Bind {
                addr: listen,
                source,
            },
        })?;
        let addr = first.local_addr().map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
        let mut listeners = vec![first];
        for _ in 1..n {
            listeners.push(bind(addr).map_err(|source| ServeError::Bind { addr, source })?);
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (pages, pages_task) = pages::Pages::start(catalog.clone());
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (access, access_writer) = match access::AccessLogger::start(limits.access_log)
            .map_err(|e| ServeError::Worker(format!("access log writer: {e}")))?
        {
            Some((logger, writer)) => (Some(logger), Some(writer)),
            None => (None, None),
        };
        let mut handles = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let (index, pool, pages) = (index.clone(), pool.clone(), pages.clone());
            let fresh = Freshness {
                marker: marker.clone(),
                request: reload_tx.clone(),
                reloaded: reloaded_rx.clone(),
            };
            let open = open.clone();
            let rx = shutdown_rx.clone();
            let access = access.clone();
            let settings = settings.clone();
            let api = api.clone();
            let handle = std::thread::Builder::new()
                .name(format!("cairn-http-{i}"))
                .spawn(move || {
                    let shared = std::rc::Rc::new(Shared {
                        index,
                        pool,
                        mode,
                        small: std::cell::RefCell::new(cache::SmallCache::new(SMALL_CACHE_BYTES)),
                        pages,
                        stats: crate::app::metrics::metrics().worker(),
                        budget: Arc::new(tokio::sync::Semaphore::new(
                            budget::IN_FLIGHT_BYTES / 1024,
                        )),
                        busy: fair::BusyRun::default(),
                        fresh,
                        access: access.as_ref().map(access::AccessLogger::for_worker),
                        settings,
                        api,
                        grants: std::cell::RefCell::new(grants::Grants::default()),
                    });
                    run_worker(listener, shared, rx, mode, limits, open)
                })
                .map_err(|e| ServeError::Worker(e.to_string()))?;
            handles.push(handle);
        }
        // The first metrics round completes before the server announces itself.
        let mut refresher = stats::Refresher::default();
        refresher.refresh(&catalog, &pool).await;
        let stats = tokio::spawn(refresher.run(catalog.clone(), pool.clone()));
        let watcher = watch_generation(
            &datadir,
            catalog,
            index.clone(),
            alias_grace,
            (reload_tx, reload_rx),
            reloaded_tx,
        )?;
        tracing::info!(
            "serving {} trees on http://{addr}/ with {n} workers ({mode:?} reads)",
            index.load().tree_count()
        );
        Ok(Server {
            addr,
            index,
            shutdown,
            workers: handles,
            access_writer,
            _watcher: Some(watcher),
            stats,
            pages: pages_task,
            api: api_task,
            settings,
            app: None,
            reloads: None,
            _serve_lock: None,
        })
    }

    /// Stops accepting, drains in-flight requests and joins the workers.
    /// Serves with `app`'s configuration from now on: keys, guarded trees, and the App
    /// the API answers with. (What the index holds is reloaded as ever, when the
    /// generation marker changes.)
    pub fn reconfigure(&self, app: &crate::app::context::App) {
        self.settings.store(Arc::new(Settings::of(app)));
        if let Some(slot) = &self.app {
            slot.store(Arc::new(app.clone()));
        }
    }

    /// The reload requests made through the API, once.
    pub fn take_reload_requests(
        &mut self,
    ) -> Option<tokio::sync::mpsc::Receiver<api::ReloadRequest>> {
        self.reloads.take()
    }

    pub fn stop(self) {
        self.stats.abort();
        let _ = self.shutdown.send(true);
        for w in self.workers {
            let _ = w.join();
        }
        // The workers' loggers are gone with them: the writer drains and ends.
        if let Some(writer) = self.access_writer {
            let _ = writer.join();
        }
        self.pages.abort();
        if let Some(api) = &self.api {
            api.abort();
        }
    }
}

fn run_worker(
    listener: StdListener,
    shared: std::rc::Rc<Shared>,
    shutdown: watch::Receiver<bool>,
    mode: ReadMode,
    limits: Limits,
    open: Arc<std::sync::atomic::AtomicUsize>,
) {
    let fut = accept_loop(listener, shared, shutdown, limits, open);
    keep_large_buffers();
    match mode {
        ReadMode::Uring => tokio_uring::start(fut),
        ReadMode::Blocking => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start a worker runtime: {e}");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, fut);
        }
    }
}

/// Keeps file-sized buffers (up to 64 MiB) on the heap instead of a fresh mmap per
/// response: glibc otherwise maps and unmaps each, and every response pays the page
/// faults of its buffer again. Memory stays bounded by the in-flight budget.
fn keep_large_buffers() {
    // SAFETY: mallopt only sets allocator parameters; calling it at any time is allowed.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024 * 1024);
    }
}

/// The answer to a connection beyond `max_connections`.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 37\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
Too many connections; try again soon.\n";

async fn accept_loop(
    listener: StdListener,
    shared: std::rc::Rc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
    open: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot register the listener: {e}");
            return;
        }
    };
    let active = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let (drained_tx, mut drained_rx) = watch::channel(());
    if shared.access.is_some() {
        let flushing = std::rc::Rc::downgrade(&shared);
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(access::FLUSH_EVERY).await;
                match flushing.upgrade() {
                    Some(shared) => {
                        if let Some(log) = &shared.access {
                            log.flush();
                        }
                    }
                    None => break,
                }
            }
        });
    }
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of fds or similar: back off briefly instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    crate::app::metrics::metrics().rejected_connections.inc();
                    tokio::task::spawn_local(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut stream = stream;
                        // Lingering close: read what the client sends until it closes
                        // (or briefly), so its request arriving after our answer does
                        // not make the kernel reset the connection and drop the 503.
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            let _ = stream.write_all(BUSY).await;
                            let _ = stream.shutdown().await;
                            let mut sink = [0u8; 4096];
                            while let Ok(n) = stream.read(&mut sink).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        })
                        .await;
                    });
                    continue;
                }
                let shared = shared.clone();
                let mut stop = shutdown.clone();
                let active2 = active.clone();
                let drained = drained_tx.clone();
                let open = open.clone();
                active.set(active.get() + 1);
                crate::app::metrics::metrics().open_connections.inc();
                tokio::task::spawn_local(async move {
                    let last = std::rc::Rc::new(std::cell::Cell::new(tokio::time::Instant::now()));
                    let io = Tracked { inner: stream, last: last.clone() };
                    let svc = service_fn(move |req| handler::handle(shared.clone(), peer, req));
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .max_buf_size(limits.max_header_bytes)
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(io), svc);
                    tokio::pin!(conn);
                    let idle = async {
                        loop {
                            let deadline = last.get() + limits.idle_timeout;
                            tokio::time::sleep_until(deadline).await;
                            if last.get() + limits.idle_timeout <= tokio::time::Instant::now() {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        res = conn.as_mut() => {
                            if let Err(e) = res {
                                tracing::debug!("connection ended: {e}");
                            }
                        }
                        _ = idle => {
                            tracing::debug!("connection idle for {:?}: closed", limits.idle_timeout);
                        }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                    active2.set(active2.get() - 1);
                    open.fetch_sub(1, Ordering::AcqRel);
                    crate::app::metrics::metrics().open_connections.dec();
                    let _ = drained.send(());
                });
            }
        }
    }
    drop(listener);
    let deadline = tokio::time::sleep(DRAIN_TIMEOUT);
    tokio::pin!(deadline);
    while active.get() > 0 {
        tokio::select! {
            _ = &mut deadline => {
                tracing::warn!("{} connections still open after the drain timeout", active.get());
                break;
            }
            _ = drained_rx.changed() => {}
        }
    }
    // The lines of the last requests go out before the worker ends.
    if let Some(log) = &shared.access {
        log.flush();
    }
}

/// A client stream that records when a byte last moved either way (the idle timeout).
struct Tracked {
    inner: tokio::net::TcpStream,
    last: std::rc::Rc<std::cell::Cell<tokio::time::Instant>>,
}

impl Tracked {
    fn touch<T>(&self, r: &std::task::Poll<std::io::Result<T>>, moved: bool) {
        if moved && matches!(r, std::task::Poll::Ready(Ok(_))) {
            self.last.set(tokio::time::Instant::now());
        }
    }
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        self.touch(&r, moved);
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        let moved = matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0);
        self.touch(&r, moved);
        r
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        let moved = matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0);
        self.touch(&r, moved);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
