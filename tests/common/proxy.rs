//! A TCP proxy a test can cut and restore, to play a database (or any server) going away
//! without touching the real one: while cut, open connections are closed and new ones are
//! accepted and closed at once (what a restarting server looks like to its clients). Also: the
//! address of a Postgres URL (what to proxy), and terminating a database's connections (what
//! a Postgres restart does to its clients).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards `127.0.0.1:<port>` to an upstream; stopped on drop.
pub struct TcpProxy {
    pub addr: SocketAddr,
    /// Cancelled to close every open connection; replaced on restore.
    links: Arc<Mutex<Option<CancellationToken>>>,
    stop: CancellationToken,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let links = Arc::new(Mutex::new(Some(CancellationToken::new())));
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, upstream, links.clone(), stop.clone()));
        TcpProxy { addr, links, stop }
    }

    /// Closes every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        if let Some(open) = self.links.lock().unwrap().take() {
            open.cancel();
        }
    }

    pub fn restore(&self) {
        self.links
            .lock()
            .unwrap()
            .get_or_insert_with(CancellationToken::new);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    links: Arc<Mutex<Option<CancellationToken>>>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        // While cut, the connection is dropped here: the client sees it closed.
        let Some(open) = links.lock().unwrap().clone() else {
            continue;
        };
        tokio::spawn(forward(client, upstream, open));
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, open: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = open.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL, resolved.
pub fn postgres_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let host_port = rest.split('/').next().unwrap();
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, hp)| hp);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .expect("resolve the Postgres host")
        .next()
        .expect("an address")
}

/// Terminates every server connection of the database, as a restart does to its clients.
pub async fn terminate_connections(db: &super::TestDb) {
    let mut admin = sqlx::PgConnection::connect(&super::pg_admin_url())
        .await
        .expect("reach Postgres");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&db.name)
    .execute(&mut admin)
    .await
    .expect("terminate the database's connections");
}
