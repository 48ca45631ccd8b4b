//! Demo answers for the `dns` kind, over UDP on the demo port (hickory messages):
//!
//!     demo.test           A 127.0.0.1, AAAA ::1
//!     delay-MS.demo.test  A 127.0.0.1 after MS milliseconds (at most 10 s)
//!     fail.demo.test      SERVFAIL
//!     anything else       NXDOMAIN

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// Answers in flight at most; more queries wait in the socket's buffer.
const MAX_IN_FLIGHT: usize = 256;

pub async fn serve(socket: UdpSocket) {
    let socket = Arc::new(socket);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            let (reply, delay) = answer(query);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
            drop(permit);
        });
    }
}

fn answer(query: Message) -> (Message, Duration) {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.authoritative = true;
    let mut delay = Duration::ZERO;
    if let Some(q) = query.queries.first() {
        reply.add_query(q.clone());
        let name = q.name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        let label = name.strip_suffix(".demo.test");
        let ms = label
            .and_then(|l| l.strip_prefix("delay-"))
            .and_then(|ms| ms.parse::<u64>().ok());
        if name == "demo.test" || ms.is_some() {
            delay = Duration::from_millis(ms.unwrap_or(0).min(10_000));
            let data = match q.query_type {
                RecordType::A => Some(RData::A(A(Ipv4Addr::LOCALHOST))),
                RecordType::AAAA => Some(RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
                _ => None,
            };
            if let Some(data) = data {
                reply.add_answer(Record::from_rdata(q.name.clone(), 60, data));
            }
        } else if label == Some("fail") {
            reply.metadata.response_code = ResponseCode::ServFail;
        } else {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
    }
    (reply, delay)
}
