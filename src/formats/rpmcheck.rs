//! Checking an `.rpm` file's structure and digests the way `rpm -K` does without keys,
//! as the bytes stream past (one pass, memory bounded by the headers' size).
//!
//! What is checked:
//! - the lead's magic, and both headers' structure: magic, index entry count
//!   (< 65,536) and data size (≤ 256 MiB) within rpm's own limits, every index
//!   entry's type known and its data inside the header's data area (strings
//!   terminated there), before any other reader looks at the header;
//! - the header digests from the signature header (SHA-256, SHA-1) over the main
//!   header's bytes;
//! - the payload: the payload digest from the main header (`PAYLOADDIGEST`, in the
//!   algorithm `PAYLOADDIGESTALGO` names) over the compressed payload, the legacy MD5
//!   over header and payload, and the recorded size of header and payload;
//! - that at least one digest covers the header and one the payload, so a package
//!   that carries none is refused rather than trusted.
//!
//! Signatures (RSA, DSA, EdDSA) are not checked here, as that needs keys:
//! [`header_signature`] reads the signature and the bytes it signs for `openpgp`.

use sha2::Digest;

/// Why a file is not a whole, undamaged RPM package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("not an RPM package (no RPM lead)")]
    NotRpm,
    #[error("the file ends inside the {0} (truncated)")]
    Truncated(&'static str),
    #[error("the {header} is malformed: {what}")]
    Malformed { header: &'static str, what: String },
    #[error(
        "{digest} digest mismatch: the file is damaged (recorded {expected}, computed {actual})"
    )]
    Mismatch {
        digest: &'static str,
        expected: String,
        actual: String,
    },
    #[error("the size recorded in the signature header is {expected} bytes but header and payload are {actual} (truncated or padded)")]
    Size { expected: u64, actual: u64 },
    #[error("no digest covers the {0}: the package cannot be checked")]
    NoDigest(&'static str),
    #[error("payload digest algorithm {0} is not supported")]
    UnknownAlgorithm(u32),
}

const LEAD_LEN: usize = 96;
const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
/// rpm's limits (`hdrchkTags`, `HEADER_DATA_MAX`).
const MAX_TAGS: u32 = 0xffff;
const MAX_DATA: u32 = 0x0fff_ffff;

// Signature header tags.
const SIG_SIZE: u32 = 1000;
const SIG_MD5: u32 = 1004;
const SIG_SHA1: u32 = 269;
const SIG_SHA256: u32 = 273;
const SIG_LONGSIZE: u32 = 270;
// Main header tags.
const PAYLOADDIGEST: u32 = 5092;
const PAYLOADDIGESTALGO: u32 = 5093;

/// One index entry of a header.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: u32,
    count: u32,
}

/// A parsed header: its index and its data area.
struct Header {
    entries: Vec<Entry>,
    data: Vec<u8>,
}

impl Header {
    /// Parses and checks the structure of a header whose bytes (from the magic on) are
    /// `bytes`, exactly as long as [`header_len`] said.
    fn parse(name: &'static str, bytes: &[u8]) -> Result<Header, IntegrityError> {
        let (il, dl) = counts(name, bytes)?;
        let index = &bytes[16..16 + il as usize * 16];
        let data = bytes[16 + il as usize * 16..].to_vec();
        let malformed = |what: String| IntegrityError::Malformed { header: name, what };
        let mut entries = Vec::with_capacity(il as usize);
        for (i, e) in index.chunks_exact(16).enumerate() {
            let word = |k: usize| u32::from_be_bytes([e[k], e[k + 1], e[k + 2], e[k + 3]]);
            let entry = Entry {
                tag: word(0),
                kind: word(4),
                offset: word(8),
                count: word(12),
            };
            if entry.kind > 9 {
                return Err(malformed(format!(
                    "index entry {i} (tag {}) has unknown type {}",
                    entry.tag, entry.kind
                )));
            }
            if entry.offset > dl || (entry.count == 0 && entry.kind != 0) {
                return Err(malformed(format!(
                    "index entry {i} (tag {}) points outside the data (offset {}, count {}, data {dl} bytes)",
                    entry.tag, entry.offset, entry.count
                )));
            }
            if value_end(&entry, &data).is_none() {
                return Err(malformed(format!(
                    "the value of index entry {i} (tag {}) runs past the end of the data",
                    entry.tag
                )));
            }
            entries.push(entry);
        }
        Ok(Header { entries, data })
    }

    fn raw(&self, tag: u32) -> Option<(&Entry, &[u8])> {
        let e = self.entries.iter().find(|e| e.tag == tag)?;
        let end = value_end(e, &self.data)?;
        Some((e, &self.data[e.offset as usize..end]))
    }

    /// A STRING (or the first of a STRING_ARRAY) value, as text.
    fn string(&self, tag: u32) -> Option<String> {
        let (e, bytes) = self.raw(tag)?;
        if e.kind != 6 && e.kind != 8 && e.kind != 9 {
            return None;
        }
        let first = bytes.split(|b| *b == 0).next()?;
        Some(String::from_utf8_lossy(first).into_owned())
    }

    fn bin(&self, tag: u32) -> Option<&[u8]> {
        let (e, bytes) = self.raw(tag)?;
        (e.kind == 7).then_some(bytes)
    }

    fn int(&self, tag: u32) -> Option<u64> {
        let (e, b) = self.raw(tag)?;
        match e.kind {
            4 if b.len() >= 4 => Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64),
            5 if b.len() >= 8 => Some(u64::from_be_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ])),
            _ => None,
        }
    }
}

/// End (exclusive) of an entry's value in `data`, or `None` when it does not fit.
fn value_end(e: &Entry, data: &[u8]) -> Option<usize> {
    let start = e.offset as usize;
    let count = e.count as usize;
    let fixed = |size: usize| {
        let end = start.checked_add(count.checked_mul(size)?)?;
        (end <= data.len()).then_some(end)
    };
    match e.kind {
        0 => Some(start),
        1 | 2 | 7 => fixed(1),
        3 => fixed(2),
        4 => fixed(4),
        5 => fixed(8),
        // STRING (one), STRING_ARRAY and I18NSTRING (count): NUL-terminated.
        6 | 8 | 9 => {
            let n = if e.kind == 6 { 1 } else { count };
            let mut at = start;
            for _ in 0..n {
                let nul = data.get(at..)?.iter().position(|b| *b == 0)?;
                at += nul + 1;
            }
            Some(at)
        }
        _ => None,
    }
}

/// The entry count and data size from a header's first 16 bytes, checked.
fn counts(name: &'static str, intro: &[u8]) -> Result<(u32, u32), IntegrityError> {
    if intro[..8] != HEADER_MAGIC {
        return Err(IntegrityError::Malformed {
            header: name,
            what: "bad magic".into(),
        });
    }
    let il = u32::from_be_bytes([intro[8], intro[9], intro[10], intro[11]]);
    let dl = u32::from_be_bytes([intro[12], intro[13], intro[14], intro[15]]);
    if il == 0 || il > MAX_TAGS || dl > MAX_DATA {
        return Err(IntegrityError::Malformed {
            header: name,
            what: format!("{il} index entries and {dl} data bytes exceed rpm's limits"),
        });
    }
    Ok((il, dl))
}

/// Total length of a header (magic, index, data) from its first 16 bytes.
fn header_len(name: &'static str, intro: &[u8]) -> Result<usize, IntegrityError> {
    let (il, dl) = counts(name, intro)?;
    Ok(16 + il as usize * 16 + dl as usize)
}

/// The digest the main header names for its payload.
enum PayloadHasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl PayloadHasher {
    /// By rpm's `PGPHASHALGO_*` number.
    fn for_algorithm(algo: u32) -> Result<PayloadHasher, IntegrityError> {
        Ok(match algo {
            1 => PayloadHasher::Md5(md5::Md5::new()),
            2 => PayloadHasher::Sha1(sha1::Sha1::new()),
            8 => PayloadHasher::Sha256(sha2::Sha256::new()),
            9 => PayloadHasher::Sha384(sha2::Sha384::new()),
            10 => PayloadHasher::Sha512(sha2::Sha512::new()),
            other => return Err(IntegrityError::UnknownAlgorithm(other)),
        })
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            PayloadHasher::Md5(h) => h.update(bytes),
            PayloadHasher::Sha1(h) => h.update(bytes),
            PayloadHasher::Sha256(h) => h.update(bytes),
            PayloadHasher::Sha384(h) => h.update(bytes),
            PayloadHasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            PayloadHasher::Md5(h) => hex::encode(h.finalize()),
            PayloadHasher::Sha1(h) => hex::encode(h.finalize()),
            PayloadHasher::Sha256(h) => hex::encode(h.finalize()),
            PayloadHasher::Sha384(h) => hex::encode(h.finalize()),
            PayloadHasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Where the checker is in the file.
enum Stage {
    /// Collecting lead, signature header and main header (all kept in `head`).
    Head,
    /// Past the main header: bytes are payload.
    Payload {
        md5: Option<Box<md5::Md5>>,
        payload: Option<(Box<PayloadHasher>, String)>,
        /// Bytes of header and payload so far (the signature's size covers both).
        covered: u64,
    },
    Failed(IntegrityError),
}

/// Checks a package as its bytes are fed in order ([`Checker::update`]), then
/// [`Checker::finish`].
pub struct Checker {
    head: Vec<u8>,
    stage: Stage,
    signature: Option<Header>,
    /// Offset of the main header in the file, once known.
    main_at: Option<usize>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new()
    }
}

impl Checker {
    pub fn new() -> Checker {
        Checker {
            head: Vec::new(),
            stage: Stage::Head,
            signature: None,
            main_at: None,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.stage {
                Stage::Failed(_) => return,
                Stage::Payload {
                    md5,
                    payload,
                    covered,
                } => {
                    if let Some(h) = md5 {
                        h.update(bytes);
                    }
                    if let Some((h, _)) = payload {
                        h.update(bytes);
                    }
                    *covered += bytes.len() as u64;
                    return;
                }
                Stage::Head => {
                    let want = match self.head_needs() {
                        Ok(n) => n,
                        Err(e) => {
                            self.stage = Stage::Failed(e);
                            return;
                        }
                    };
                    let take = want.saturating_sub(self.head.len()).min(bytes.len());
                    self.head.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.head.len() == want {
                        if let Err(e) = self.advance() {
                            self.stage = Stage::Failed(e);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// How many bytes of the file the head must hold before the next step.
    fn head_needs(&self) -> Result<usize, IntegrityError> {
        let have = self.head.len();
        if have < LEAD_LEN + 16 {
            return Ok(LEAD_LEN + 16);
        }
        let sig_end = LEAD_LEN + header_len("signature header", &self.head[LEAD_LEN..])?;
        // The main header starts at the next multiple of 8.
        let main_at = sig_end.div_ceil(8) * 8;
        if have < main_at + 16 {
            return Ok(main_at + 16);
        }
        Ok(main_at + header_len("header", &self.head[main_at..])?)
    }

    /// Called each time the head holds what [`Checker::head_needs`] asked for.
    fn advance(&mut self) -> Result<(), IntegrityError> {
        if self.head.len() == LEAD_LEN + 16 && self.head[..4] != LEAD_MAGIC {
            return Err(IntegrityError::NotRpm);
        }
        if self.signature.is_none() && self.head.len() > LEAD_LEN + 16 {
            let sig_end = LEAD_LEN + header_len("signature header", &self.head[LEAD_LEN..])?;
            if self.head.len() >= sig_end {
                self.signature = Some(Header::parse(
                    "signature header",
                    &self.head[LEAD_LEN..sig_end],
                )?);
                self.main_at = Some(sig_end.div_ceil(8) * 8);
            }
        }
        let Some(main_at) = self.main_at else {
            return Ok(());
        };
        if self.head.len() < main_at + 16 {
            return Ok(());
        }
        let main_end = main_at + header_len("header", &self.head[main_at..])?;
        if self.head.len() < main_end {
            return Ok(());
        }
        // The whole main header is here: check it, then switch to the payload.
        let header_bytes = &self.head[main_at..main_end];
        let main = Header::parse("header", header_bytes)?;
        let sig = self
            .signature
            .as_ref()
            .ok_or(IntegrityError::Truncated("signature header"))?;
        let mut header_checked = false;
        if let Some(expected) = sig.string(SIG_SHA256) {
            compare(
                "header SHA-256",
                &expected,
                &hex::encode(sha2::Sha256::digest(header_bytes)),
            )?;
            header_checked = true;
        }
        if let Some(expected) = sig.string(SIG_SHA1) {
            compare(
                "header SHA-1",
                &expected,
                &hex::encode(sha1::Sha1::digest(header_bytes)),
            )?;
            header_checked = true;
        }
        let md5 = sig.bin(SIG_MD5).map(|_| {
            let mut h = Box::new(md5::Md5::new());
            h.update(header_bytes);
            h
        });
        if !header_checked && md5.is_none() {
            return Err(IntegrityError::NoDigest("header"));
        }
        let payload = match main.string(PAYLOADDIGEST) {
            Some(expected) => {
                let algo = main.int(PAYLOADDIGESTALGO).unwrap_or(8) as u32;
                Some((Box::new(PayloadHasher::for_algorithm(algo)?), expected))
            }
            None => None,
        };
        if payload.is_none() && md5.is_none() {
            return Err(IntegrityError::NoDigest("payload"));
        }
        let covered = header_bytes.len() as u64;
        self.head.truncate(main_at);
        self.head.shrink_to_fit();
        self.stage = Stage::Payload {
            md5,
            payload,
            covered,
        };
        Ok(())
    }

    /// The verdict, once every byte of the file was fed.
    pub fn finish(self) -> Result<(), IntegrityError> {
        match self.stage {
            Stage::Failed(e) => Err(e),
            Stage::Head if !LEAD_MAGIC.starts_with(&self.head[..self.head.len().min(4)]) => {
                Err(IntegrityError::NotRpm)
            }
            Stage::Head if self.head.is_empty() => Err(IntegrityError::NotRpm),
            Stage::Head => Err(IntegrityError::Truncated(
                if self.head.len() < LEAD_LEN + 16 {
                    "lead"
                } else if self.signature.is_none() {
                    "signature header"
                } else {
                    "header"
                },
            )),
            Stage::Payload {
                md5,
                payload,
                covered,
            } => {
                let sig = self
                    .signature
                    .as_ref()
                    .ok_or(IntegrityError::Truncated("signature header"))?;
                if let Some(expected) = sig.int(SIG_LONGSIZE).or_else(|| sig.int(SIG_SIZE)) {
                    if expected != covered {
                        return Err(IntegrityError::Size {
                            expected,
                            actual: covered,
                        });
                    }
                }
                if let Some((hasher, expected)) = payload {
                    compare("payload", &expected, &hasher.finish())?;
                }
                if let (Some(h), Some(expected)) = (md5, sig.bin(SIG_MD5)) {
                    compare("MD5", &hex::encode(expected), &hex::encode(h.finalize()))?;
                }
                Ok(())
            }
        }
    }
}

/// A package's header signatures: the OpenPGP signature packets the signature header
/// holds (none when unsigned) and the main header's bytes, which they sign.
///
/// An rpm 6 package holds any number of signatures in its OPENPGP tag, and then its
/// v4 tags (RSA, DSA) are ignored, as rpm 6 ignores them; other packages hold one, in
/// the RSA tag (rpm 4 also puts EdDSA there) or the DSA tag (also ECDSA).
pub struct HeaderSignature {
    pub signatures: Vec<Vec<u8>>,
    pub header: Vec<u8>,
}

// Signature header tags of header-only signatures: RSA (rpm 4 uses it for EdDSA too),
// DSA (also ECDSA), and rpm 6's OpenPGP (base64 strings, possibly several).
const SIG_RSA: u32 = 268;
const SIG_DSA: u32 = 267;
const SIG_OPENPGP: u32 = 278;

/// Reads the head of a package from `r` (lead, signature header, main header) and
/// returns its header signature; the rest of the file is not read.
pub fn header_signature(r: &mut impl std::io::Read) -> Result<HeaderSignature, IntegrityError> {
    let mut read = |n: usize, what: &'static str| -> Result<Vec<u8>, IntegrityError> {
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf)
            .map_err(|_| IntegrityError::Truncated(what))?;
        Ok(buf)
    };
    let lead = read(LEAD_LEN, "lead")?;
    if lead[..4] != LEAD_MAGIC {
        return Err(IntegrityError::NotRpm);
    }
    let mut sig = read(16, "signature header")?;
    let sig_len = header_len("signature header", &sig)?;
    sig.extend(read(sig_len - 16, "signature header")?);
    let sig = Header::parse("signature header", &sig)?;
    let padding = sig_len.div_ceil(8) * 8 - sig_len;
    read(padding, "signature header")?;
    let mut header = read(16, "header")?;
    let len = header_len("header", &header)?;
    header.extend(read(len - 16, "header")?);
    Header::parse("header", &header)?;
    let signatures = match sig.raw(SIG_OPENPGP) {
        Some((e, bytes)) if e.kind == 8 => {
            use base64::Engine;
            // A value that is not base64 is kept as it is: it then fails to read as a
            // signature, and is reported as such rather than taken for "unsigned".
            bytes
                .split(|b| *b == 0)
                .take(e.count as usize)
                .map(|text| {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .unwrap_or_else(|_| text.to_vec())
                })
                .collect()
        }
        _ => sig
            .bin(SIG_RSA)
            .or_else(|| sig.bin(SIG_DSA))
            .map(|s| vec![s.to_vec()])
            .unwrap_or_default(),
    };
    Ok(HeaderSignature { signatures, header })
}

fn compare(digest: &'static str, expected: &str, actual: &str) -> Result<(), IntegrityError> {
    if expected.eq_ignore_ascii_case(actual) {
        Ok(())
    } else {
        Err(IntegrityError::Mismatch {
            digest,
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// Checks a whole file held in memory.
pub fn check_bytes(bytes: &[u8]) -> Result<(), IntegrityError> {
    let mut c = Checker::new();
    c.update(bytes);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::formats::samples::demo_packages(dir.path()).unwrap();
        std::fs::read(&files[0]).unwrap()
    }

    /// Offset of the main header's intro in `bytes`.
    fn main_header_at(bytes: &[u8]) -> usize {
        let sig = LEAD_LEN + header_len("signature header", &bytes[LEAD_LEN..]).unwrap();
        sig.div_ceil(8) * 8
    }

    #[test]
    fn a_whole_package_passes_fed_at_once_or_byte_by_byte() {
        let bytes = sample();
        assert_eq!(check_bytes(&bytes), Ok(()));
        let mut c = Checker::new();
        for chunk in bytes.chunks(7) {
            c.update(chunk);
        }
        assert_eq!(c.finish(), Ok(()));
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let bytes = sample();
        let main = main_header_at(&bytes);
        for cut in [1, 2000.min(bytes.len() - main - 20), bytes.len() - main - 8] {
            let err = check_bytes(&bytes[..bytes.len() - cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    IntegrityError::Size { .. }
                        | IntegrityError::Mismatch { .. }
                        | IntegrityError::Truncated(_)
                ),
                "cut {cut}: {err}"
            );
        }
        assert_eq!(
            check_bytes(&bytes[..50]),
            Err(IntegrityError::Truncated("lead"))
        );
        assert_eq!(
            check_bytes(&bytes[..main + 20]),
            Err(IntegrityError::Truncated("header"))
        );
    }

    #[test]
    fn a_flipped_payload_or_header_byte_is_a_digest_mismatch() {
        let bytes = sample();
        let mut payload = bytes.clone();
        let last = payload.len() - 10;
        payload[last] ^= 0x01;
        assert!(matches!(
            check_bytes(&payload),
            Err(IntegrityError::Mismatch { .. })
        ));
        // A byte inside the main header's data (a string): the header digest fails.
        let mut header = bytes.clone();
        let main = main_header_at(&bytes);
        let at = header.len().min(main + 16 + 16 * 3 + 40);
        header[at] ^= 0x20;
        let err = check_bytes(&header).unwrap_err();
        assert!(
            matches!(
                err,
                IntegrityError::Mismatch { .. } | IntegrityError::Malformed { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn impossible_header_counts_and_offsets_are_malformed() {
        let bytes = sample();
        let main = main_header_at(&bytes);
        let mut count = bytes.clone();
        count[main + 8..main + 12].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        assert!(matches!(
            check_bytes(&count),
            Err(IntegrityError::Malformed {
                header: "header",
                ..
            })
        ));
        // The first index entry's offset far past the data.
        let mut offset = bytes.clone();
        offset[main + 16 + 8..main + 16 + 12].copy_from_slice(&0x00FF_FFFFu32.to_be_bytes());
        assert!(matches!(
            check_bytes(&offset),
            Err(IntegrityError::Malformed {
                header: "header",
                ..
            })
        ));
        let mut lead = bytes.clone();
        lead[0] = b'x';
        assert_eq!(check_bytes(&lead), Err(IntegrityError::NotRpm));
        assert_eq!(check_bytes(b""), Err(IntegrityError::NotRpm));
        assert_eq!(check_bytes(b"root:x:0:0\n"), Err(IntegrityError::NotRpm));
    }
}
