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
//! /64): past that, its new connections are closed at once, so no number of slow clients from
//! one address takes the server from the others.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, Ipv6Addr},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
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
    sync::Semaphore,
};
use tokio_rustls::{rustls, TlsAcceptor};

pub struct ServeOptions {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Open connections by client address.
#[derive(Default)]
struct AddressCounts(Mutex<HashMap<IpAddr, usize>>);

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

/// One open connection of an address, until dropped.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    key: IpAddr,
}

impl AddressCounts {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let key = client_key(ip);
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = counts.entry(key).or_insert(0);
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(AddressSlot {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = counts.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.key);
            }
        }
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
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let per_address = Arc::new(AddressCounts::default());
    let graceful = GracefulShutdown::new();
    let acceptor = options.tls.map(TlsAcceptor::from);
    let header_timeout = options.header_timeout;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, address_slot) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match per_address.take(peer.ip(), options.max_connections_per_address) {
                    Some(slot) => (stream, slot),
                    None => {
                        // Closed at once: its slot goes back to the others.
                        tracing::debug!("{} connections from one address already; closing a new one", options.max_connections_per_address);
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
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _address_slot = address_slot;
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
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn serve_connection<IO>(
    io: IO,
    service: TowerToHyperService<Router>,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
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
