//! Reading compressed metadata as a stream: gzip, zstd, xz or bzip2 recognised by their
//! magic bytes (plain XML otherwise), and capped in decompressed size so that a
//! decompression bomb fails with a clear error instead of filling memory or disk.

use std::io::{BufRead, Read};

use super::parse::ParseError;

/// A reader that fails once more than `limit` bytes came through (decompression bombs).
pub struct Limited<R> {
    inner: R,
    left: u64,
    file: String,
    limit: u64,
}

impl<R: Read> Limited<R> {
    pub fn new(inner: R, limit: u64, file: &str) -> Self {
        Limited {
            inner,
            left: limit,
            file: file.to_string(),
            limit,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(
                ParseError::TooLarge {
                    file: self.file.clone(),
                    limit: self.limit,
                }
                .to_string(),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The compression `bytes` are in, by their magic bytes, if one [`decompress`] reads.
pub fn compression_of(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if bytes.starts_with(b"\xfd7zXZ\0") {
        Some("xz")
    } else if bytes.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

/// Opens compressed metadata by its content (gzip, zstd, xz or bzip2, multi-member
/// where the format allows; anything else is read as plain XML), capped at `limit`
/// decompressed bytes.
pub fn decompress<'a>(
    bytes: &'a [u8],
    limit: u64,
    file: &str,
) -> Result<Box<dyn BufRead + 'a>, ParseError> {
    let reader: Box<dyn Read + 'a> = match compression_of(bytes) {
        Some("gzip") => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Some("zstd") => {
            Box::new(
                zstd::stream::read::Decoder::new(bytes).map_err(|source| ParseError::Io {
                    file: file.to_string(),
                    source,
                })?,
            )
        }
        Some("xz") => Box::new(xz2::read::XzDecoder::new_multi_decoder(bytes)),
        Some("bzip2") => Box::new(bzip2::read::MultiBzDecoder::new(bytes)),
        _ => Box::new(bytes),
    };
    Ok(Box::new(std::io::BufReader::with_capacity(
        256 * 1024,
        Limited::new(reader, limit, file),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compression_dnf_reads_is_read() {
        use std::io::Write;
        let xml = b"<metadata packages=\"0\"></metadata>".to_vec();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&xml).unwrap();
            e.finish().unwrap()
        };
        let xz = {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(&xml).unwrap();
            e.finish().unwrap()
        };
        let bz = {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(&xml).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::bulk::compress(&xml, 3).unwrap();
        for (name, data) in [
            ("gz", gz),
            ("xz", xz),
            ("bz2", bz),
            ("zst", zst),
            ("plain", xml.clone()),
        ] {
            let mut out = Vec::new();
            decompress(&data, 1 << 20, name)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, xml, "{name}");
        }
    }

    #[test]
    fn decompression_is_capped() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'a'; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        let mut r = decompress(&gz, 1000, "bomb.xml.gz").unwrap();
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err().to_string();
        assert!(
            err.contains("bomb.xml.gz") && err.contains("exceeds"),
            "{err}"
        );
    }
}
