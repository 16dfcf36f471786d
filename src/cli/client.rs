//! A small HTTP client for the sk8 API, used by the CLI subcommands.

use std::io::Write;

use futures::StreamExt;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach sk8 at {server}: {source}. Is `sk8 serve` running? Point at it with --server or SK8_SERVER."
    )]
    Unreachable {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{message}{}", field.as_ref().map(|f| format!(" (field: {f})")).unwrap_or_default())]
    Api {
        status: u16,
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    Input(String),
    #[error("unexpected answer from sk8: {0}")]
    Protocol(String),
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Whether it sends a token (the notebook snippet then needs one too).
    authenticated: bool,
}

impl Client {
    /// A client of `server`, sending `token` as its bearer on every request.
    pub fn new(server: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| anyhow::anyhow!("SK8_TOKEN holds characters a header cannot"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        Ok(Client {
            http,
            base: server.trim_end_matches('/').to_owned(),
            authenticated: token.is_some(),
        })
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    pub async fn submit(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut request = self.http.post(self.url("/v1/jobs")).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.json(request).await
    }

    pub async fn get_job(&self, id: &str) -> Result<Value, ClientError> {
        self.json(
            self.http
                .get(self.url(&format!("/v1/jobs/{}", segment(id)))),
        )
        .await
    }

    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        self.json(
            self.http
                .post(self.url(&format!("/v1/jobs/{}/cancel", segment(id)))),
        )
        .await
    }

    pub async fn events(&self, id: &str) -> Result<Value, ClientError> {
        self.json(
            self.http
                .get(self.url(&format!("/v1/jobs/{}/events", segment(id)))),
        )
        .await
    }

    /// Copies the driver log to stdout as it arrives.
    pub async fn logs(&self, id: &str, follow: bool) -> Result<(), ClientError> {
        let request = self
            .http
            .get(self.url(&format!("/v1/jobs/{}/logs", segment(id))))
            .query(&[("follow", follow.to_string())]);
        let response = self.send(request).await?;
        let mut body = response.bytes_stream();
        let mut stdout = std::io::stdout().lock();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ClientError::Protocol(format!("the log stream broke: {e}")))?;
            stdout
                .write_all(&chunk)
                .and_then(|()| stdout.flush())
                .map_err(|e| ClientError::Input(format!("write the log: {e}")))?;
        }
        Ok(())
    }

    /// `GET path` with a query, as JSON.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.json(self.http.get(self.url(path)).query(query)).await
    }

    /// `POST path` with a JSON body, as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.json(self.http.post(self.url(path)).json(body)).await
    }

    /// `PUT path` with a JSON body, as JSON.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.json(self.http.put(self.url(path)).json(body)).await
    }

    /// `DELETE path`, as JSON.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.json(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                server: self.base.clone(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        Err(ClientError::Api {
            status,
            message: error["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned),
            field: error["field"].as_str().map(str::to_owned),
        })
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        self.send(request)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

/// An id as one URL path segment, whatever the user typed.
pub fn segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
