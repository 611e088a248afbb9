//! DNS for the tests: queries encoded by hickory-proto, and TSIG signing
//! and checking of their own (the `hmac` crate over bytes built here), so
//! that a test of the DNS port never checks the server's TSIG against the
//! server's own code.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hmac::{KeyInit, Mac};

use crate::PATIENCE;

/// TSIG's name for HMAC-MD5, in wire form.
const HMAC_MD5: &str = "hmac-md5.sig-alg.reg.int.";
const TSIG_TYPE: u16 = 250;
const CLASS_ANY: u16 = 255;

/// A TSIG key as `dig -y hmac-md5:NAME:SECRET` names it.
#[derive(Debug, Clone)]
pub struct TsigKey {
    pub name: String,
    pub secret: Vec<u8>,
}

impl TsigKey {
    pub fn new(name: &str, secret: &[u8]) -> TsigKey {
        TsigKey {
            name: name.to_owned(),
            secret: secret.to_vec(),
        }
    }
}

/// A query for `name` and `qtype` with ID `id`, with an EDNS(0) record
/// offering `udp_size` when given.
pub fn query(name: &str, qtype: RecordType, id: u16, udp_size: Option<u16>) -> Vec<u8> {
    query_for(Name::from_ascii(name).unwrap(), qtype, id, udp_size)
}

/// [`query`] for a name of any bytes.
pub fn query_for(name: Name, qtype: RecordType, id: u16, udp_size: Option<u16>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, qtype));
    if let Some(size) = udp_size {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        message.set_edns(edns);
    }
    message.to_vec().unwrap()
}

/// Standard base64 of `bytes`, as `dig -y` and `dnsperf -y` take a secret:
/// from coreutils' `base64`, so the encoding is not the harness's own.
pub fn base64(bytes: &[u8]) -> String {
    let mut child = std::process::Command::new("base64")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run base64");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Seconds since 1970, as TSIG counts them.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A name in uncompressed wire form, lower-cased (TSIG's canonical form).
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend(label.to_ascii_lowercase().bytes());
    }
    out.push(0);
    out
}

fn time_48(time: u64) -> [u8; 6] {
    let bytes = time.to_be_bytes();
    bytes[2..].try_into().unwrap()
}

/// The TSIG variables a MAC covers after the message (RFC 8945, 4.3.3).
fn variables(key: &TsigKey, time: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut out = wire_name(&key.name);
    out.extend(CLASS_ANY.to_be_bytes());
    out.extend(0u32.to_be_bytes());
    out.extend(wire_name(HMAC_MD5));
    out.extend(time_48(time));
    out.extend(fudge.to_be_bytes());
    out.extend(error.to_be_bytes());
    out.extend((other.len() as u16).to_be_bytes());
    out.extend(other);
    out
}

fn hmac_md5(secret: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(secret).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `message` signed with `key` at `time`: the message with a TSIG record
/// appended (and counted), and the MAC, which the reply's MAC covers.
pub fn sign(message: &[u8], key: &TsigKey, time: u64) -> (Vec<u8>, Vec<u8>) {
    let fudge = 300;
    let mut covered = message.to_vec();
    covered.extend(variables(key, time, fudge, 0, &[]));
    let mac = hmac_md5(&key.secret, &covered);
    let id = [message[0], message[1]];
    let mut rdata = wire_name(HMAC_MD5);
    rdata.extend(time_48(time));
    rdata.extend(fudge.to_be_bytes());
    rdata.extend((mac.len() as u16).to_be_bytes());
    rdata.extend(&mac);
    rdata.extend(id);
    rdata.extend(0u16.to_be_bytes());
    rdata.extend(0u16.to_be_bytes());
    let mut signed = message.to_vec();
    let arcount = u16::from_be_bytes([signed[10], signed[11]]) + 1;
    signed[10..12].copy_from_slice(&arcount.to_be_bytes());
    signed.extend(wire_name(&key.name));
    signed.extend(TSIG_TYPE.to_be_bytes());
    signed.extend(CLASS_ANY.to_be_bytes());
    signed.extend(0u32.to_be_bytes());
    signed.extend((rdata.len() as u16).to_be_bytes());
    signed.extend(rdata);
    (signed, mac)
}

/// A reply's TSIG record, read by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTsig {
    pub key_name: String,
    pub time: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

/// A reply, read: its message (any TSIG record is left among the
/// additional records), and its TSIG record with where it starts.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub message: Message,
    pub tsig: Option<(usize, ReplyTsig)>,
}

impl Reply {
    pub fn read(bytes: &[u8]) -> Reply {
        let message = Message::from_vec(bytes).unwrap_or_else(|err| panic!("reply: {err}"));
        let mut decoder = BinDecoder::new(bytes);
        let header = Header::read(&mut decoder).unwrap();
        for _ in 0..header.counts.queries {
            Query::read(&mut decoder).unwrap();
        }
        let records = header.counts.answers + header.counts.authorities + header.counts.additionals;
        let mut last = None;
        for _ in 0..records {
            let start = decoder.index();
            let record = Record::read(&mut decoder).unwrap();
            last = Some((start, record.record_type()));
        }
        let tsig = match last {
            Some((start, RecordType::TSIG)) => Some((start, read_tsig(&bytes[start..]))),
            _ => None,
        };
        Reply {
            bytes: bytes.to_vec(),
            message,
            tsig,
        }
    }

    /// Whether the reply's MAC is HMAC-MD5 under `key` over `request_mac`,
    /// the reply before its TSIG record (one additional record fewer), and
    /// its TSIG variables.
    pub fn verifies(&self, key: &TsigKey, request_mac: &[u8]) -> bool {
        let Some((start, tsig)) = &self.tsig else {
            return false;
        };
        let mut covered = (request_mac.len() as u16).to_be_bytes().to_vec();
        covered.extend(request_mac);
        let mut unsigned = self.bytes[..*start].to_vec();
        unsigned[0..2].copy_from_slice(&tsig.original_id.to_be_bytes());
        let arcount = u16::from_be_bytes([unsigned[10], unsigned[11]]) - 1;
        unsigned[10..12].copy_from_slice(&arcount.to_be_bytes());
        covered.extend(unsigned);
        covered.extend(variables(
            key,
            tsig.time,
            tsig.fudge,
            tsig.error,
            &tsig.other,
        ));
        !tsig.mac.is_empty() && hmac_md5(&key.secret, &covered) == tsig.mac
    }

    pub fn rcode(&self) -> u8 {
        self.bytes[3] & 0x0f
    }

    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.bytes[0], self.bytes[1]])
    }
}

/// Reads an uncompressed name at the start of `bytes`: its text and length.
fn read_name(bytes: &[u8]) -> (String, usize) {
    let mut labels = Vec::new();
    let mut at = 0;
    loop {
        let len = usize::from(bytes[at]);
        assert!(len < 64, "a compressed name in a TSIG record");
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(&bytes[at..at + len]).into_owned());
        at += len;
    }
    (format!("{}.", labels.join(".")), at)
}

fn read_tsig(bytes: &[u8]) -> ReplyTsig {
    let (key_name, mut at) = read_name(bytes);
    let u16_at = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    assert_eq!(u16_at(at), TSIG_TYPE);
    assert_eq!(u16_at(at + 2), CLASS_ANY);
    at += 10;
    let (algorithm, len) = read_name(&bytes[at..]);
    assert_eq!(algorithm.to_ascii_lowercase(), HMAC_MD5);
    at += len;
    let mut time = [0u8; 8];
    time[2..].copy_from_slice(&bytes[at..at + 6]);
    let time = u64::from_be_bytes(time);
    let fudge = u16_at(at + 6);
    let mac_len = usize::from(u16_at(at + 8));
    at += 10;
    let mac = bytes[at..at + mac_len].to_vec();
    at += mac_len;
    let original_id = u16_at(at);
    let error = u16_at(at + 2);
    let other_len = usize::from(u16_at(at + 4));
    let other = bytes[at + 6..at + 6 + other_len].to_vec();
    ReplyTsig {
        key_name,
        time,
        fudge,
        mac,
        original_id,
        error,
        other,
    }
}

/// Sends `request` to `addr` over UDP and returns the reply.
pub fn ask_udp(addr: SocketAddr, request: &[u8]) -> Reply {
    Reply::read(&udp_exchange(addr, request).expect("a reply over UDP"))
}

/// Sends `request` over UDP; the reply's bytes, or `None` if none comes
/// within a second.
pub fn udp_exchange(addr: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    socket.send_to(request, addr).unwrap();
    let mut buf = vec![0u8; 65_535];
    let len = socket.recv(&mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// A DNS-over-TCP connection.
pub struct DnsTcp(TcpStream);

impl DnsTcp {
    pub fn connect(addr: SocketAddr) -> DnsTcp {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        DnsTcp(stream)
    }

    /// Sends every request in one write, each behind its length.
    pub fn send_all(&mut self, requests: &[Vec<u8>]) {
        let mut out = Vec::new();
        for request in requests {
            out.extend((request.len() as u16).to_be_bytes());
            out.extend(request);
        }
        self.0.write_all(&out).unwrap();
    }

    /// The next reply, or `None` once the server has closed.
    pub fn receive(&mut self) -> Option<Reply> {
        let mut len = [0u8; 2];
        self.0.read_exact(&mut len).ok()?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.0.read_exact(&mut reply).ok()?;
        Some(Reply::read(&reply))
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.0
    }
}
