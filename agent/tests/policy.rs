//! The policy service over real sockets: persistent connections with many requests, requests
//! arriving in pieces, malformed and oversized requests (that connection closes, the others go
//! on), and 100 connections at once. Requests are the attribute sets real Postfix 3.7 sent.

use mxrep_agent::enforce::view::{BanView, Known, Refusal};
use mxrep_agent::sources::policy_server::{PolicyService, MAX_REQUEST};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn real_requests() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/postfix-3.7-policy-requests.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("sample policy requests");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut req = String::new();
            for (k, val) in v["attrs"].as_object().unwrap() {
                req.push_str(&format!("{k}={}\n", val.as_str().unwrap()));
            }
            req.push('\n');
            req
        })
        .collect()
}

fn with_client(req: &str, addr: &str) -> String {
    req.lines()
        .map(|l| {
            if l.starts_with("client_address=") {
                format!("client_address={addr}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn start() -> String {
    let view = BanView::default();
    view.insert(
        "203.0.113.0/24".parse().unwrap(),
        Known {
            expires_ms: i64::MAX,
            reason: "rotating spammer".into(),
            refusal: Refusal::Drop,
        },
    );
    view.insert(
        "192.0.2.99/32".parse().unwrap(),
        Known {
            expires_ms: i64::MAX / 2,
            reason: "Service unavailable; client [192.0.2.99] blocked using zen.example".into(),
            refusal: Refusal::Drop,
        },
    );
    view.insert(
        "198.51.100.66/32".parse().unwrap(),
        Known {
            expires_ms: i64::MAX / 2,
            reason: "9 bad connections (not mail) in 1 min".into(),
            refusal: Refusal::Tempfail,
        },
    );
    let svc = PolicyService {
        view,
        uplink: None,
        greylist: None,
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(svc.serve(l));
    addr
}

async fn ask(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut action = String::new();
    tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut action))
        .await
        .unwrap()
        .unwrap();
    let mut blank = String::new();
    r.read_line(&mut blank).await.unwrap();
    assert_eq!(blank, "\n");
    action.trim_end().to_string()
}

async fn closed(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), r.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn persistent_connection_many_requests_and_bans_answered_from_memory() {
    let addr = start().await;
    let reqs = real_requests();
    let (r, mut w) = TcpStream::connect(&addr).await.unwrap().into_split();
    let mut r = BufReader::new(r);
    for i in 0..200 {
        let req = &reqs[i % reqs.len()];
        w.write_all(req.as_bytes()).await.unwrap();
        assert_eq!(ask(&mut r).await, "action=DUNNO");
    }
    w.write_all(with_client(&reqs[0], "203.0.113.77").as_bytes())
        .await
        .unwrap();
    let a = ask(&mut r).await;
    assert!(
        a.starts_with("action=REJECT ")
            && a.contains("203.0.113.0/24")
            && a.contains("rotating spammer"),
        "{a}"
    );
    w.write_all(with_client(&reqs[0], "192.0.2.99").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        ask(&mut r).await,
        "action=REJECT 5.7.1 Service unavailable; client [192.0.2.99] blocked using zen.example"
    );
    w.write_all(with_client(&reqs[0], "198.51.100.66").as_bytes())
        .await
        .unwrap();
    let a = ask(&mut r).await;
    assert!(
        a.starts_with("action=DEFER_IF_PERMIT 4.7.1 ") && a.contains("try again in"),
        "a temporary refusal is a 450, not a reject: {a}"
    );
    w.write_all(with_client(&reqs[0], "2001:db8::1").as_bytes())
        .await
        .unwrap();
    assert_eq!(ask(&mut r).await, "action=DUNNO");
}

#[tokio::test]
async fn requests_in_pieces_are_assembled() {
    let addr = start().await;
    let req = real_requests().remove(0);
    let (r, mut w) = TcpStream::connect(&addr).await.unwrap().into_split();
    let mut r = BufReader::new(r);
    for chunk in req.as_bytes().chunks(7) {
        w.write_all(chunk).await.unwrap();
        w.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(ask(&mut r).await, "action=DUNNO");
}

#[tokio::test]
async fn malformed_and_oversized_requests_close_only_their_connection() {
    let addr = start().await;
    let good = real_requests().remove(0);
    let (r0, mut w0) = TcpStream::connect(&addr).await.unwrap().into_split();
    let mut r0 = BufReader::new(r0);

    let (r, mut w) = TcpStream::connect(&addr).await.unwrap().into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"request=smtpd_access_policy\nthis line has no equals sign\n\n")
        .await
        .unwrap();
    assert!(
        closed(&mut r).await,
        "a malformed request must close its connection"
    );

    let (r, mut w) = TcpStream::connect(&addr).await.unwrap().into_split();
    let mut r = BufReader::new(r);
    let big = format!(
        "request=smtpd_access_policy\nsender={}\n\n",
        "x".repeat(MAX_REQUEST)
    );
    let _ = w.write_all(big.as_bytes()).await;
    assert!(
        closed(&mut r).await,
        "an oversized request must close its connection"
    );

    // The first connection is unaffected.
    w0.write_all(good.as_bytes()).await.unwrap();
    assert_eq!(ask(&mut r0).await, "action=DUNNO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_connections_at_once() {
    let addr = start().await;
    let req = with_client(&real_requests().remove(0), "203.0.113.9");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let addr = addr.clone();
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let (r, mut w) = TcpStream::connect(&addr).await.unwrap().into_split();
            let mut r = BufReader::new(r);
            for _ in 0..10 {
                w.write_all(req.as_bytes()).await.unwrap();
                assert!(ask(&mut r).await.starts_with("action=REJECT"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
