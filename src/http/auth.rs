//! Authentication extractors: `Caller` (any valid key) and `Admin` (`account_type=admin`). A
//! handler that takes one cannot run for an unauthenticated request, and since actix resolves
//! extractors in argument order and they come first, a refused caller is answered before a byte
//! of the body is read. `E` is the route's API family's error shape; an `Admin`'s `K` is where
//! the family's requests carry the key (the `Authorization` header; Tinybird's `?token=`).

use std::borrow::Cow;
use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest, ResponseError};

use super::error::ApiError;
use super::served::Repo;
use super::AppState;
use crate::iam::{AuthError, Permission, Principal};
use crate::registry::Registry;

/// The authenticated principal of a request.
#[derive(Debug)]
pub struct Caller<E = ApiError>(pub Arc<Principal>, PhantomData<fn() -> E>);

/// A workspace permission, named by a type so that a route states it in its signature.
pub trait WorkspacePermission {
    fn on(workspace: &str) -> Permission<'_>;
}

/// GetFeatures and GetFeaturesBatch: consumer.
#[derive(Debug)]
pub struct ReadFeatures;

impl WorkspacePermission for ReadFeatures {
    fn on(workspace: &str) -> Permission<'_> {
        Permission::ReadFeatures(workspace)
    }
}

/// Metadata, service state, dry-run ingest: viewer.
#[derive(Debug)]
pub struct ReadMetadata;

impl WorkspacePermission for ReadMetadata {
    fn on(workspace: &str) -> Permission<'_> {
        Permission::ReadMetadata(workspace)
    }
}

/// A caller holding `P`, checked before the body is read: on the path's `{workspace}` when the
/// route has one; otherwise, since the body names the workspace, on at least one workspace (no
/// body could be allowed without), and the handler checks the named one once it has read it.
#[derive(Debug)]
pub struct Allowed<P, E = ApiError>(pub Caller<E>, PhantomData<fn() -> P>);

impl<P, E> std::ops::Deref for Allowed<P, E> {
    type Target = Caller<E>;

    fn deref(&self) -> &Caller<E> {
        &self.0
    }
}

/// An authenticated admin: the permission every SCIM, `/admin` and Tinybird route needs.
#[derive(Debug)]
pub struct Admin<E = ApiError, K = AuthorizationHeader>(
    pub Arc<Principal>,
    PhantomData<fn() -> (E, K)>,
);

/// Where an API family's requests carry the key.
pub trait KeySource {
    /// The `Authorization`-style value (`Bearer <key>`, `Tecton-key <key>`), if any: borrowed
    /// from the header when it is one (no copy of the key on every request).
    fn credential(request: &HttpRequest) -> Result<Option<Cow<'_, str>>, AuthError>;
}

/// The `Authorization` header: every family but Tinybird.
#[derive(Debug)]
pub struct AuthorizationHeader;

impl KeySource for AuthorizationHeader {
    fn credential(request: &HttpRequest) -> Result<Option<Cow<'_, str>>, AuthError> {
        let header = request.headers().get(AUTHORIZATION);
        let text = header.map(|value| value.to_str().map_err(|_| AuthError::Malformed));
        Ok(text.transpose()?.map(Cow::Borrowed))
    }
}

/// Tinybird's `?token=` (what its CLIs send) when it is not empty, else the `Authorization`
/// header: an empty `?token=` does not shadow the header.
#[derive(Debug)]
pub struct TokenParameter;

impl KeySource for TokenParameter {
    fn credential(request: &HttpRequest) -> Result<Option<Cow<'_, str>>, AuthError> {
        let token = form_urlencoded::parse(request.query_string().as_bytes())
            .find(|(name, value)| name == "token" && !value.is_empty());
        match token {
            Some((_, token)) => Ok(Some(Cow::Owned(format!("Bearer {token}")))),
            None => AuthorizationHeader::credential(request),
        }
    }
}

impl<E: From<AuthError>> Caller<E> {
    /// Checks a permission (403 in the family's shape).
    pub fn require(&self, permission: Permission) -> Result<(), E> {
        self.0.require(permission).map_err(E::from)
    }

    /// `permission` on at least one workspace.
    fn require_on_some_workspace(
        &self,
        registry: &Registry,
        permission: fn(&str) -> Permission,
    ) -> Result<(), E> {
        let mut refusal = None;
        for workspace in registry.workspaces() {
            match self.0.require(permission(&workspace.name)) {
                Ok(()) => return Ok(()),
                Err(error) => refusal = refusal.or(Some(error)),
            }
        }
        refusal.map_or(Ok(()), |error| Err(E::from(error)))
    }
}

/// The state `http::app` registers.
fn state_of(request: &HttpRequest) -> &AppState {
    request
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered by http::app")
}

/// Authenticates the key a request carries where `K` says, against the directory's index.
fn authenticate<K: KeySource>(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Arc<Principal>, AuthError> {
    let credential = K::credential(request)?;
    state.directory.authenticate(credential.as_deref())
}

impl<E: From<AuthError> + ResponseError + 'static> FromRequest for Caller<E> {
    type Error = E;
    type Future = Ready<Result<Caller<E>, E>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authenticate::<AuthorizationHeader>(request, state_of(request))
                .map(|principal| Caller(principal, PhantomData))
                .map_err(E::from),
        )
    }
}

impl<E, K> FromRequest for Admin<E, K>
where
    E: From<AuthError> + ResponseError + 'static,
    K: KeySource,
{
    type Error = E;
    type Future = Ready<Result<Admin<E, K>, E>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let admitted = authenticate::<K>(request, state_of(request)).and_then(|principal| {
            principal.require(Permission::Admin)?;
            Ok(Admin(principal, PhantomData))
        });
        ready(admitted.map_err(E::from))
    }
}

impl<P, E> FromRequest for Allowed<P, E>
where
    P: WorkspacePermission,
    E: From<AuthError> + ResponseError + 'static,
{
    type Error = E;
    type Future = Ready<Result<Allowed<P, E>, E>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(request);
        ready(Allowed::check(
            request,
            state,
            &Repo::current(state).registry,
        ))
    }
}

impl<P, E> Allowed<P, E>
where
    P: WorkspacePermission,
    E: From<AuthError>,
{
    /// The caller of `request`, if it holds `P` (see the type). `registry` lists the
    /// workspaces for a path that names none: the caller's snapshot of the served repository
    /// (an extractor that holds one already passes it: looking the state and the repository
    /// up again cost ~250 instructions a GetFeatures request).
    pub fn check(
        request: &HttpRequest,
        state: &AppState,
        registry: &Registry,
    ) -> Result<Allowed<P, E>, E> {
        Allowed::check_on(
            request,
            state,
            registry,
            request.match_info().get("workspace"),
        )
    }

    /// [`Allowed::check`] on the path's `workspace`, given: for a request served without
    /// actix's router, which fills the path's names in.
    pub fn check_on(
        request: &HttpRequest,
        state: &AppState,
        registry: &Registry,
        workspace: Option<&str>,
    ) -> Result<Allowed<P, E>, E> {
        let caller: Caller<E> = Caller(
            authenticate::<AuthorizationHeader>(request, state)?,
            PhantomData,
        );
        match workspace {
            Some(workspace) => caller.require(P::on(workspace))?,
            None => caller.require_on_some_workspace(registry, P::on)?,
        }
        Ok(Allowed(caller, PhantomData))
    }
}
