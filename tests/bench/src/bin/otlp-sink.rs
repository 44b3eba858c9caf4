//! An OTLP collector that receives traces and metrics over gRPC and counts them, for the
//! benchmark that measures mxrep with telemetry on (it runs inside the bed's network).
//! `otlp-sink --listen 192.0.2.51:4317`; prints what it received every 10 s.

use mxrep_tests::otlp_sink::OtlpSink;
use std::time::Duration;

#[derive(clap::Parser)]
struct Opts {
    /// Address to receive OTLP/gRPC on.
    #[arg(long)]
    listen: std::net::SocketAddr,
}

fn main() {
    let Opts { listen } = clap::Parser::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    let sink = OtlpSink::default();
    let counting = sink.clone();
    rt.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (spans, metrics) = counting.counts();
            println!("received {spans} spans, {metrics} metric data sets");
        }
    });
    if let Err(e) = rt.block_on(sink.serve(listener)) {
        eprintln!("otlp-sink: {e}");
        std::process::exit(1);
    }
}
