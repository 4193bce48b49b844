//! `bench-baseline [--port N] [--workers N]`: a minimal actix-web 4 server on
//! 127.0.0.1 answering `GET /get_secret` with a fixed JSON body and nothing else
//! (no authentication, database, cryptography, logging or middleware). Workers
//! default to the number of cores, as safebox's do.

use std::process::ExitCode;

use actix_web::http::header::ContentType;
use actix_web::{App, HttpResponse, HttpServer, web};
use safebox_bench::{BASELINE_BODY, cores, flag};

async fn get_secret() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(BASELINE_BODY)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let settings = flag(&args, "--port", 49_998_u16)
        .and_then(|port| Ok((port, flag(&args, "--workers", cores())?)));
    let (port, workers) = match settings {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("bench-baseline: {message}");
            return ExitCode::from(2);
        }
    };
    let served = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| App::new().route("/get_secret", web::get().to(get_secret)))
            .workers(workers)
            .bind(("127.0.0.1", port))?
            .run();
        eprintln!("bench-baseline listening on 127.0.0.1:{port} with {workers} workers");
        server.await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-baseline: {err}");
            ExitCode::FAILURE
        }
    }
}
