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
    #[error("{}", with_subject(field.as_deref(), message))]
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
        /// Every broken rule, for an invalid request.
        errors: Vec<FieldError>,
    },
    /// Mistakes in the user's manifest, each where it is written.
    #[error("{}", .0.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n"))]
    Manifest(Vec<Problem>),
    #[error("{0}")]
    Input(String),
    #[error("unexpected answer from sk8: {0}")]
    Protocol(String),
}

/// One broken rule the daemon reported: the field (its JSON path) and what is wrong.
#[derive(Clone, Debug)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

/// A mistake in a manifest: the file, where in it (1-based line and column, when known), the
/// field, what is wrong, and for a syntax error the parser's picture of the place.
#[derive(Debug)]
pub struct Problem {
    pub file: String,
    pub position: Option<(usize, usize)>,
    pub field: Option<String>,
    pub message: String,
    pub snippet: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(
            f,
            ": {}",
            with_subject(self.field.as_deref(), &self.message)
        )
    }
}

/// A message that names its field first (`driver.memory: "lots" is not …`), once.
pub fn with_subject(field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) if !field.is_empty() => {
            let bare = message
                .strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(": "))
                .unwrap_or(message);
            format!("{field}: {bare}")
        }
        _ => message.to_owned(),
    }
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

    /// The effective spec of a submission (`POST /v1/jobs?dryRun=true`): nothing is stored.
    pub async fn dry_run(&self, body: &Value) -> Result<Value, ClientError> {
        let url = self.url("/v1/jobs");
        self.json(self.http.post(url).query(&[("dryRun", "true")]).json(body))
            .await
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

    /// Copies the driver log to stdout as it arrives; with `json`, as JSON Lines
    /// (`{"line": "…"}` per log line) so that `-o json` output stays machine-readable.
    pub async fn logs(
        &self,
        id: &str,
        follow: bool,
        attempt: Option<u32>,
        json: bool,
    ) -> Result<(), ClientError> {
        let mut query = vec![("follow", follow.to_string())];
        query.extend(attempt.map(|n| ("attempt", n.to_string())));
        let request = self
            .http
            .get(self.url(&format!("/v1/jobs/{}/logs", segment(id))))
            .query(&query);
        let response = self.send(request).await?;
        let mut body = response.bytes_stream();
        let mut stdout = std::io::stdout().lock();
        let mut pending = Vec::new();
        let write_err = |e: std::io::Error| ClientError::Input(format!("write the log: {e}"));
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ClientError::Protocol(format!("the log stream broke: {e}")))?;
            if !json {
                stdout.write_all(&chunk).map_err(write_err)?;
            } else {
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    json_line(&mut stdout, &line[..end]).map_err(write_err)?;
                }
            }
            stdout.flush().map_err(write_err)?;
        }
        if json && !pending.is_empty() {
            json_line(&mut stdout, &pending).map_err(write_err)?;
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

    /// Makes a link of an answer (a path of the daemon) a whole URL, for a person to open.
    pub fn absolutize(&self, link: &mut serde_json::Value) {
        if let Some(path) = link.as_str() {
            *link = self.url(path).into();
        }
    }

    /// The daemon's URL of an API path (links in answers are paths).
    pub fn url(&self, path: &str) -> String {
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
        let errors = error["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| FieldError {
                field: e["field"].as_str().map(str::to_owned),
                message: super::output::s(&e["message"]),
            })
            .collect();
        Err(ClientError::Api {
            status,
            code: error["code"].as_str().unwrap_or("http_error").to_owned(),
            message: error["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned),
            field: error["field"].as_str().map(str::to_owned),
            errors,
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

/// One log line as a JSON object on its own line.
fn json_line(out: &mut impl Write, line: &[u8]) -> std::io::Result<()> {
    let line = String::from_utf8_lossy(line);
    let object = serde_json::json!({ "line": line.trim_end_matches('\r') });
    writeln!(out, "{object}")
}

/// An id as one URL path segment, whatever the user typed.
pub fn segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
