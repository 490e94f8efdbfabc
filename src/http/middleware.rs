//! The one middleware around every request (`http::app` wraps the routes in it). In order:
//! observing (`observe`: a request id and a `request` span for the rest, one log line and the
//! metrics once answered, outermost so that it sees every answer), the start-up gate
//! (`readiness`: 503 for everything but the operations routes until start-up is done), and the
//! sharing of a chunked body (`body::ChunkedPayload`: one left unread ends its connection).
//! On the API address it then serves GetFeatures itself (`routes::feature_service::
//! feature_route`): actix's router boxes whatever a route answers through it, two boxes a
//! request, so the hot path is taken before the router, its future held in `Answering`.
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
use actix_web::web;

use super::body::ChunkedPayload;
use super::observe::Observed;
use super::readiness::{self, StartUp};
use super::routes::feature_service::{feature_route, serve_features, FeatureServing};
use super::AppState;

/// What the middleware needs of the state, taken once when the application is built (not from
/// the request's app data on every request).
pub struct Middleware {
    start_up: StartUp,
    /// How long an unread chunked body is held after the answer.
    body_read_timeout: Duration,
    /// The state GetFeatures is served with, on the address that serves it (`None`: the
    /// metrics address).
    feature_service: Option<web::Data<AppState>>,
}

impl Middleware {
    /// The middleware of an address; `serves_features` when it serves the Feature Service.
    pub fn new(state: &AppState, serves_features: bool) -> Middleware {
        Middleware {
            start_up: StartUp::clone(&state.start_up),
            body_read_timeout: state.limits.body_read_timeout,
            feature_service: serves_features.then(|| web::Data::new(state.clone())),
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
            feature_service: self.feature_service.clone(),
        }))
    }
}

/// The middleware in front of the routes (`S`).
pub struct MiddlewareService<S> {
    service: S,
    start_up: StartUp,
    body_read_timeout: Duration,
    feature_service: Option<web::Data<AppState>>,
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
            let served = self.feature_service.as_ref().and_then(|state| {
                let route = feature_route(&request)?;
                Some((state, route))
            });
            let answer = match served {
                Some((state, route)) => Answer::FeatureService(
                    route.pattern,
                    serve_features(
                        route,
                        request,
                        state,
                        observed.request_id(),
                        observed.started(),
                    ),
                ),
                None => Answer::Routes(self.service.call(request)),
            };
            Stage::Answering(answer, chunked)
        });
        Answering { observed, stage }
    }
}

/// A request on its way through the middleware: answered (by the routes `F` or by the
/// Feature Service's own future), or refused at the gate.
pub struct Answering<F, B> {
    observed: Observed,
    stage: Stage<F, B>,
}

enum Stage<F, B> {
    /// The request is being answered; the body's payload is shared when it is chunked.
    Answering(Answer<F>, Option<ChunkedPayload>),
    Refused(ServiceResponse<EitherBody<B>>),
    Done,
}

/// Who answers a request.
#[expect(
    clippy::large_enum_variant,
    reason = "GetFeatures' future is held unboxed on purpose: boxing it is the cost avoided"
)]
enum Answer<F> {
    /// The routes, through actix's router.
    Routes(F),
    /// GetFeatures on the route of this pattern, served without the router.
    FeatureService(&'static str, FeatureServing),
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
        // The answer is polled in place: moving the stage out and back in on every poll cost
        // a copy of it each way.
        let (mut answered, route) = if let Stage::Answering(answer, chunked) = &mut this.stage {
            let polled = match answer {
                Answer::Routes(routes) => this
                    .observed
                    .within(|| Pin::new(routes).poll(cx))
                    .map(|answered| (answered.map(ServiceResponse::map_into_left_body), None)),
                // Given its request id, it reads none from the scope.
                Answer::FeatureService(pattern, served) => this
                    .observed
                    .in_span(|| Pin::new(served).poll(cx))
                    .map(|answered| (Ok(answered.map_into_right_body()), Some(*pattern))),
            };
            let Poll::Ready(answered) = polled else {
                return Poll::Pending;
            };
            if let Some(chunked) = chunked.take() {
                chunked.answered();
            }
            this.stage = Stage::Done;
            answered
        } else {
            match std::mem::replace(&mut this.stage, Stage::Done) {
                Stage::Refused(refusal) => (Ok(refusal), None),
                Stage::Answering(..) | Stage::Done => {
                    panic!("a request's answer polled after it was given")
                }
            }
        };
        this.observed.answered(&mut answered, route);
        Poll::Ready(answered)
    }
}

impl<F, B> Drop for Answering<F, B> {
    /// The routes' future of a request dropped before its answer (the client went away) is
    /// dropped in the request's span, as it runs.
    fn drop(&mut self) {
        if let Stage::Answering(..) = self.stage {
            let stage = std::mem::replace(&mut self.stage, Stage::Done);
            self.observed.within(|| drop(stage));
        }
    }
}
