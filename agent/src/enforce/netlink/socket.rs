//! A netfilter netlink socket: transactions sent as one batch and awaited message by message,
//! dumps read to their end, and a listening socket for the nf_tables notification group.

use super::wire::{self, Batch, Received, NLMSG_DONE, NLMSG_ERROR};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_NETFILTER: i32 = 12;
/// `NFNLGRP_NFTABLES`: every committed nf_tables change is announced to this group.
const NFNLGRP_NFTABLES: u32 = 7;
/// Big enough for any datagram the kernel sends (dumps are cut at about a page).
const RECV_BUF: usize = 256 * 1024;

/// A netfilter netlink socket in the caller's network namespace.
pub struct NftNetlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl NftNetlink {
    /// Opens the socket in network namespace `netns` (a name under /var/run/netns), or in the
    /// caller's own when None. A socket stays in the namespace it was created in. Only for
    /// tests and benchmarks that enforce into a namespace they made (feature `test-netns`).
    #[cfg(feature = "test-netns")]
    pub fn open_in(netns: Option<&str>) -> io::Result<Self> {
        let Some(ns) = netns else { return Self::open() };
        in_netns(ns, Self::open)
    }

    /// Opens the socket in this process's network namespace.
    pub fn open() -> io::Result<Self> {
        let fd = open_socket()?;
        Ok(Self {
            fd,
            seq: std::process::id().wrapping_mul(1000),
            buf: vec![0; RECV_BUF],
        })
    }

    fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: a zeroed sockaddr_nl addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sending our own buffer of its own length on a valid socket.
        check(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            ) as libc::c_int
        })?;
        Ok(())
    }

    fn recv(&mut self) -> io::Result<usize> {
        // SAFETY: receiving into our own buffer of its own length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr() as *mut libc::c_void,
                self.buf.len(),
                0,
            )
        };
        check(n as libc::c_int).map(|n| n as usize)
    }

    /// A batch is one datagram: past the default send buffer (about 200 KiB) it needs a bigger
    /// one, which CAP_NET_ADMIN may force beyond the system's limit, as nft does.
    fn make_room(&self, len: usize) {
        if len < 128 * 1024 {
            return;
        }
        let size = (len + 64 * 1024).min(i32::MAX as usize) as libc::c_int;
        for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: setsockopt with a correctly sized int on a valid socket.
            let r = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    &size as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            if r == 0 {
                return;
            }
        }
    }

    /// The next free sequence number for a batch.
    pub fn next_seq(&self) -> u32 {
        self.seq
    }

    /// Sends `batch` and waits until the kernel acknowledged every message of it; the first
    /// error is returned (the kernel then applied nothing of the batch).
    pub fn transact(&mut self, batch: Batch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (buf, acked, next) = batch.finish();
        self.seq = next;
        self.make_room(buf.len());
        self.send(&buf)?;
        let mut waiting: std::collections::BTreeSet<u32> = acked.into_iter().collect();
        while !waiting.is_empty() {
            let n = self.recv()?;
            for m in wire::messages(&self.buf[..n]) {
                if m.kind == NLMSG_ERROR && waiting.remove(&m.seq) {
                    let code = wire::error_code(m.body);
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends a dump request of nf_tables message `kind` and returns every answer's body.
    pub fn dump(&mut self, kind: u16, attrs: wire::Attrs) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        self.send(&wire::request(kind, wire::NLM_F_DUMP, seq, &attrs))?;
        let mut out = vec![];
        loop {
            let n = self.recv()?;
            let received: Vec<Received<'_>> = wire::messages(&self.buf[..n]);
            for m in received.into_iter().filter(|m| m.seq == seq) {
                match m.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = wire::error_code(m.body);
                        return match code {
                            0 => Ok(out),
                            c => Err(io::Error::from_raw_os_error(-c)),
                        };
                    }
                    _ => out.push(m.body.to_vec()),
                }
            }
        }
    }
}

fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned by `OwnedFd` from here on.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    })?;
    // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Without a receive timeout a kernel that never answers would hang the enforcer.
    receive_timeout(&fd, 5)?;
    Ok(fd)
}

/// Sets how long a receive on `fd` waits (0: for ever).
fn receive_timeout(fd: &OwnedFd, secs: i64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a correctly sized timeval on a valid socket.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    })?;
    Ok(())
}

/// Runs `f` with this thread in network namespace `ns`, then switches back.
#[cfg(feature = "test-netns")]
pub fn in_netns<T>(ns: &str, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let target = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    let home = std::fs::File::open("/proc/thread-self/ns/net")?;
    // SAFETY: setns(2) on this thread only, with namespace descriptors we hold open; we always
    // switch back before returning.
    check(unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) })?;
    let out = f();
    // SAFETY: as above, back to the namespace this thread started in.
    check(unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) })?;
    out
}

/// A socket that hears every committed nf_tables change in its namespace.
pub struct Notifications {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Notifications {
    pub fn open() -> io::Result<Self> {
        let fd = open_socket()?;
        // No receive timeout here: the listener blocks until something changes.
        receive_timeout(&fd, 0)?;
        // Bound with the group in the legacy bitmask: nfnetlink hears this where a later
        // NETLINK_ADD_MEMBERSHIP on an unbound socket was seen to stay silent.
        // SAFETY: a zeroed sockaddr_nl, then family and groups set.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = 1 << (NFNLGRP_NFTABLES - 1);
        // SAFETY: binding a valid socket to a correctly sized netlink address.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        })?;
        Ok(Self {
            fd,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Blocks until the next datagram; returns the nf_tables kinds it announced with the table
    /// each names. An overrun (ENOBUFS: changes were lost) is reported as `None` for the table.
    pub fn wait(&mut self) -> io::Result<Vec<(u16, Option<String>)>> {
        // SAFETY: receiving into our own buffer of its own length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr() as *mut libc::c_void,
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                return Ok(vec![(u16::MAX, None)]);
            }
            return Err(e);
        }
        Ok(wire::messages(&self.buf[..n as usize])
            .into_iter()
            .filter(|m| m.kind >> 8 == wire::NFNL_SUBSYS_NFTABLES)
            .map(|m| {
                let table = m
                    .body
                    .get(4..)
                    .and_then(|a| wire::find(a, 1))
                    .map(wire::as_str);
                (m.kind & 0xff, table.map(str::to_string))
            })
            .collect())
    }
}
