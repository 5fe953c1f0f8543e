//! The listening sockets: one per worker on the same port (SO_REUSEPORT), after a
//! check that no one else listens there.

use std::net::{SocketAddr, TcpListener as StdListener};

use super::ServeError;

/// Refuses an address some socket already listens on. The workers' listeners share
/// one port through SO_REUSEPORT, which would also let a second process (of the same
/// user) join silently and take half the connections: a plain bind, which any
/// listener on the port refuses, tells first. (Port 0 asks for a fresh port.)
pub(super) fn check_free(addr: SocketAddr) -> Result<(), ServeError> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|source| ServeError::Bind { addr, source })?;
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(ServeError::AddressInUse { addr })
        }
        Err(source) => Err(ServeError::Bind { addr, source }),
    }
}

pub(super) fn bind(addr: SocketAddr) -> std::io::Result<StdListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
