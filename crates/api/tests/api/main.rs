//! Black-box tests: each test starts the real application on a free port with its
//! own fresh database (SQLite; MySQL and Redis in `scale_out`) and data dir, and
//! drives it over HTTP.
//!
//! Set `TEST_LOG=1` to see the server's logs.

mod helpers;

mod accounts;
mod attacks;
mod audit;
mod cookies;
mod docs_ui;
mod login;
mod openapi;
mod ops;
mod read_cache;
mod register;
mod scale_out;
mod secrets;
mod sessions;
mod storage;
mod tls;
mod vault;
