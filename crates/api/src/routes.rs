//! The route table: one list drives both what the app serves and what the openapi
//! test compares against openapi.yaml, so the two cannot drift apart silently.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, Route, guard, web};

use crate::handlers;
use crate::request_id::named;

/// One served operation: a method on a path, and its handler.
pub struct ApiRoute {
    /// The HTTP method.
    pub method: Method,
    /// The path template as written in openapi.yaml.
    pub path: &'static str,
    /// The pattern actix matches, when it differs from `path`.
    pattern: Option<&'static str>,
    route: Route,
}

impl ApiRoute {
    fn new<F, Args>(method: Method, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Self {
            route: web::method(method.clone()).to(handler),
            method,
            path,
            pattern: None,
        }
    }

    /// A route whose `{name}` matches slashes too (`/secrets/team/db`): served on
    /// `pattern`, documented as `path`.
    fn spanning<F, Args>(
        method: Method,
        path: &'static str,
        pattern: &'static str,
        handler: F,
    ) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Self {
            pattern: Some(pattern),
            ..Self::new(method, path, handler)
        }
    }
}

/// `POST /secrets/{name}/undelete`: only a POST whose path ends in `/undelete`
/// restores a secret. Any other method on such a path addresses the secret
/// literally named `…/undelete`, so this resource yields to `/secrets/{name}`.
const UNDELETE: &str = "/secrets/{name}/undelete";

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
        // Before `/secrets/{name}`, whose pattern also matches `…/undelete`.
        ApiRoute::spanning(
            Method::POST,
            UNDELETE,
            "/secrets/{name:.*}/undelete",
            handlers::undelete_secret,
        ),
        ApiRoute::spanning(
            Method::GET,
            "/secrets/{name}",
            "/secrets/{name:.*}",
            handlers::get_vault_secret,
        ),
        ApiRoute::spanning(
            Method::PUT,
            "/secrets/{name}",
            "/secrets/{name:.*}",
            handlers::put_secret,
        ),
        ApiRoute::spanning(
            Method::DELETE,
            "/secrets/{name}",
            "/secrets/{name:.*}",
            handlers::delete_secret,
        ),
    ]
}

/// Registers every route, grouped by path, each path answering 405 (with `Allow`)
/// to the methods it does not take.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<(&'static str, Vec<ApiRoute>)> = Vec::new();
    for route in api_routes() {
        match paths.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, routes)) => routes.push(route),
            None => paths.push((route.path, vec![route])),
        }
    }
    for (path, routes) in paths {
        let pattern = routes[0].pattern.unwrap_or(path);
        let allow = routes
            .iter()
            .map(|route| route.method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(pattern);
        if path == UNDELETE {
            resource = resource.guard(guard::Post());
        }
        let resource = routes
            .into_iter()
            .fold(resource, |resource, route| resource.route(route.route))
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move { Err::<actix_web::HttpResponse, _>(handlers::method_not_allowed(allow)) }
            }));
        // The documented template, not the pattern, is the route's name in
        // metrics and logs.
        cfg.service(named(resource, path));
    }
}
