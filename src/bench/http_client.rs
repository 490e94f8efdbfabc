//! The HTTP side of the load generator: one hyper HTTP/1.1 connection per simulated client
//! (keep-alive, no pool, so the connection count is exactly what the plan says), each request
//! a POST whose body a workload draws, the whole answer read before the call counts.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;

use super::load::{CallOutcome, Client};

/// Draws one request body.
pub type BodyMaker = Box<dyn Fn(&mut SmallRng) -> Vec<u8> + Send + Sync>;

/// Where and what to POST: its request line and headers made once, not for every request.
pub struct HttpClient {
    address: SocketAddr,
    uri: Uri,
    host: HeaderValue,
    content_type: HeaderValue,
    /// The `Authorization` header, if the server wants one.
    authorization: Option<HeaderValue>,
    make_body: BodyMaker,
}

impl HttpClient {
    /// A client POSTing to `path` at `address`, each body from `make_body`, with
    /// `authorization` (the header's whole value) if given.
    pub fn new(
        address: SocketAddr,
        path: &str,
        content_type: &'static str,
        authorization: Option<String>,
        make_body: BodyMaker,
    ) -> HttpClient {
        HttpClient {
            address,
            uri: path.parse().expect("the workloads' paths are valid URIs"),
            host: HeaderValue::from_str(&address.to_string()).expect("an address is a host"),
            content_type: HeaderValue::from_static(content_type),
            authorization: authorization
                .map(|value| HeaderValue::try_from(value).expect("a key is a header value")),
            make_body,
        }
    }
}

impl Client for HttpClient {
    type Connection = SendRequest<Full<Bytes>>;

    async fn connect(&self) -> Result<Self::Connection, String> {
        let stream = tokio::net::TcpStream::connect(self.address)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn call(&self, sender: &mut Self::Connection, rng: &mut SmallRng) -> CallOutcome {
        let mut request = Request::post(self.uri.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, self.content_type.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(Bytes::from((self.make_body)(rng))))
            .expect("a valid request");
        if sender.ready().await.is_err() {
            return CallOutcome::Broken("io".into());
        }
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => return CallOutcome::Broken("io".into()),
        };
        let status = response.status();
        if response.into_body().collect().await.is_err() {
            return CallOutcome::Broken("io".into());
        }
        if status.is_success() {
            CallOutcome::Succeeded
        } else {
            CallOutcome::Refused(status.as_str().to_string())
        }
    }
}
