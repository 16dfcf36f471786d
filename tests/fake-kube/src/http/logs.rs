//! `GET .../pods/{name}/log`: the text appended through the control API (or by the fake
//! operator), and with `follow=true` a stream that ends when the pod is terminal or gone.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::params::Params;
use crate::error::ApiResult;
use crate::store::Target;

pub async fn get(state: &AppState, target: &Target, params: &Params) -> ApiResult<Response> {
    let (text, done) = state.store.log(target)?;
    if !params.follow() || done {
        return Ok(plain(Body::from(text)));
    }
    let follower = Follower {
        state: state.clone(),
        target: target.clone(),
        sent: 0,
    };
    let chunks = futures::stream::unfold(follower, |mut follower| async move {
        let chunk = follower.next().await?;
        Some((Ok::<_, Infallible>(chunk), follower))
    });
    Ok(plain(Body::from_stream(chunks)))
}

fn plain(body: Body) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

struct Follower {
    state: AppState,
    target: Target,
    sent: usize,
}

impl Follower {
    /// The next new text; None once the pod is terminal (after its last text) or deleted.
    async fn next(&mut self) -> Option<Bytes> {
        let mut changes = self.state.store.changes();
        loop {
            let (text, done) = self.state.store.log(&self.target).ok()?;
            if text.len() > self.sent {
                let chunk = Bytes::from(text[self.sent..].to_string());
                self.sent = text.len();
                return Some(chunk);
            }
            if done {
                return None;
            }
            tokio::select! {
                _ = self.state.shutdown.cancelled() => return None,
                changed = changes.changed() => changed.ok()?,
            }
        }
    }
}
