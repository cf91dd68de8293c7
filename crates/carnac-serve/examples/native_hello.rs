//! The ceiling for `carnac serve` benchmarks: a native hyper hello world on the
//! same runtime setup (tokio multi-thread, HTTP/1), with no WebAssembly at all.
//!
//!     cargo run --release -p carnac-serve --example native_hello -- 127.0.0.1:8090
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".into());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        eprintln!("native hello on http://{addr}");
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"hello from native\n")));
                    r.headers_mut().insert("content-type", "text/plain".parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
