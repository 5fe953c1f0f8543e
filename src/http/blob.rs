//! Reading pool blobs for responses: io_uring (`tokio-uring`) where the kernel allows
//! it, ordinary `pread` on the blocking pool otherwise. Either way a body is produced
//! in bounded chunks, so memory does not grow with file size.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// Files at most this big are read whole and sent in one piece.
pub const SMALL_FILE: u64 = 2 * 1024 * 1024;
/// Chunk size for streaming larger files.
pub const CHUNK: usize = 512 * 1024;

/// How this worker reads files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Uring,
    Blocking,
}

/// An open blob.
pub enum Blob {
    Uring(tokio_uring::fs::File),
    Blocking(Arc<std::fs::File>),
}

impl Blob {
    /// Opens `path` and returns it with its current size on disk.
    pub async fn open(mode: ReadMode, path: &Path) -> io::Result<(Blob, u64)> {
        match mode {
            ReadMode::Uring => {
                let f = tokio_uring::fs::File::open(path).await?;
                let st = f.statx().await?;
                Ok((Blob::Uring(f), st.stx_size))
            }
            ReadMode::Blocking => {
                let path = path.to_path_buf();
                let (f, len) = tokio::task::spawn_blocking(move || -> io::Result<_> {
                    let f = std::fs::File::open(&path)?;
                    let len = f.metadata()?.len();
                    Ok((f, len))
                })
                .await
                .map_err(io::Error::other)??;
                Ok((Blob::Blocking(Arc::new(f)), len))
            }
        }
    }

    /// Reads exactly `len` bytes at `offset` (an error if the file ends first).
    pub async fn read_exact_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        match self {
            Blob::Uring(f) => {
                let mut buf: Vec<u8> = Vec::with_capacity(len);
                let mut done = 0usize;
                while done < len {
                    let slice = tokio_uring::buf::BoundedBuf::slice(buf, done..len);
                    let (res, slice) = f.read_at(slice, offset + done as u64).await;
                    buf = slice.into_inner();
                    let n = res?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "blob is shorter than recorded",
                        ));
                    }
                    done += n;
                }
                Ok(Bytes::from(buf))
            }
            Blob::Blocking(f) => {
                let f = f.clone();
                tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; len];
                    f.read_exact_at(&mut buf, offset)?;
                    Ok(Bytes::from(buf))
                })
                .await
                .map_err(io::Error::other)?
            }
        }
    }
}

/// Is io_uring usable here? (A kernel or seccomp profile may refuse it.)
pub fn uring_available() -> bool {
    if std::env::var("CAIRN_IO_URING").is_ok_and(|v| v == "off" || v == "0") {
        return false;
    }
    io_uring::IoUring::new(8).is_ok()
}
