//! Operational endpoints: `/healthz`, `/readyz`, `/metrics`.

use std::sync::atomic::Ordering;

use http::{Response, StatusCode};

use super::text_response;
use crate::body::ResponseBody;
use crate::server::App;

/// 200 while the process runs.
pub fn healthz() -> Response<ResponseBody> {
    text_response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n")
}

/// 200 once a config is loaded and until shutdown starts; 503 otherwise.
pub fn readyz(app: &App) -> Response<ResponseBody> {
    if app.draining.load(Ordering::SeqCst) {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "draining\n");
    }
    match app.config.current() {
        Some(_) => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
        None => {
            text_response(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "no config loaded\n")
        }
    }
}

/// Prometheus text exposition.
pub fn metrics(app: &App) -> Response<ResponseBody> {
    text_response(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", app.metrics.render())
}
