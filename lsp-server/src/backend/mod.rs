//! The OpenAI-compatible `/v1/completions` client (ghostline-serve by default).
//!
//! One pooled `reqwest::Client` keeps a warm keep-alive connection to the backend. A stream
//! that the server stops early is simply dropped: hyper then closes that connection instead
//! of returning it to the pool, and ghostline-serve notices the closed receiver and stops
//! decoding, so an abandoned suggestion costs the backend nothing more.

pub mod affinity;
pub mod health;
mod request_id;
mod sse;
mod tls;

pub use health::Health;
pub use sse::CompletionStream;

use std::time::{Duration, Instant};

use ghostline_protocol::{self as wire, FimInfo};

/// What the client needs to know to reach the backend: taken from the editor's settings by
/// the completion pipeline (`complete::backend_config`), so this module depends on nothing
/// of the editor's. No `Debug`: it holds the API key.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Base URL (`/v1/models`, `/v1/completions` are appended).
    pub url: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<String>,
    /// A PEM file of CA certificates trusted on top of the system's roots.
    pub ca_file: Option<String>,
    /// The model asked for; `None`: the first `/v1/models` lists.
    pub model: Option<String>,
    /// Limit on a `/v1/models` answer.
    pub timeout: Duration,
}

/// What the backend says about its model (`/v1/models`): data only; how a prompt is laid out
/// from it is `context::template`'s business.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    /// FIM markers and template, as far as the backend reports them (empty when it does not).
    pub fim: FimInfo,
    /// `family` from `/v1/models` (`qwen2.5-coder`, ...): picks the prompt format.
    pub family: Option<String>,
    pub context_length: Option<usize>,
    /// (prefill, decode) tokens per second, when the backend measures and reports them
    /// (ghostline-serve does; it also takes `max_tokens: 0` to prefill only).
    pub speed: Option<(Option<f64>, Option<f64>)>,
    /// The backend heals a raw prompt that ends inside a word (`token_healing` in
    /// `/v1/models`, ghostline-serve): the prompt may then put the cursor's line last.
    pub token_healing: bool,
}

impl ModelInfo {
    /// A model the backend did not list, asked for by name: nothing known of it.
    fn unlisted(id: String) -> Self {
        Self {
            id,
            fim: FimInfo::default(),
            family: None,
            context_length: None,
            speed: None,
            token_healing: false,
        }
    }
}

impl From<wire::ModelCard> for ModelInfo {
    fn from(card: wire::ModelCard) -> Self {
        Self {
            id: card.id,
            fim: card.fim.unwrap_or_default(),
            family: card.family,
            context_length: card.context_length,
            speed: card
                .speed
                .map(|s| (s.prefill_tokens_per_s, s.decode_tokens_per_s)),
            token_healing: card.token_healing,
        }
    }
}

/// What a request cost, as the backend reported it: OpenAI's `usage` (with
/// `prompt_tokens_details.cached_tokens`) and ghostline-serve's `timings`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens the backend's prefix cache already held.
    pub cached_tokens: usize,
    /// Time spent computing the uncached prompt tokens, and decoding.
    pub prefill_ms: Option<f64>,
    pub decode_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendError {
    /// Connection refused, DNS failure, reset before any answer.
    Unreachable(String),
    /// 401/403: the key in the configured environment variable was refused.
    Unauthorized,
    /// 503 and friends: the backend asked us to come back later.
    Busy {
        retry_after: Option<Duration>,
    },
    /// 429: this key's requests, streams or tokens per minute are used up.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// The TLS handshake failed on the server's certificate (unknown CA, wrong name, expired);
    /// `ca_file` is the setting then in force.
    Certificate {
        why: String,
        ca_file: Option<String>,
    },
    /// `caFile` is missing, unreadable or holds no certificate: the sentence that says which.
    CaFile(String),
    /// An `http://` URL whose server answered with TLS (its `https://` twin would work).
    TlsOnPlainHttp(String),
    /// Any other non-success status.
    Status(u16, String),
    /// The connection broke in the middle of a stream.
    Died(String),
    /// The answer was not the JSON or SSE we expect.
    Protocol(String),
    Timeout,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "cannot reach the backend ({why})"),
            Self::Unauthorized => write!(f, "the backend refused the API key"),
            Self::Busy { .. } => write!(f, "the backend is busy"),
            Self::RateLimited { retry_after } => match retry_after {
                Some(wait) => write!(
                    f,
                    "the backend's limit for this API key is reached (it asks to wait {} s)",
                    wait.as_secs()
                ),
                None => write!(f, "the backend's limit for this API key is reached"),
            },
            Self::Certificate { why, .. } if why.contains("not valid for name") => write!(
                f,
                "the backend's TLS certificate is not made out to the host in the URL ({why}): use a name the certificate lists, or make one for this name"
            ),
            Self::Certificate { why, .. }
                if why.contains("expired") || why.contains("not valid yet") =>
            {
                write!(
                    f,
                    "the backend's TLS certificate is outside its dates ({why}): the server needs a new one"
                )
            }
            Self::Certificate { why, ca_file: None } => write!(
                f,
                "the backend's TLS certificate is not trusted ({why}); if your team's own CA signed it, or it is self-signed, set `caFile` to that CA's or that certificate's PEM file"
            ),
            Self::Certificate {
                why,
                ca_file: Some(path),
            } => write!(
                f,
                "the backend's TLS certificate is not trusted ({why}), neither by the system nor by caFile {path}, which must hold the server's certificate or the CA that signed it"
            ),
            Self::CaFile(why) => write!(f, "{why}"),
            Self::TlsOnPlainHttp(url) => {
                write!(f, "the backend at {url} answered with TLS: use https://")
            }
            Self::Status(code, body) => write!(f, "the backend answered HTTP {code}: {body}"),
            Self::Died(why) => write!(f, "the backend stream broke off ({why})"),
            Self::Protocol(why) => write!(f, "the backend answered something unexpected ({why})"),
            Self::Timeout => write!(f, "the backend did not answer in time"),
        }
    }
}

/// Body of `POST /v1/completions`: the wire contract's.
pub use wire::CompletionRequest;

struct CachedModel {
    backend_url: String,
    wanted_model: Option<String>,
    result: Result<ModelInfo, BackendError>,
    fetched_at: Instant,
}

/// The pooled client for one `caFile` setting; when that file was unusable, why, and when it
/// was last tried.
struct BuiltClient {
    ca_file: Option<String>,
    client: Result<reqwest::Client, BackendError>,
    built_at: Instant,
}

pub struct Backend {
    /// Rebuilt when the `caFile` setting changes, or when the file was unusable and
    /// `CA_FILE_RETRY` has passed (the user may be putting it in place).
    http: std::sync::Mutex<BuiltClient>,
    model: tokio::sync::Mutex<Option<CachedModel>>,
    pub health: Health,
}

impl Default for Backend {
    fn default() -> Self {
        Self::new()
    }
}

/// How long a failed `/v1/models` answer is remembered before asking again: long enough that
/// a burst of keystrokes asks a down backend once, short enough that a backend that restarts
/// quickly is used again at once (2 s kept a restarted server "unreachable" for seconds).
const MODEL_RETRY: Duration = Duration::from_millis(500);

/// How long an unusable `caFile` is believed before it is read again.
const CA_FILE_RETRY: Duration = Duration::from_secs(5);

impl Backend {
    pub fn new() -> Self {
        affinity::load_in_background();
        Self {
            http: std::sync::Mutex::new(BuiltClient {
                ca_file: None,
                client: Self::build_client(None),
                built_at: Instant::now(),
            }),
            model: tokio::sync::Mutex::new(None),
            health: Health::default(),
        }
    }

    /// The pooled client; rustls with the system's roots, plus `ca_file`'s certificates (see
    /// `tls`). A `ca_file` that cannot be used is an error, not a fallback to the system's
    /// roots: the user asked for it, and the notice must say what is wrong with it.
    fn build_client(ca_file: Option<&str>) -> Result<reqwest::Client, BackendError> {
        let builder = reqwest::Client::builder()
            // Only the prompt may leave the machine, and only to the configured backend:
            // never let an HTTP_PROXY variable reroute it.
            .no_proxy()
            .https_only(false)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            // Below ghostline-serve's 30 s keep-alive limit (--header-timeout), so a request
            // never goes out on a connection the server is closing at that moment.
            .pool_idle_timeout(Duration::from_secs(25))
            .pool_max_idle_per_host(4);
        let builder = match ca_file.filter(|p| !p.is_empty()) {
            None => builder.use_rustls_tls(),
            Some(path) => {
                let certificates = tls::read_ca_file(path).map_err(BackendError::CaFile)?;
                let config = tls::client_config(certificates).map_err(|e| {
                    BackendError::CaFile(format!("caFile {path} cannot be used ({e})"))
                })?;
                builder.use_preconfigured_tls(config)
            }
        };
        Ok(builder.build().unwrap_or_else(|e| {
            tracing::error!("cannot build the HTTP client ({e}); using reqwest's defaults");
            reqwest::Client::new()
        }))
    }

    /// The client for this config (a cheap clone of the pooled one). `caFile` matters only to
    /// an `https://` backend: a broken one does not stop a plain `http://` one.
    fn http(&self, config: &BackendConfig) -> Result<reqwest::Client, BackendError> {
        let ca_file = config
            .ca_file
            .as_ref()
            .filter(|_| !config.url.starts_with("http://"));
        let mut slot = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let stale = slot.ca_file.as_ref() != ca_file
            || (slot.client.is_err() && slot.built_at.elapsed() >= CA_FILE_RETRY);
        if stale {
            let client = Self::build_client(ca_file.map(String::as_str));
            if let Err(error) = &client {
                tracing::debug!("{error}");
            }
            *slot = BuiltClient {
                ca_file: ca_file.cloned(),
                client,
                built_at: Instant::now(),
            };
        }
        slot.client.clone()
    }

    fn url(config: &BackendConfig, path: &str) -> String {
        format!("{}{}", config.url.trim_end_matches('/'), path)
    }

    /// Sends `builder` (a `what` request: `/v1/completions`, ...) under the configured key,
    /// with a fresh request id as `X-Request-ID`. The id is logged when the request goes out,
    /// and when its answer ends: here when it is refused or never comes, else by whoever reads
    /// the answer's body (`request_id::ended`, or `CompletionStream` when it is dropped).
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
        config: &BackendConfig,
        what: &'static str,
    ) -> Result<(reqwest::Response, String), BackendError> {
        let id = request_id::next();
        let builder = builder.header(wire::headers::REQUEST_ID, &id);
        let builder = match &config.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        };
        tracing::debug!(request_id = %id, what, "backend request sent");
        let answer = match builder.send().await {
            Ok(response) => check_status(response).await,
            Err(error) => Err(classify_send_error(error, config)),
        };
        match answer {
            Ok(response) => Ok((response, id)),
            Err(error) => {
                request_id::ended(&id, &error);
                Err(error)
            }
        }
    }

    /// The model to use and its FIM template, from `/v1/models`, cached per backend URL.
    pub async fn model(&self, config: &BackendConfig) -> Result<ModelInfo, BackendError> {
        let mut cached = self.model.lock().await;
        if let Some(entry) = cached.as_ref() {
            let same_target = entry.backend_url == config.url && entry.wanted_model == config.model;
            if same_target && (entry.result.is_ok() || entry.fetched_at.elapsed() < MODEL_RETRY) {
                return entry.result.clone();
            }
        }
        let result = self.fetch_model(config).await;
        *cached = Some(CachedModel {
            backend_url: config.url.clone(),
            wanted_model: config.model.clone(),
            result: result.clone(),
            fetched_at: Instant::now(),
        });
        result
    }

    /// The id of the model `/v1/models` last named, when it is cached and not being fetched
    /// right now; never asks the backend.
    pub fn cached_model_id(&self) -> Option<String> {
        let cached = self.model.try_lock().ok()?;
        cached.as_ref()?.result.as_ref().ok().map(|m| m.id.clone())
    }

    /// Drops the cached model so the next request asks `/v1/models` again (after a
    /// backend restart the model may have changed).
    pub async fn forget_model(&self) {
        *self.model.lock().await = None;
    }

    async fn fetch_model(&self, config: &BackendConfig) -> Result<ModelInfo, BackendError> {
        let request = self
            .http(config)?
            .get(Self::url(config, "/v1/models"))
            .timeout(config.timeout);
        let (response, id) = self.send(request, config, "/v1/models").await?;
        let list: wire::ModelList = request_id::ended_with(&id, json_body(response).await)?;
        let entry = match &config.model {
            Some(wanted) => list.data.into_iter().find(|entry| &entry.id == wanted),
            None => list.data.into_iter().next(),
        };
        match entry {
            Some(entry) => Ok(entry.into()),
            // The backend does not list it; it may still serve it under that name.
            None => match &config.model {
                Some(wanted) => Ok(ModelInfo::unlisted(wanted.clone())),
                None => Err(BackendError::Protocol("/v1/models lists no model".into())),
            },
        }
    }

    /// Starts a streaming completion; the returned stream yields text deltas.
    /// `affinity`: the document's key (see `affinity`), sent as `X-Session-ID`.
    pub async fn stream(
        &self,
        config: &BackendConfig,
        request: &CompletionRequest,
        affinity: &str,
    ) -> Result<CompletionStream, BackendError> {
        let builder = self
            .http(config)?
            .post(Self::url(config, "/v1/completions"))
            .header(affinity::HEADER, affinity)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(serde_json::to_vec(request).map_err(|e| BackendError::Protocol(e.to_string()))?);
        let (response, id) = self.send(builder, config, "/v1/completions").await?;
        Ok(CompletionStream::new(response, id))
    }
}

impl Backend {
    /// Has the backend compute `prompt` into its prefix cache without generating anything
    /// (`max_tokens: 0`; ghostline-serve only): the prompts of the next keystrokes start with it.
    /// Dropping the future closes the connection, and the backend keeps what it computed so far.
    pub async fn warm(
        &self,
        config: &BackendConfig,
        model: &str,
        prompt: &str,
        affinity: &str,
    ) -> Result<Option<Usage>, BackendError> {
        let body = CompletionRequest {
            model: Some(model.to_string()),
            prompt: wire::OneOrMany::One(prompt.to_string()),
            max_tokens: Some(0),
            temperature: Some(0.0),
            stream: Some(false),
            ..Default::default()
        };
        let builder = self
            .http(config)?
            .post(Self::url(config, "/v1/completions"))
            // The same replica as the document's completions: the warm-up is only worth
            // anything in the prefix cache those will read.
            .header(affinity::HEADER, affinity)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).map_err(|e| BackendError::Protocol(e.to_string()))?);
        let (response, id) = self.send(builder, config, "warm-up").await?;
        let answer: wire::Completion = request_id::ended_with(&id, json_body(response).await)?;
        Ok(sse::usage_of(answer.usage, answer.timings))
    }
}

impl Backend {
    /// `POST path` with a small JSON body, under the same key, TLS and limits as completions;
    /// the answer's body is not read (the acceptance stats: `stats::SHARE_PATH`).
    pub async fn post_json(
        &self,
        config: &BackendConfig,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<(), BackendError> {
        let builder = self
            .http(config)?
            .post(Self::url(config, path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(config.timeout)
            .body(serde_json::to_vec(body).map_err(|e| BackendError::Protocol(e.to_string()))?);
        let (_, id) = self.send(builder, config, "post").await?;
        request_id::ended_with(&id, Ok(()))
    }
}

fn classify_send_error(error: reqwest::Error, config: &BackendConfig) -> BackendError {
    if error.is_timeout() {
        return BackendError::Timeout;
    }
    let cause = root_cause(&error);
    if is_certificate_error(&error) {
        BackendError::Certificate {
            why: cause,
            ca_file: config.ca_file.clone().filter(|path| !path.is_empty()),
        }
    } else if config.url.starts_with("http://") && answered_with_tls(&cause) {
        BackendError::TlsOnPlainHttp(config.url.clone())
    } else {
        BackendError::Unreachable(cause)
    }
}

/// Whether hyper's failure to read an HTTP answer is a TLS server's: a TLS record (an alert, a
/// handshake) begins with a byte that cannot begin an HTTP status line, which hyper reports as
/// an invalid HTTP version.
fn answered_with_tls(cause: &str) -> bool {
    cause.contains("invalid HTTP version parsed")
}

/// Whether a connection failed on the server's certificate (rustls: "invalid peer
/// certificate: UnknownIssuer", "NotValidForName", "Expired", …).
fn is_certificate_error(error: &dyn std::error::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = cause {
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("unknownissuer") {
            return true;
        }
        cause = e.source();
    }
    false
}

pub(crate) fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// JSON answers (`/v1/models`, a warm-up's usage) larger than this are refused, not read: a
/// model list is a few kilobytes (a hosted service listing hundreds of models, a few hundred).
const MAX_JSON_BODY_BYTES: usize = 8 << 20;
/// An error answer's body is read this far, at most; its first 200 bytes are shown.
const MAX_ERROR_BODY_BYTES: usize = 4 << 10;

/// The body's first `cap` bytes, and whether there was more (the rest is left unread; dropping
/// the response closes the connection instead of draining it).
async fn capped_body(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// A whole answer's body as JSON: a body cut off is the backend dying, one that does not parse
/// (or is larger than `MAX_JSON_BODY_BYTES`) a protocol error.
async fn json_body<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
) -> Result<T, BackendError> {
    let too_large = || {
        BackendError::Protocol(format!(
            "answer larger than {} MiB",
            MAX_JSON_BODY_BYTES >> 20
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_JSON_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let (bytes, more) = capped_body(&mut response, MAX_JSON_BODY_BYTES)
        .await
        .map_err(|error| BackendError::Died(root_cause(&error)))?;
    if more {
        return Err(too_large());
    }
    serde_json::from_slice(&bytes).map_err(|error| BackendError::Protocol(error.to_string()))
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, BackendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    match status.as_u16() {
        401 | 403 => Err(BackendError::Unauthorized),
        429 | 503 => {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if status.as_u16() == 429 {
                Err(BackendError::RateLimited { retry_after })
            } else {
                Err(BackendError::Busy { retry_after })
            }
        }
        code => {
            let mut response = response;
            let (bytes, _) = capped_body(&mut response, MAX_ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            // Shown to the user: bytes that are not UTF-8 become U+FFFD rather than hiding the
            // whole message.
            let body = String::from_utf8_lossy(&bytes);
            // At most 200 bytes, cut at a character boundary (a byte cut could split one).
            let mut end = body.len().min(200);
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            Err(BackendError::Status(code, body[..end].to_string()))
        }
    }
}
