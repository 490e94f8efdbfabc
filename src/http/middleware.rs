//! The one middleware around every request (`http::app` wraps the routes in it). In order:
//! observing (`observe`: a request id and a `request` span for the rest, one log line and the
//! metrics once answered, outermost so that it sees every answer), the start-up gate
//! (`readiness`: 503 for everything but the operations routes until start-up is done), and the
//! sharing of a chunked body (`body::ChunkedPayload`: one left unread ends its connection).
//!
//! One hand-written `Transform` rather than three `actix_web::middleware::from_fn` layers: each
//! of those boxed the rest of the chain as a service, boxed its future on every call and moved
//! the request through its own async state machine (~1.5k instructions a request between them).

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};

use super::body::ChunkedPayload;
use super::observe::Observed;
use super::readiness::{self, StartUp};
use super::AppState;

/// What the middleware needs of the state, taken once when the application is built (not from
/// the request's app data on every request).
pub struct Middleware {
    start_up: StartUp,
    /// How long an unread chunked body is held after the answer.
    body_read_timeout: Duration,
}

impl Middleware {
    pub fn new(state: &AppState) -> Middleware {
        Middleware {
            start_up: StartUp::clone(&state.start_up),
            body_read_timeout: state.limits.body_read_timeout,
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Middleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: Unpin,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = MiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<MiddlewareService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(MiddlewareService {
            service,
            start_up: StartUp::clone(&self.start_up),
            body_read_timeout: self.body_read_timeout,
        }))
    }
}

/// The middleware in front of the routes (`S`).
pub struct MiddlewareService<S> {
    service: S,
    start_up: StartUp,
    body_read_timeout: Duration,
}

impl<S, B> Service<ServiceRequest> for MiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: Unpin,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Answering<S::Future, B>;

    forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        let observed = Observed::start(&request);
        // In the span only: the call routes the request and makes the routes' future; actix
        // extracts and runs a handler (which reads the request id) when that future is polled.
        let stage = observed.in_span(|| {
            if readiness::refuses(&self.start_up, request.path()) {
                return Stage::Refused(readiness::refusal(request).map_into_right_body());
            }
            let chunked = ChunkedPayload::share(&mut request, self.body_read_timeout);
            Stage::Routed(self.service.call(request), chunked)
        });
        Answering { observed, stage }
    }
}

/// A request on its way through the middleware: routed to `F`, or refused at the gate.
pub struct Answering<F, B> {
    observed: Observed,
    stage: Stage<F, B>,
}

enum Stage<F, B> {
    /// The routes are answering; the body's payload is shared when it is chunked.
    Routed(F, Option<ChunkedPayload>),
    Refused(ServiceResponse<EitherBody<B>>),
    Done,
}

// No field is pinned: `F` is `Unpin`, and the rest is only ever moved out whole.
impl<F: Unpin, B> Unpin for Answering<F, B> {}

impl<F, B> Future for Answering<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + Unpin,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The routes are polled in place: moving the stage out and back in on every poll cost
        // a copy of it each way.
        let mut answered = if let Stage::Routed(routes, chunked) = &mut this.stage {
            let Poll::Ready(answered) = this.observed.within(|| Pin::new(routes).poll(cx)) else {
                return Poll::Pending;
            };
            if let Some(chunked) = chunked.take() {
                chunked.answered();
            }
            this.stage = Stage::Done;
            answered.map(ServiceResponse::map_into_left_body)
        } else {
            match std::mem::replace(&mut this.stage, Stage::Done) {
                Stage::Refused(refusal) => Ok(refusal),
                Stage::Routed(..) | Stage::Done => {
                    panic!("a request's answer polled after it was given")
                }
            }
        };
        this.observed.answered(&mut answered);
        Poll::Ready(answered)
    }
}

impl<F, B> Drop for Answering<F, B> {
    /// The routes' future of a request dropped before its answer (the client went away) is
    /// dropped in the request's span, as it runs.
    fn drop(&mut self) {
        if let Stage::Routed(..) = self.stage {
            let stage = std::mem::replace(&mut self.stage, Stage::Done);
            self.observed.within(|| drop(stage));
        }
    }
}
