//! Reading request bodies, only after the caller is checked, under the route's size limit and
//! the configured read timeout; ending the connection of a chunked body left unread; and
//! parsing JSON with errors that name the offending field (`params.joinKeyMap: invalid type:`),
//! or, for a body sent compressed, the `Content-Encoding` Quiver does not read.

use std::cell::{Cell, RefCell};
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{dev, FromRequest, HttpMessage, HttpRequest};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{without_quoted_values, ApiError, ErrorKind};
use super::objects_only::ObjectsOnly;
use super::{AppState, Limits};
use crate::echo::echo;

/// A request body not read yet. Taking one reads nothing: the handler calls [`UnreadBody::read`]
/// once the caller has passed its checks, so a refused caller costs no body buffer.
pub struct UnreadBody {
    payload: dev::Payload,
    /// `Content-Length`, when the client declared one.
    declared_len: Option<u64>,
    /// `server.body_read_timeout`: the whole body must arrive within it.
    timeout: Duration,
    /// This worker's share of `server.max_body_bytes_in_flight`.
    in_flight_budget: usize,
}

impl FromRequest for UnreadBody {
    type Error = ApiError;
    type Future = Ready<Result<UnreadBody, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        ready(Ok(UnreadBody::take(request, payload, limits(request))))
    }
}

impl UnreadBody {
    /// Takes `request`'s body, to be read under `limits` (an extractor that already holds the
    /// state passes them, rather than looking the state up again).
    pub fn take(request: &HttpRequest, payload: &mut dev::Payload, limits: Limits) -> UnreadBody {
        let declared_len = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| content_length(value.as_bytes()));
        UnreadBody {
            payload: payload.take(),
            declared_len,
            timeout: limits.body_read_timeout,
            in_flight_budget: limits.body_bytes_in_flight_per_worker,
        }
    }

    /// Reads the whole body: 413 when it declares or reaches more than `limit` bytes (nothing
    /// is read for a declared excess), 408 when it has not all arrived within the read timeout,
    /// 503 when the bodies being read on this worker would hold more than its budget.
    /// On any refusal the buffer is dropped at once and the connection ends after the answer
    /// (see [`ChunkedPayload`] for chunked bodies).
    pub fn read(self, limit: usize) -> BodyRead {
        self.read_since(limit, Instant::now())
    }

    /// [`UnreadBody::read`], its read timeout counted from `started`: a handler that has just
    /// read the clock passes what it read (a clock read is ~90 instructions a request).
    pub fn read_since(self, limit: usize, started: Instant) -> BodyRead {
        let declared_excess = self.declared_len.is_some_and(|len| len > limit as u64);
        BodyRead {
            payload: self.payload,
            arrived: Arrived::Nothing,
            limit,
            declared_len: if declared_excess {
                None
            } else {
                self.declared_len
            },
            declared_excess,
            deadline: tokio::time::Instant::from_std(started) + self.timeout,
            timeout: self.timeout,
            in_flight_budget: self.in_flight_budget,
            gathered: 0,
            started_alone: false,
            yielded: false,
            timer: None,
        }
    }
}

/// `Content-Length` as `str::parse::<u64>` reads it (an optional `+`, then decimal digits),
/// from the header's bytes: a byte that is not a digit fails either way, and reading the value
/// as text first checked every byte once more (~80 instructions a request).
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.strip_prefix(b"+").unwrap_or(value);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |len, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        len.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// A body being read ([`UnreadBody::read`]): a future of a type that can be named, so that
/// GetFeatures' own future (`routes::feature_service::FeatureServing`) holds it unboxed.
pub struct BodyRead {
    payload: dev::Payload,
    arrived: Arrived,
    limit: usize,
    /// `Content-Length` within the limit: trusted for the size of the buffer a body of more
    /// than one chunk is gathered in (up to [`DECLARED_BYTES_RESERVED_AT_MOST`]), no more.
    declared_len: Option<u64>,
    /// The declared length is past the limit: refused before a byte is read.
    declared_excess: bool,
    deadline: tokio::time::Instant,
    /// `server.body_read_timeout`, for the refusal's words.
    timeout: Duration,
    /// actix polls the handler once before it feeds the payload what it has already read of
    /// the body, in the same turn: a body sent with its head is all there at the second poll.
    /// So the first wait is a yield (woken at once: a stalled body cannot hang on it), and the
    /// read timer (a tokio timer registered and removed: ~1k instructions a request) is armed
    /// only for a body still missing at the second poll, counted from the first.
    yielded: bool,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// This worker's share of `server.max_body_bytes_in_flight`, and what this body holds of
    /// it (see [`GATHERED_BYTES`]).
    in_flight_budget: usize,
    gathered: usize,
    /// No other body on the worker held bytes when this one first did: it is read whatever the
    /// share (its route's limit bounds it).
    started_alone: bool,
}

thread_local! {
    /// The bytes received by the bodies being read on this worker (a body of more than one
    /// chunk, or waiting for more after its first; one that arrives whole in one chunk, as a
    /// body sent with its head mostly does, is actix's read, bounded by it).
    /// Each body is capped by its route's limit, but not how many are read at once: a thousand
    /// clients sending 4 MiB each would hold 4 GB, so past the worker's share of
    /// `server.max_body_bytes_in_flight` a body is refused (503) rather than the process
    /// killed for memory; a body that started alone on its worker never is (its route's limit
    /// bounds it: a 64 MiB `quiver load` chunk on a worker whose share is smaller), so a worker
    /// holds at most its share and one route limit. A worker's own count: a body is read on
    /// its request's worker only.
    static GATHERED_BYTES: Cell<usize> = const { Cell::new(0) };
}

impl BodyRead {
    /// Counts `chunk` against the worker's budget once it is to be gathered (a second chunk
    /// gathers the first too).
    fn gather(&mut self, chunk: &Bytes) -> Result<(), ApiError> {
        if matches!(self.arrived, Arrived::Nothing) {
            return Ok(());
        }
        self.hold(self.arrived.len() + chunk.len())
    }

    /// Counts the body's first `total` bytes against the worker's budget: those not counted
    /// yet. Also a body waiting for more after its first chunk, which actix's read may have
    /// made a few hundred KiB.
    fn hold(&mut self, total: usize) -> Result<(), ApiError> {
        let more = total - self.gathered;
        if more == 0 {
            return Ok(());
        }
        let held = GATHERED_BYTES.get();
        // Whether it started alone is settled by its first gathered bytes: a body that did
        // is read to its end, the ones that come beside it are refused past the share.
        if self.gathered == 0 {
            self.started_alone = held == 0;
        }
        if !self.started_alone && held + more > self.in_flight_budget {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "the server is reading other request bodies that hold {held} bytes of this worker's {}-byte share of server.max_body_bytes_in_flight; send the request again later",
                    self.in_flight_budget
                ),
            ));
        }
        GATHERED_BYTES.set(held + more);
        self.gathered += more;
        Ok(())
    }
}

impl Drop for BodyRead {
    fn drop(&mut self) {
        if self.gathered > 0 {
            GATHERED_BYTES.set(GATHERED_BYTES.get() - self.gathered);
        }
    }
}

/// How much of a declared `Content-Length` is reserved up front. The length is the client's
/// word: reserved whole, a client that declared 4 MiB and sent three bytes held 4 MiB of memory
/// a connection (a reviewer's thousand stalled connections took 1.4 GB). Past this the buffer
/// grows as the bytes arrive; every real Feature Service body fits below it.
const DECLARED_BYTES_RESERVED_AT_MOST: usize = 64 * 1024;

/// What has arrived of a body: a body of one chunk (one sent with its head) is that chunk as
/// actix read it, not copied into a buffer of its own (an allocation, a copy and a free, ~150
/// instructions a request); from a second chunk on, a buffer.
#[derive(Default)]
enum Arrived {
    #[default]
    Nothing,
    One(Bytes),
    Gathered(BytesMut),
}

impl Arrived {
    /// Adds `chunk`, the body being `declared_len` long if declared.
    fn add(&mut self, chunk: Bytes, declared_len: Option<u64>) {
        *self = match std::mem::take(self) {
            Arrived::Nothing => Arrived::One(chunk),
            Arrived::One(first) => {
                let len = first.len() + chunk.len();
                let trusted = declared_len.map_or(0, |declared| {
                    (declared as usize).min(DECLARED_BYTES_RESERVED_AT_MOST)
                });
                let capacity = len.max(trusted);
                let mut body = BytesMut::with_capacity(capacity);
                body.extend_from_slice(&first);
                body.extend_from_slice(&chunk);
                Arrived::Gathered(body)
            }
            Arrived::Gathered(mut body) => {
                body.extend_from_slice(&chunk);
                Arrived::Gathered(body)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Arrived::Nothing => 0,
            Arrived::One(chunk) => chunk.len(),
            Arrived::Gathered(body) => body.len(),
        }
    }

    fn whole(self) -> Bytes {
        match self {
            Arrived::Nothing => Bytes::new(),
            Arrived::One(chunk) => chunk,
            Arrived::Gathered(body) => body.freeze(),
        }
    }
}

impl Future for BodyRead {
    type Output = Result<Bytes, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.declared_excess {
            return Poll::Ready(Err(too_large(this.limit)));
        }
        loop {
            match this.payload.poll_next_unpin(cx) {
                Poll::Ready(Some(chunk)) => {
                    let chunk = checked_chunk(chunk, this.arrived.len(), this.limit)?;
                    this.gather(&chunk)?;
                    this.arrived.add(chunk, this.declared_len);
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Ok(std::mem::take(&mut this.arrived).whole()))
                }
                Poll::Pending if !this.yielded => {
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {
                    this.hold(this.arrived.len())?;
                    let deadline = this.deadline;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    ready!(timer.as_mut().poll(cx));
                    return Poll::Ready(Err(ApiError::new(
                        ErrorKind::RequestTimeout,
                        format!(
                            "the request body did not arrive within the {}-second read timeout",
                            this.timeout.as_secs_f64()
                        ),
                    )));
                }
            }
        }
    }
}

/// One chunk of a body, `arrived` bytes of it read before, under the body's size limit.
fn checked_chunk(
    chunk: Result<Bytes, PayloadError>,
    arrived: usize,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let chunk = chunk.map_err(|e| match e {
        PayloadError::Overflow => too_large(limit),
        other => ApiError::new(
            ErrorKind::InvalidArgument,
            format!("could not read the request body: {other}"),
        ),
    })?;
    if arrived + chunk.len() > limit {
        return Err(too_large(limit));
    }
    Ok(chunk)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("request body is larger than the {limit}-byte limit"),
    )
}

/// A chunked request body shared between the handler and the middleware, so that one not read
/// to its end (its caller was refused, or it was refused itself) ends its connection after the
/// answer.
///
/// actix closes such a connection when the body's length was declared, and also when the body
/// is chunked but its payload is still held when the answer goes out; once the payload is
/// dropped, though, it drains a chunked body for as long as the client sends it, so a client
/// that stalls one would hold its connection forever. Chunked payloads are therefore shared with
/// the middleware, which holds an unfinished one until the connection ends (actix then fails
/// it), at most for the read timeout. Requests with a declared length pass straight through.
pub struct ChunkedPayload {
    shared: Rc<RefCell<SharedPayload>>,
    /// How long an unfinished payload is held after the answer.
    bound: Duration,
}

impl ChunkedPayload {
    /// Shares `request`'s payload when its body is chunked (the handler then reads it through
    /// a proxy); `None` for any other request, left as it is.
    pub fn share(request: &mut ServiceRequest, bound: Duration) -> Option<ChunkedPayload> {
        let chunked = request
            .headers()
            .get(TRANSFER_ENCODING)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"chunked"));
        if !chunked {
            return None;
        }
        let shared = Rc::new(RefCell::new(SharedPayload {
            payload: request.take_payload(),
            finished: false,
        }));
        let reader = Rc::clone(&shared);
        let proxy = futures_util::stream::poll_fn(move |cx| {
            let mut shared = reader.borrow_mut();
            let item = shared.payload.poll_next_unpin(cx);
            shared.finished |= matches!(item, Poll::Ready(None));
            item
        });
        let proxy: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(proxy);
        request.set_payload(dev::Payload::Stream { payload: proxy });
        Some(ChunkedPayload { shared, bound })
    }

    /// The request is answered: a payload not read to its end is held (and what arrives of it
    /// discarded) until the connection ends or the bound elapses.
    pub fn answered(self) {
        let mut shared = self.shared.borrow_mut();
        if !shared.finished {
            let mut payload = dev::Payload::take(&mut shared.payload);
            let bound = self.bound;
            actix_web::rt::spawn(async move {
                let discard = async { while let Some(Ok(_)) = payload.next().await {} };
                // Elapsing only means the connection outlived the bound; the payload is dropped.
                let _ = tokio::time::timeout(bound, discard).await;
            });
        }
    }
}

/// A chunked payload, shared between the handler (through a proxy stream) and the middleware.
struct SharedPayload {
    payload: dev::Payload,
    /// The handler read it to its end.
    finished: bool,
}

fn limits(request: &HttpRequest) -> Limits {
    request
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered by http::app")
        .limits
}

/// A JSON request body not read yet: an [`UnreadBody`] and its request, whose headers a
/// refusal reads ([`parse_json`]). For the routes behind actix's router; GetFeatures' own
/// future holds its request already.
pub struct JsonBody {
    body: UnreadBody,
    request: HttpRequest,
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Ready<Result<JsonBody, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let body = UnreadBody::take(request, payload, limits(request));
        ready(Ok(JsonBody {
            body,
            request: request.clone(),
        }))
    }
}

impl JsonBody {
    /// Reads the body ([`UnreadBody::read`]) and parses it ([`parse_json`]) into an owned `T`.
    pub async fn read<T: DeserializeOwned>(self, limit: usize) -> Result<T, ApiError> {
        let body = self.body.read(limit).await?;
        parse_json(&self.request, &body)
    }
}

/// Parses `request`'s JSON body into `T` (which may borrow from it); a syntax error or a
/// mistyped field is a 400 naming where, and a body sent with a `Content-Encoding` other than
/// identity a 415 ([`encoded_body`]).
pub fn parse_json<'b, T: Deserialize<'b>>(
    request: &HttpRequest,
    body: &'b [u8],
) -> Result<T, ApiError> {
    parse_json_body(body).map_err(|refused| encoded_body(request).unwrap_or(refused))
}

/// The refusal of a body that did not parse, when `request` says it was sent with a
/// `Content-Encoding` other than identity: Quiver reads a body as sent (nothing decompresses
/// it), so a compressed body was never going to parse, and "not valid JSON" would not say why.
/// Read only once a parse has failed: a body that parses costs no header lookup (so one sent
/// with a needless `Content-Encoding` is still served).
pub fn encoded_body(request: &HttpRequest) -> Option<ApiError> {
    let identity = |value: &actix_web::http::header::HeaderValue| {
        let value = value.as_bytes().trim_ascii();
        value.is_empty() || value.eq_ignore_ascii_case(b"identity")
    };
    let mut encodings = request.headers().get_all(CONTENT_ENCODING);
    encodings.any(|value| !identity(value)).then(|| {
        ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "the request body has a Content-Encoding other than identity; only identity is \
             accepted: send the body uncompressed",
        )
    })
}

/// [`parse_json`] of the body alone.
fn parse_json_body<'b, T: Deserialize<'b>>(body: &'b [u8]) -> Result<T, ApiError> {
    // Every API's body is an object. Serde would also read a struct from a list of its fields
    // in order (`["v"]` as `{"value": "v"}`), a shape no API documents, and word a list of
    // lists as a field's type error: a body that is not an object is refused as one. Below
    // the body, `ObjectsOnly` refuses a list where a struct is read.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "request body is empty; expected a JSON object",
            ))
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "request body is not a JSON object; expected a JSON object",
            ))
        }
    }
    // Tracking the path costs a third of the parse and only an error needs it: parse untracked
    // first, and again with the path only to word a refusal (same input, same outcome). The
    // untracked parse reads a `str` checked once, whole: from bytes serde_json checks every
    // string it meets on its own, a call each (a tenth of a batch's parse).
    // Both parses end with `end()`: a JSON value followed by anything but whitespace is not
    // valid JSON, and taking its first value would answer a body the sender did not mean.
    if let Ok(text) = std::str::from_utf8(body) {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        if let Ok(value) = T::deserialize(ObjectsOnly(&mut *deserializer)) {
            if deserializer.end().is_ok() {
                return Ok(value);
            }
        }
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let value =
        serde_path_to_error::deserialize(ObjectsOnly(&mut *deserializer)).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = if inner.is_syntax() || inner.is_eof() {
                format!("request body is not valid JSON: {inner}")
            } else {
                let inner = without_quoted_values(&inner.to_string());
                if path == "." {
                    format!("invalid request body: {inner}")
                } else {
                    format!("invalid request body at `{}`: {inner}", echo(&path))
                }
            };
            ApiError::new(ErrorKind::InvalidArgument, message)
        })?;
    deserializer.end().map_err(|inner| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("request body is not valid JSON: {inner}"),
        )
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `chunks`; with `waits`, the stream is not ready before each chunk nor before
    /// its end (a body arriving in pieces), else every chunk is there at once.
    fn body_of(chunks: &'static [&'static [u8]], waits: bool) -> UnreadBody {
        let mut chunks = chunks.iter().copied();
        let mut ready = !waits;
        let stream = futures_util::stream::poll_fn(move |cx| {
            if !ready {
                ready = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready = !waits;
            let chunk = chunks.next().map(Bytes::from_static);
            Poll::Ready(chunk.map(Ok::<_, PayloadError>))
        });
        let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
        UnreadBody {
            payload: dev::Payload::Stream { payload: stream },
            declared_len: None,
            timeout: Duration::from_secs(60),
            in_flight_budget: usize::MAX,
        }
    }

    #[actix_web::test]
    async fn bodies_are_read_whole_whether_there_at_once_or_in_pieces() {
        for waits in [false, true] {
            let body = body_of(&[b"{\"par", b"ams\":", b"{}}"], waits);
            assert_eq!(&body.read(100).await.unwrap()[..], b"{\"params\":{}}");
        }
    }

    /// Bodies being read at once on a worker hold at most its budget: one that would pass it
    /// is refused (503) and holds nothing; what a body held is given back when it is done.
    #[actix_web::test]
    async fn bodies_read_at_once_hold_at_most_the_workers_budget() {
        let with_budget = |chunks, waits| {
            let mut body = body_of(chunks, waits);
            body.in_flight_budget = 12;
            body.read(100)
        };
        // Two of three chunks arrived, the third is awaited: 8 bytes held.
        let mut first = with_budget(&[b"aaaa", b"aaaa", b"a"], true);
        for _ in 0..10 {
            if GATHERED_BYTES.get() == 8 {
                break;
            }
            assert!(futures_util::poll!(&mut first).is_pending());
        }
        assert_eq!(GATHERED_BYTES.get(), 8);
        let refused = with_budget(&[b"bbbb", b"bbbb"], false).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Unavailable, "{refused}");
        assert!(
            refused.message.contains("server.max_body_bytes_in_flight"),
            "{refused}"
        );
        // A body of one chunk is actix's read, not a buffer of its own: not counted.
        assert_eq!(
            &with_budget(&[b"cccccccc"], false).await.unwrap()[..],
            b"cccccccc"
        );
        assert_eq!(GATHERED_BYTES.get(), 8);
        assert_eq!(&first.await.unwrap()[..], b"aaaaaaaaa");
        assert_eq!(GATHERED_BYTES.get(), 0);
        assert_eq!(
            &with_budget(&[b"bbbb", b"bbbb"], false).await.unwrap()[..],
            b"bbbbbbbb"
        );
        assert_eq!(GATHERED_BYTES.get(), 0);
        // Started alone on its worker, a body is read past the budget (its route's limit
        // bounds it), even once another is read beside it; one that would pass the budget
        // beside it is refused.
        let mut large = with_budget(&[b"ddddd", b"ddd", b"dddddddd", b"d"], true);
        for _ in 0..10 {
            if GATHERED_BYTES.get() == 8 {
                break;
            }
            assert!(futures_util::poll!(&mut large).is_pending());
        }
        assert_eq!(GATHERED_BYTES.get(), 8);
        let mut beside = with_budget(&[b"ee", b"e", b"e"], true);
        for _ in 0..10 {
            if GATHERED_BYTES.get() == 11 {
                break;
            }
            assert!(futures_util::poll!(&mut beside).is_pending());
        }
        assert_eq!(GATHERED_BYTES.get(), 11, "a small one fits beside it");
        assert!(with_budget(&[b"ff", b"f"], false).await.is_err());
        assert_eq!(large.await.unwrap().len(), 17);
        assert_eq!(beside.await.unwrap().len(), 4);
        assert_eq!(GATHERED_BYTES.get(), 0);
    }

    /// A body waiting for more after its first chunk holds that chunk (actix's read may hand
    /// over a few hundred KiB at once): beside it, a body past the budget is refused.
    #[actix_web::test]
    async fn a_body_waiting_after_its_first_chunk_holds_it() {
        let with_budget = |chunks, waits| {
            let mut body = body_of(chunks, waits);
            body.in_flight_budget = 12;
            body.read(100)
        };
        let mut waiting = with_budget(&[b"aaaaaaaaa", b"a"], true);
        for _ in 0..10 {
            if GATHERED_BYTES.get() == 9 {
                break;
            }
            assert!(futures_util::poll!(&mut waiting).is_pending());
        }
        assert_eq!(GATHERED_BYTES.get(), 9);
        assert!(with_budget(&[b"bbbb", b"bbbb"], false).await.is_err());
        assert_eq!(&waiting.await.unwrap()[..], b"aaaaaaaaaa");
        assert_eq!(GATHERED_BYTES.get(), 0);
    }

    #[test]
    fn a_declared_length_is_reserved_only_up_to_a_bound_before_the_bytes_arrive() {
        let gathered_capacity = |declared: u64| {
            let mut arrived = Arrived::default();
            arrived.add(Bytes::from_static(b"{\"pa"), Some(declared));
            arrived.add(Bytes::from_static(b"rams\""), Some(declared));
            match arrived {
                Arrived::Gathered(body) => body.capacity(),
                _ => panic!("two chunks are gathered"),
            }
        };
        assert!(gathered_capacity(4 << 20) <= DECLARED_BYTES_RESERVED_AT_MOST);
        assert!(
            gathered_capacity(1000) >= 1000,
            "a small body is reserved whole"
        );
    }

    #[actix_web::test]
    async fn a_body_of_one_chunk_is_that_chunk_not_a_copy() {
        const CHUNK: &[u8] = b"{\"params\":{}}";
        let body = body_of(&[CHUNK], false).read(100).await.unwrap();
        assert_eq!(body.as_ptr(), CHUNK.as_ptr());
        let mut declared = body_of(&[b"{\"par", b"ams\":{}}"], false);
        declared.declared_len = Some(13);
        assert_eq!(&declared.read(100).await.unwrap()[..], CHUNK);
        assert_eq!(&body_of(&[], false).read(100).await.unwrap()[..], b"");
    }

    /// A value sent where another shape was expected may be a secret: the refusal names the
    /// field and what was expected, never the value.
    #[test]
    fn a_refused_body_names_the_field_not_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            value: String,
            version: u32,
        }
        let refusal = |body: &[u8]| parse_json_body::<Body>(body).unwrap_err().message;
        assert_eq!(
            refusal(br#"{"value": 987654321, "version": 1}"#),
            "invalid request body at `value`: invalid type: an integer, expected a string at line 1 column 19"
        );
        for not_an_object in [
            &br#""SENTINEL-1""#[..],
            br#" ["SENTINEL-1", 1]"#,
            b"5",
            b"null",
        ] {
            assert_eq!(
                refusal(not_an_object),
                "request body is not a JSON object; expected a JSON object"
            );
        }
        assert_eq!(
            refusal(br#"{"value": "v", "version": "SENTINEL-2"}"#),
            "invalid request body at `version`: invalid type: a string, expected u32 at line 1 column 38"
        );
    }

    /// A body that does not parse is refused for its encoding when it was sent with one other
    /// than identity; a body that parses is read whatever the header says.
    #[test]
    fn a_body_that_does_not_parse_is_refused_for_a_content_encoding_other_than_identity() {
        let sent_with = |encodings: &[&str]| {
            let mut request = actix_web::test::TestRequest::default();
            for encoding in encodings {
                request = request.append_header((CONTENT_ENCODING, *encoding));
            }
            request.to_http_request()
        };
        let refused = |encodings: &[&str]| {
            parse_json::<serde_json::Value>(&sent_with(encodings), b"\x1f\x8b\x08\x00")
                .unwrap_err()
                .kind
        };
        for encodings in [
            &["gzip"][..],
            &["br"],
            &["identity", "gzip"],
            &["gzip, identity"],
        ] {
            assert_eq!(
                refused(encodings),
                ErrorKind::UnsupportedMediaType,
                "{encodings:?}"
            );
        }
        for encodings in [&[][..], &["identity"], &["Identity "], &[""]] {
            assert_eq!(
                refused(encodings),
                ErrorKind::InvalidArgument,
                "{encodings:?}"
            );
        }
        let parsed: serde_json::Value = parse_json(&sent_with(&["gzip"]), b"{}").unwrap();
        assert_eq!(parsed, serde_json::json!({}));
    }

    #[test]
    fn content_length_reads_as_str_parse_does() {
        for text in [
            "0",
            "13",
            "+13",
            "++13",
            "-1",
            "",
            "+",
            " 13",
            "13 ",
            "1_3",
            "0013",
            "1e3",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
        ] {
            assert_eq!(
                content_length(text.as_bytes()),
                text.parse::<u64>().ok(),
                "{text:?}"
            );
        }
    }

    #[actix_web::test]
    async fn bodies_past_the_limit_are_refused_whether_there_at_once_or_in_pieces() {
        for waits in [false, true] {
            let refused = body_of(&[b"12345", b"67890"], waits).read(8).await;
            let error = refused.unwrap_err();
            assert_eq!(error.kind, ErrorKind::PayloadTooLarge);
            assert!(error.message.contains("8-byte limit"), "{}", error.message);
        }
    }
}
