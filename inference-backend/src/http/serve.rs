//! The connection loop: plain HTTP/1.1 or HTTPS (rustls, `--tls-cert`/`--tls-key`), with a
//! bound on open connections, a bound per client address, and a deadline for each request's
//! headers (the body's deadline is the handler's: `--body-timeout`).
//!
//! Without these, connections that never finish their headers (slowloris) or their body stay
//! open for ever and, once they hold every file descriptor, `/health` itself stops answering.
//! Here a connection has `--header-timeout` seconds for its TLS handshake and for each
//! request's headers (also the idle time allowed between keep-alive requests), at most
//! `--max-connections` are open at once (never more than the file-descriptor limit allows;
//! past it, new connections wait in the listen backlog until one closes), and at most
//! `--max-connections-per-address` of them come from one client address (an IPv6 client's
//! /64). At an address's bound, its connection that has waited longest for its request
//! (headers or body still coming, or idle between keep-alive requests) is closed to make room
//! for the new one; if all of them are working on requests, the new one is closed at once. At
//! the global bound, the connection anywhere that has waited longest (at least
//! `EVICTION_AGE`) makes room; if none has, the next connection waits in the listen backlog.
//! So no number of slow clients from one address takes the server from the others, and a
//! well-behaved client behind a flooding address (a shared NAT) mostly still gets in.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, Ipv6Addr},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::{Notify, Semaphore},
};
use tokio_rustls::{rustls, TlsAcceptor};

pub struct ServeOptions {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The address a connection is counted under: IPv4 as is, IPv6 by its /64 (one host usually
/// has a whole /64 to pick addresses from).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One open connection, as the accept loop sees it.
struct Tracked {
    key: IpAddr,
    accepted: Instant,
    /// True until its request has arrived whole, and again once its answer has ended.
    waiting: Arc<AtomicBool>,
    close: Arc<Notify>,
}

/// The open connections: by id, and how many per address.
#[derive(Default)]
struct Connections {
    open: HashMap<u64, Tracked>,
    per_address: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// An open connection's place, freed when dropped.
struct ConnectionSlot {
    connections: Arc<Mutex<Connections>>,
    id: u64,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut all = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gone) = all.open.remove(&self.id) {
            if let Some(count) = all.per_address.get_mut(&gone.key) {
                *count -= 1;
                if *count == 0 {
                    all.per_address.remove(&gone.key);
                }
            }
        }
    }
}

impl Connections {
    /// Closes the connection (of `key`'s address; or any, of at least `EVICTION_AGE`) that has
    /// waited longest for its request; whether there was one.
    fn evict_longest_waiting(&self, key: Option<IpAddr>) -> bool {
        let victim = self
            .open
            .values()
            .filter(|c| match key {
                // At an address's bound: its own, however young (the flood is its own).
                Some(key) => c.key == key,
                None => c.accepted.elapsed() >= EVICTION_AGE,
            })
            .filter(|c| c.waiting.load(Ordering::Relaxed))
            .min_by_key(|c| c.accepted);
        match victim {
            Some(victim) => {
                // Taken out of the waiting ones now, so the next eviction picks another.
                victim.waiting.store(false, Ordering::Relaxed);
                victim.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// At the global bound, connections younger than this are not closed to make room: a new
/// connection gets time to deliver its request before another can push it out.
const EVICTION_AGE: Duration = Duration::from_secs(1);

/// A connection let in: its place, its `waiting` flag and what closes it.
struct Admitted {
    slot: ConnectionSlot,
    waiting: Arc<AtomicBool>,
    close: Arc<Notify>,
}

/// Admits a connection from `ip` under its address's bound, closing that address's
/// longest-waiting connection when it is at the bound; `None` when all of them are working.
fn admit_connection(
    connections: &Arc<Mutex<Connections>>,
    ip: IpAddr,
    per_address_limit: usize,
) -> Option<Admitted> {
    let key = client_key(ip);
    let mut all = connections.lock().unwrap_or_else(|e| e.into_inner());
    let open = all.per_address.get(&key).copied().unwrap_or(0);
    if open >= per_address_limit && !all.evict_longest_waiting(Some(key)) {
        return None;
    }
    let id = all.next_id;
    all.next_id += 1;
    let waiting = Arc::new(AtomicBool::new(true));
    let close = Arc::new(Notify::new());
    all.open.insert(
        id,
        Tracked {
            key,
            accepted: Instant::now(),
            waiting: waiting.clone(),
            close: close.clone(),
        },
    );
    *all.per_address.entry(key).or_insert(0) += 1;
    Some(Admitted {
        slot: ConnectionSlot {
            connections: connections.clone(),
            id,
        },
        waiting,
        close,
    })
}

/// A connection's `waiting` flag, put in the extensions of each of its requests (the router
/// and its layers are built once, not per connection).
#[derive(Clone)]
struct ConnectionWaiting(Arc<AtomicBool>);

/// Keeps a connection's `waiting` flag: false once a request's body has arrived whole, true
/// again once its answer has ended (the connection is then idle until the next request).
async fn track_waiting(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(ConnectionWaiting(waiting)) = request.extensions().get::<ConnectionWaiting>().cloned()
    else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let body = if http_body::Body::is_end_stream(&body) {
        waiting.store(false, Ordering::Relaxed);
        body
    } else {
        axum::body::Body::new(ArrivalWatched {
            inner: body,
            waiting: waiting.clone(),
        })
    };
    let response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    // A handler that answered without reading the whole body (an error) is done with it too.
    waiting.store(false, Ordering::Relaxed);
    super::audit::hold_until_body_ends(response, IdleAgain(waiting))
}

/// Marks the connection idle (evictable) when its answer's body is dropped.
struct IdleAgain(Arc<AtomicBool>);

impl Drop for IdleAgain {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A request body that clears `waiting` when its last byte has arrived.
struct ArrivalWatched {
    inner: axum::body::Body,
    waiting: Arc<AtomicBool>,
}

impl http_body::Body for ArrivalWatched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.waiting.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A rustls server configuration from PEM files: the certificate chain (leaf first) and its
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `--max-connections`, kept below the soft limit on open files (minus room for the model's
/// files, logs and the engine).
pub fn connection_limit(requested: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur as usize
    } else {
        1024
    };
    requested.min(files.saturating_sub(64)).max(8)
}

/// `--max-connections-per-address`: by default a quarter of the connection bound, so that
/// one address never holds more than that; behind a reverse proxy every client shares the
/// proxy's address, and the flag must then be raised (or the proxy bound them itself).
pub fn per_address_limit(requested: Option<usize>, max_connections: usize) -> usize {
    requested
        .unwrap_or(max_connections / 4)
        .clamp(1, max_connections.max(1))
}

/// Serves `router` until `shutdown` resolves, then stops accepting and waits for the open
/// connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let router = router.layer(axum::middleware::from_fn(track_waiting));
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let connections = Arc::new(Mutex::new(Connections::default()));
    let graceful = GracefulShutdown::new();
    let acceptor = options.tls.map(TlsAcceptor::from);
    let header_timeout = options.header_timeout;
    tokio::pin!(shutdown);
    loop {
        // At the bound, the connection waiting longest for its request makes room; if every
        // one is working on a request, the next connection waits in the listen backlog.
        if slots.available_permits() == 0 {
            connections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .evict_longest_waiting(None);
        }
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, admitted) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match admit_connection(&connections, peer.ip(), options.max_connections_per_address) {
                    Some(admitted) => (stream, admitted),
                    None => {
                        // Every connection of this address is working: closed at once.
                        tracing::debug!("{} connections from one address, all busy; closing a new one", options.max_connections_per_address);
                        drop(stream);
                        continue;
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Admitted {
            slot,
            waiting,
            close,
        } = admitted;
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectionWaiting(waiting.clone()));
                request
            },
        ));
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let served = async move {
                match acceptor {
                    None => serve_connection(stream, service, header_timeout, watcher).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                serve_connection(tls, service, header_timeout, watcher).await
                            }
                            Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = served => {}
                // Evicted: dropping the connection closes it.
                () = close.notified() => tracing::debug!("closed a connection still waiting for its request, to make room"),
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn serve_connection<IO, S>(
    io: IO,
    service: TowerToHyperService<S>,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!("connection ended: {e}");
    }
}
