//! The route table: one list drives both what the app serves and what the openapi
//! test compares against openapi.yaml, so the two cannot drift apart silently.
//!
//! Most routes are actix resources. The vault's routes under `/secrets/` are not:
//! their `{name}` spans slashes (`/secrets/team/db`), which an actix pattern can
//! only match with a regular expression, run (with an allocation for its
//! captures) on every request that reaches it, and, in the order routes are
//! tried, on every request for a route after it. They are served instead by one
//! service at the static prefix `/secrets` ([`VaultTree`]), which takes the
//! route from the method and a suffix, and the name from the rest of the path.

use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::{
    AppService, HttpServiceFactory, Payload, ResourceDef, ServiceRequest, ServiceResponse,
    fn_service,
};
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, Route, web};
use futures_util::future::LocalBoxFuture;

use crate::handlers;
use crate::request_id::{name_route, named};

/// One served operation: a method on a path, and its handler.
pub struct ApiRoute {
    /// The HTTP method.
    pub method: Method,
    /// The path template as written in openapi.yaml.
    pub path: &'static str,
    serve: Serve,
}

/// How an [`ApiRoute`] is served.
enum Serve {
    /// As an actix resource at its path.
    Resource(Route),
    /// By [`VaultTree`].
    Vault(VaultHandler),
}

/// A vault route's handler, called with the request once [`VaultTree`] has
/// chosen it.
type VaultHandler = Rc<dyn Fn(HttpRequest, Payload) -> LocalBoxFuture<'static, HttpResponse>>;

impl ApiRoute {
    fn new<F, Args>(method: Method, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Self {
            serve: Serve::Resource(web::method(method.clone()).to(handler)),
            method,
            path,
        }
    }

    /// A route under `/secrets/` whose `{name}` spans slashes, served by
    /// [`VaultTree`]. The handler reads the name with
    /// [`crate::extract::SecretPath`].
    fn vault<F, Args>(method: Method, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let handler: VaultHandler =
            Rc::new(move |req, payload| Box::pin(call(handler.clone(), req, payload)));
        Self {
            serve: Serve::Vault(handler),
            method,
            path,
        }
    }
}

/// Extracts `handler`'s arguments from the request and answers with its result,
/// as an actix route does.
async fn call<F, Args>(handler: F, req: HttpRequest, mut payload: Payload) -> HttpResponse
where
    F: Handler<Args>,
    Args: FromRequest,
    F::Output: Responder,
{
    match Args::from_request(&req, &mut payload).await {
        Ok(args) => handler
            .call(args)
            .await
            .respond_to(&req)
            .map_into_boxed_body(),
        Err(err) => HttpResponse::from_error(err),
    }
}

/// `POST /secrets/{name}/undelete`: only a POST whose path ends in `/undelete`
/// restores a secret. Any other method on such a path addresses the secret
/// literally named `…/undelete` through `/secrets/{name}`.
const UNDELETE: &str = "/secrets/{name}/undelete";

/// `GET|PUT|DELETE /secrets/{name}`.
const SECRET: &str = "/secrets/{name}";

/// The prefix [`VaultTree`] serves.
const VAULT_PREFIX: &str = "/secrets";

/// What a path under `/secrets` addresses, for a request with `method`: the
/// route template and the name as it is in the path (still percent-encoded).
/// `rest` is what follows `/secrets`; `None` when it is not `/` and a name.
pub(crate) fn vault_target<'a>(rest: &'a str, method: &Method) -> Option<(&'static str, &'a str)> {
    let name = rest.strip_prefix('/')?;
    match name.strip_suffix("/undelete") {
        Some(name) if method == Method::POST => Some((UNDELETE, name)),
        _ => Some((SECRET, name)),
    }
}

/// Every operation safebox serves.
pub fn api_routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(Method::GET, "/", handlers::home),
        ApiRoute::new(Method::POST, "/register", handlers::register),
        ApiRoute::new(Method::POST, "/login", handlers::login),
        ApiRoute::new(Method::POST, "/set_secret", handlers::set_secret),
        ApiRoute::new(Method::GET, "/get_secret", handlers::get_secret),
        ApiRoute::new(Method::POST, "/user", handlers::sign_up),
        ApiRoute::new(Method::GET, "/user/{username}", handlers::get_user),
        ApiRoute::new(Method::PUT, "/user/{username}", handlers::put_user),
        ApiRoute::new(Method::DELETE, "/user/{username}", handlers::delete_user),
        ApiRoute::new(Method::PUT, "/password", handlers::change_password),
        ApiRoute::new(Method::POST, "/auth", handlers::login),
        ApiRoute::new(Method::DELETE, "/auth", handlers::logout),
        ApiRoute::new(Method::POST, "/logout", handlers::logout),
        ApiRoute::new(Method::POST, "/token/refresh", handlers::refresh),
        ApiRoute::new(Method::GET, "/sessions", handlers::list_sessions),
        ApiRoute::new(Method::POST, "/sessions", handlers::cookie_login),
        ApiRoute::new(Method::DELETE, "/sessions", handlers::logout),
        ApiRoute::new(Method::DELETE, "/sessions/{id}", handlers::end_session),
        ApiRoute::new(Method::GET, "/profile", handlers::profile),
        ApiRoute::new(Method::GET, "/audit", handlers::list_audit),
        ApiRoute::new(Method::GET, "/secrets", handlers::list_secrets),
        ApiRoute::vault(Method::POST, UNDELETE, handlers::undelete_secret),
        ApiRoute::vault(Method::GET, SECRET, handlers::get_vault_secret),
        ApiRoute::vault(Method::PUT, SECRET, handlers::put_secret),
        ApiRoute::vault(Method::DELETE, SECRET, handlers::delete_secret),
    ]
}

/// Registers every route: the actix resources grouped by path, each path
/// answering 405 (with `Allow`) to the methods it does not take, then the
/// vault's routes under `/secrets/` ([`VaultTree`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<(&'static str, Vec<ApiRoute>)> = Vec::new();
    for route in api_routes() {
        match paths.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, routes)) => routes.push(route),
            None => paths.push((route.path, vec![route])),
        }
    }
    let (mut fixed, mut patterns, mut vault) = (Vec::new(), Vec::new(), Vec::new());
    for (path, routes) in paths {
        let allow = routes
            .iter()
            .map(|route| route.method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path);
        let mut handlers = Vec::new();
        for route in routes {
            match route.serve {
                Serve::Resource(served) => resource = resource.route(served),
                Serve::Vault(handler) => handlers.push((route.method, handler)),
            }
        }
        // A path is either the tree's or a resource, never both (see the
        // tests below).
        if !handlers.is_empty() {
            vault.push(VaultPath {
                template: path,
                allow,
                handlers,
            });
            continue;
        }
        let resource = resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(handlers::method_not_allowed(allow)) }
        }));
        // The documented template is the route's name in metrics and logs.
        let resource = named(resource, path);
        if path.contains('{') {
            patterns.push(resource);
        } else {
            fixed.push(resource);
        }
    }
    // A request tries the routes in the order they are registered, and each
    // pattern it tries (`/user/{username}`) costs a regex search and an
    // allocation. So: the static paths, then the vault's prefix (after the
    // resource `/secrets`, which the prefix also matches), then the patterns.
    // No two of them match the same path, so the order changes no answer. The
    // prefix takes every path below `/secrets/`, whatever the method: no other
    // route, here or registered after (docs, probes), may live there.
    for resource in fixed {
        cfg.service(resource);
    }
    cfg.service(VaultTree(Rc::new(vault)));
    for resource in patterns {
        cfg.service(resource);
    }
}

/// The vault's routes under `/secrets/`, served at that static prefix without a
/// regular expression: the method and an `/undelete` suffix choose the route
/// ([`vault_target`]), and the handlers read the name from the rest of the path
/// ([`crate::extract::SecretPath`]). It answers as the actix resources would:
/// 405 with `Allow` for a method its path does not take, and the documented
/// template as the route's name in metrics and logs.
struct VaultTree(Rc<Vec<VaultPath>>);

/// One template under `/secrets/` and the routes on it.
struct VaultPath {
    template: &'static str,
    /// Its methods, as `Allow` lists them.
    allow: String,
    handlers: Vec<(Method, VaultHandler)>,
}

impl HttpServiceFactory for VaultTree {
    fn register(self, config: &mut AppService) {
        let routes = self.0;
        let service = fn_service(move |req: ServiceRequest| {
            let routes = Rc::clone(&routes);
            async move { Ok::<_, actix_web::Error>(serve_vault(&routes, req).await) }
        });
        config.register_service(ResourceDef::prefix(VAULT_PREFIX), None, service, None);
    }
}

async fn serve_vault(paths: &[VaultPath], req: ServiceRequest) -> ServiceResponse<BoxBody> {
    let (req, payload) = req.into_parts();
    let Some((template, _)) = vault_target(req.match_info().unprocessed(), req.method()) else {
        // Only `/secrets` itself, which its own resource serves first.
        return ServiceResponse::new(req, HttpResponse::from_error(handlers::unserved()));
    };
    name_route(&req, template);
    let path = paths.iter().find(|path| path.template == template);
    let handler = path.and_then(|path| {
        path.handlers
            .iter()
            .find(|(method, _)| method == req.method())
    });
    let response = match handler {
        Some((_, handler)) => handler(req.clone(), payload).await,
        None => {
            let allow = path.map(|path| path.allow.clone()).unwrap_or_default();
            HttpResponse::from_error(handlers::method_not_allowed(allow))
        }
    };
    ServiceResponse::new(req, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_paths_name_their_route_and_raw_name() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(vault_target("/a/b", &get), Some((SECRET, "a/b")));
        assert_eq!(vault_target("/a/undelete", &post), Some((UNDELETE, "a")));
        assert_eq!(
            vault_target("/a/undelete", &get),
            Some((SECRET, "a/undelete"))
        );
        let patch = Method::PATCH;
        assert_eq!(
            vault_target("/a/undelete", &patch),
            Some((SECRET, "a/undelete"))
        );
        assert_eq!(vault_target("//undelete", &post), Some((UNDELETE, "")));
        assert_eq!(vault_target("/undelete", &post), Some((SECRET, "undelete")));
        assert_eq!(
            vault_target("/a%2Fundelete", &post),
            Some((SECRET, "a%2Fundelete"))
        );
        assert_eq!(vault_target("/", &get), Some((SECRET, "")));
        assert_eq!(vault_target("", &get), None);
    }

    #[test]
    fn every_vault_route_is_served_by_the_tree_and_no_other() {
        for route in api_routes() {
            let under_secrets = route.path.starts_with("/secrets/");
            assert_eq!(
                matches!(route.serve, Serve::Vault(_)),
                under_secrets,
                "{} {}",
                route.method,
                route.path
            );
            // The tree reaches only the templates `vault_target` names.
            if under_secrets {
                assert!(
                    [SECRET, UNDELETE].contains(&route.path),
                    "{} {} cannot be reached",
                    route.method,
                    route.path
                );
            }
        }
    }
}
