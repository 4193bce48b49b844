//! A TCP proxy between safebox and a service (MySQL, Redis) that a test can
//! break: take the service down, freeze it, and bring it back, without touching
//! the real server other tests share.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FORWARD: u8 = 0;
/// New connections are closed at once and open ones are cut, as when the
/// server process has stopped.
const DOWN: u8 = 1;
/// Connections stay open but nothing is passed on, either way, as when the
/// server is frozen or the network drops every packet.
const STALL: u8 = 2;

pub struct FaultyProxy {
    port: u16,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl FaultyProxy {
    /// Starts forwarding a local port to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream.parse().expect("an IP:port upstream");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (accept_mode, accept_open) = (Arc::clone(&mode), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (mode, open) = (Arc::clone(&accept_mode), Arc::clone(&accept_open));
                std::thread::spawn(move || serve(client, upstream, &mode, &open));
            }
        });
        Self { port, mode, open }
    }

    /// The port to connect to instead of the service's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the service: cuts every open connection and closes new ones.
    pub fn down(&self) {
        self.mode.store(DOWN, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Freezes the service: connections stay open, nothing gets through.
    pub fn stall(&self) {
        self.mode.store(STALL, Ordering::SeqCst);
    }

    /// Brings the service back.
    pub fn restore(&self) {
        self.mode.store(FORWARD, Ordering::SeqCst);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.down();
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, mode: &AtomicU8, open: &Mutex<Vec<TcpStream>>) {
    // A new connection waits while the service is frozen, and is closed while
    // it is down.
    while mode.load(Ordering::SeqCst) == STALL {
        std::thread::sleep(Duration::from_millis(10));
    }
    if mode.load(Ordering::SeqCst) == DOWN {
        return;
    }
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
        return;
    };
    {
        let mut open = open.lock().unwrap();
        for stream in [&client, &server] {
            if let Ok(clone) = stream.try_clone() {
                open.push(clone);
            }
        }
    }
    let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::scope(|scope| {
        scope.spawn(|| pump(client_reader, &server, mode));
        pump(server_reader, &client, mode);
    });
}

/// Copies `from` to `to` until either closes or the service goes down; while
/// frozen, reads nothing.
fn pump(mut from: TcpStream, mut to: &TcpStream, mode: &AtomicU8) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        match mode.load(Ordering::SeqCst) {
            DOWN => break,
            STALL => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            _ => {}
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
