//! The HTTPS listener: TLS, HTTP/1.1 and HTTP/2, bearer-token authentication, the body
//! size limit, and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Error;
use crate::api_error::ApiError;
use crate::handlers::AppState;
use crate::tls::Material;

/// Largest request body accepted, as Kubernetes (3 MiB).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How much of an oversized body is read before answering 413.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn json_response(code: u16, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(bytes));
    *r.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, e.to_status().to_string())
}

/// Handle to stop a running listener.
pub(crate) struct ServerHandle {
    shutdown: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
    state: AppState,
}

impl ServerHandle {
    pub(crate) async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Watches would keep connections open forever: end them first.
        self.state.end_watches();
        let _ = self.accept_task.await;
        self.state.close().await;
    }
}

pub(crate) async fn serve(
    bind: SocketAddr,
    material: &Material,
    state: AppState,
) -> Result<(SocketAddr, ServerHandle), Error> {
    let tls = crate::tls::server_config(material)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| Error::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr: bind, source })?;
    state.set_address(addr);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let token: Arc<str> = Arc::from(material.token.as_str());
    let task_state = state.clone();
    let accept_task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        let mut stop = shutdown_rx.clone();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => {
                    let Ok((tcp, _peer)) = accepted else { continue };
                    let _ = tcp.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let state = task_state.clone();
                    let token = Arc::clone(&token);
                    let mut conn_stop = shutdown_rx.clone();
                    connections.spawn(async move {
                        let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else { return };
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            let token = Arc::clone(&token);
                            async move { Ok::<_, Infallible>(dispatch(state, &token, req).await) }
                        });
                        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        let conn = builder.serve_connection(TokioIo::new(tls), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = conn_stop.changed() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
                            }
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(Duration::from_secs(6), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
    });
    Ok((
        addr,
        ServerHandle {
            shutdown: shutdown_tx,
            accept_task,
            state,
        },
    ))
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let Some(value) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = value.strip_prefix("Bearer ").map(str::trim) else {
        return false;
    };
    // Constant-time comparison: the token is the only credential.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn dispatch(state: AppState, token: &str, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let open = matches!(path, "/healthz" | "/livez" | "/readyz");
    if !open && !authorized(&req, token) {
        return error_response(&ApiError::unauthorized());
    }
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        // Read (and drop) a bounded amount first so a client still sending gets the 413
        // instead of a broken pipe; beyond the bound the connection is simply closed.
        let _ = Limited::new(body, DRAIN_BYTES).collect().await;
        return error_response(&ApiError::too_large(MAX_BODY_BYTES));
    }
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return error_response(&ApiError::too_large(MAX_BODY_BYTES));
            }
            return error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            )));
        }
    };
    state.handle(parts, bytes).await
}
